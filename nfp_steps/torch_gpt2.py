"""A differentiable torch GPT-2 forward pass with exactly HF GPT-2's semantics.

Parameters are a ``dict[str, torch.Tensor]`` (:class:`TorchParams`, which also carries
``eps`` and ``gelu_kind``) keyed by the :class:`GPT2Weights` field names, in the same per-head
row-vector layout (W_Q (L,H,d,dh), W_O (L,H,dh,d), ...). Pure functions of a plain dict serve
three uses: training the embedded toy model, float64 reference forward passes, and autograd
Jacobians (``torch.func.jacrev`` over ``embeddings=`` or any tensor of the dict).

Semantics (DESIGN.md §3): pre-LN blocks, LayerNorm with biased variance and the model's eps,
attention biases b_Q/b_K/b_V, scores scaled by 1/√d_head with a causal mask, the c_proj bias b_O
added once per layer, GELU_new with √(2/π) (or exact erf), tied unembedding when ``W_U`` is
absent from the dict (then logits use ``wte``ᵀ, so training keeps the tie).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch

from nfp_steps.model import GELU_KINDS, GPT2Weights, ModelError

# Arrays a forward pass needs besides the embeddings; all stacked over layers.
LAYER_KEYS = (
    "W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O",
    "ln1_g", "ln1_b", "ln2_g", "ln2_b", "W_in", "b_in", "W_out", "b_out",
)
FINAL_KEYS = ("lnf_g", "lnf_b")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class ForwardOutput(NamedTuple):
    """``logits`` (..., n, V) and attention patterns ``attn`` (..., L, H, n, n) = A[l,h,q,k]."""

    logits: torch.Tensor
    attn: torch.Tensor


# ---- conversion -------------------------------------------------------------------------------


class TorchParams(dict):
    """``dict[str, torch.Tensor]`` keyed by :class:`GPT2Weights` field names, plus the two
    non-tensor settings as attributes (``eps``, ``gelu_kind``), so ``values()`` are all tensors
    (optimizers, ``torch.func``) and the settings travel with the weights."""

    def __init__(self, tensors=(), *, eps: float = 1e-5, gelu_kind: str = "tanh") -> None:
        super().__init__(tensors)
        if gelu_kind not in GELU_KINDS:
            raise ModelError(f"gelu_kind must be one of {GELU_KINDS}, got {gelu_kind!r}")
        self.eps = float(eps)
        self.gelu_kind = gelu_kind

    def replace(self, tensors: dict[str, torch.Tensor]) -> TorchParams:
        """Same settings, other tensors (e.g. detached or converted copies)."""
        return TorchParams(tensors, eps=self.eps, gelu_kind=self.gelu_kind)


def weights_to_torch_params(
    w: GPT2Weights,
    *,
    dtype: torch.dtype = torch.float64,
    requires_grad: bool = False,
    tie_unembedding: bool = False,
) -> TorchParams:
    """Copy every array of ``w`` (not ``tokens``) into a :class:`TorchParams`.

    ``tie_unembedding=True`` drops ``W_U`` so the forward pass uses ``wte``ᵀ (for training a
    tied model; requires ``wte``). In float64 the values are exact copies.
    """
    w.validate()
    tensors: dict[str, torch.Tensor] = {}
    for name, arr in w.array_fields().items():
        if name == "tokens":
            continue
        if name == "W_U" and tie_unembedding:
            if w.wte is None:
                raise ModelError("tie_unembedding needs wte, but the weight set has none")
            continue
        t = torch.tensor(np.ascontiguousarray(arr), dtype=dtype)
        tensors[name] = t.requires_grad_(requires_grad)
    return TorchParams(tensors, eps=w.eps, gelu_kind=w.gelu_kind)


def torch_params_to_weights(
    params: dict[str, torch.Tensor],
    *,
    eps: float | None = None,
    gelu_kind: str | None = None,
    attrs: dict | None = None,
) -> GPT2Weights:
    """Build a validated float64 :class:`GPT2Weights` from a tensor dict.

    A missing ``W_U`` means tied: ``W_U = wteᵀ``. ``eps``/``gelu_kind`` default to the
    :class:`TorchParams` settings (or 1e-5 / tanh for a plain dict). float32 → float64 is exact.
    """
    arrays = {k: t.detach().to("cpu", torch.float64).numpy().copy() for k, t in params.items()}
    missing = [k for k in (*LAYER_KEYS, *FINAL_KEYS) if k not in arrays]
    if missing:
        raise ModelError(f"torch params: missing arrays {missing}")
    if "W_U" not in arrays:
        if "wte" not in arrays:
            raise ModelError("torch params: neither W_U nor wte present (cannot unembed)")
        arrays["W_U"] = np.ascontiguousarray(arrays["wte"].T)
    unknown = sorted(set(arrays) - set(GPT2Weights.__dataclass_fields__))
    if unknown:
        raise ModelError(f"torch params: unknown arrays {unknown}")
    e, g = _settings(params, eps, gelu_kind)
    w = GPT2Weights(**arrays, eps=e, gelu_kind=g, attrs=dict(attrs or {}))
    return w.validate("torch params")


def _settings(params: dict, eps: float | None, gelu_kind: str | None) -> tuple[float, str]:
    """Explicit argument, else the params' attribute, else GPT-2's default."""
    e = eps if eps is not None else getattr(params, "eps", 1e-5)
    g = gelu_kind if gelu_kind is not None else getattr(params, "gelu_kind", "tanh")
    return float(e), str(g)


# ---- building blocks --------------------------------------------------------------------------


def layer_norm(x: torch.Tensor, g: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """γ ⊙ (x − μ)/√(var + eps) + β over the last axis, biased variance (as torch/HF)."""
    mu = x.mean(dim=-1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(dim=-1, keepdim=True)
    return xc / torch.sqrt(var + eps) * g + b


def gelu(x: torch.Tensor, kind: str = "tanh") -> torch.Tensor:
    """``tanh``: GELU_new ½x(1 + tanh(√(2/π)(x + 0.044715x³))); ``exact``: ½x(1 + erf(x/√2))."""
    if kind == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * torch.pow(x, 3.0))))
    if kind == "exact":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    raise ModelError(f"gelu_kind must be one of {GELU_KINDS}, got {kind!r}")


def attention(
    params: dict[str, torch.Tensor],
    layer: int,
    z: torch.Tensor,
    *,
    ablate: Iterable[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention sublayer on z = LN1(x) of shape (..., n, d).

    Returns (Σ_h A V W_O + b_O, A) with A of shape (..., H, n, n). Heads in ``ablate`` contribute
    zero (their pattern is still returned).
    """
    H, d, dh = params["W_Q"].shape[1:]
    n = z.shape[-2]
    lead = z.shape[:-2]
    # One (d, 3·H·dh) matmul as HF's c_attn: columns [Q heads | K heads | V heads], head-major.
    W = torch.cat(
        [params[k][layer].permute(1, 0, 2).reshape(d, H * dh) for k in ("W_Q", "W_K", "W_V")], 1
    )
    b = torch.cat([params[k][layer].reshape(H * dh) for k in ("b_Q", "b_K", "b_V")])
    qkv = (z @ W + b).reshape(*lead, n, 3, H, dh)
    q, k, v = (qkv.select(-3, i).transpose(-2, -3) for i in range(3))  # (..., H, n, dh)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    causal = torch.ones(n, n, dtype=torch.bool, device=z.device).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    A = torch.softmax(scores, dim=-1)
    o = A @ v  # (..., H, n, dh)
    ablate = sorted(set(int(h) for h in ablate))
    if ablate:
        keep = torch.ones(H, dtype=o.dtype, device=o.device)
        keep[ablate] = 0.0
        o = o * keep[:, None, None]
    # Σ_h o_h W_O[h] as one matmul (HF's c_proj), then the bias once.
    o = o.transpose(-2, -3).reshape(*lead, n, H * dh)
    return o @ params["W_O"][layer].reshape(H * dh, d) + params["b_O"][layer], A


def mlp(
    params: dict[str, torch.Tensor], layer: int, u: torch.Tensor, gelu_kind: str = "tanh"
) -> torch.Tensor:
    """MLP sublayer on u = LN2(y): GELU(u W_in + b_in) W_out + b_out."""
    h = u @ params["W_in"][layer] + params["b_in"][layer]
    return gelu(h, gelu_kind) @ params["W_out"][layer] + params["b_out"][layer]


def embed(params: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """x_0 = wte[tokens] + wpe[0..n−1] for tokens of shape (..., n)."""
    if "wte" not in params or "wpe" not in params:
        raise ModelError("model has no wte/wpe tables; pass embeddings= instead of tokens")
    n = tokens.shape[-1]
    n_ctx = params["wpe"].shape[0]
    if n > n_ctx:
        raise ModelError(f"prompt has {n} positions, the model's context is {n_ctx}")
    V = params["wte"].shape[0]
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= V):
        raise ModelError(
            f"token ids must be in [0, {V}), got range [{int(tokens.min())}, {int(tokens.max())}]"
        )
    return params["wte"][tokens] + params["wpe"][:n]


def unembed(params: dict[str, torch.Tensor], x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """logits = LN_f(x) W_U, with W_U = wteᵀ when the dict is tied (no ``W_U``)."""
    z = layer_norm(x, params["lnf_g"], params["lnf_b"], eps)
    W_U = params["W_U"] if "W_U" in params else params["wte"].T
    return z @ W_U


# ---- full pass --------------------------------------------------------------------------------


def _ablation_by_layer(
    ablate_heads: Iterable[tuple[int, int]], L: int, H: int
) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for lh in ablate_heads:
        layer, head = (int(i) for i in lh)
        if not (0 <= layer < L and 0 <= head < H):
            raise ModelError(f"ablate_heads: head ({layer},{head}) out of range for L={L}, H={H}")
        out.setdefault(layer, []).append(head)
    return out


def _input(params: dict, tokens, embeddings: torch.Tensor | None) -> torch.Tensor:
    if embeddings is not None:
        return embeddings
    if tokens is None:
        raise ModelError("forward: give tokens or embeddings")
    tok = tokens if torch.is_tensor(tokens) else torch.as_tensor(np.asarray(tokens))
    if tok.dtype.is_floating_point or tok.dtype == torch.bool:
        raise ModelError(f"tokens must be integers, got {tok.dtype}")
    return embed(params, tok.long())


def _run(
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    ablate_heads: Iterable[tuple[int, int]],
    freeze_mlp: bool,
    eps: float,
    gelu_kind: str,
    cache: dict[str, list[torch.Tensor]] | None,
) -> ForwardOutput:
    L, H = params["W_Q"].shape[0], params["W_Q"].shape[1]
    ablate = _ablation_by_layer(ablate_heads, L, H)
    attns = []
    for layer in range(L):
        z1 = layer_norm(x, params["ln1_g"][layer], params["ln1_b"][layer], eps)
        a_out, A = attention(params, layer, z1, ablate=ablate.get(layer, ()))
        y = x + a_out
        attns.append(A)
        if cache is not None:
            cache["x"].append(x)
            cache["z1"].append(z1)
            cache["y"].append(y)
        if freeze_mlp and cache is None:
            x = y
            continue
        z2 = layer_norm(y, params["ln2_g"][layer], params["ln2_b"][layer], eps)
        pre = z2 @ params["W_in"][layer] + params["b_in"][layer]
        if cache is not None:
            cache["z2"].append(z2)
            cache["mlp_pre"].append(pre)
        if freeze_mlp:
            x = y
        else:
            x = y + gelu(pre, gelu_kind) @ params["W_out"][layer] + params["b_out"][layer]
    if cache is not None:
        cache["x"].append(x)
    return ForwardOutput(unembed(params, x, eps), torch.stack(attns, dim=-4))


def forward(
    params: dict[str, torch.Tensor],
    tokens: torch.Tensor | np.ndarray | None = None,
    *,
    embeddings: torch.Tensor | None = None,
    ablate_heads: Iterable[tuple[int, int]] = (),
    freeze_mlp: bool = False,
    eps: float | None = None,
    gelu_kind: str | None = None,
) -> ForwardOutput:
    """Logits (..., n, V) and attention patterns (..., L, H, n, n) of tokens (n,) or (batch, n).

    ``embeddings`` (..., n, d) replaces wte[tokens] + wpe as x_0 (baked ``.nfpt`` prompts,
    Jacobians). ``ablate_heads``: (layer, head) pairs whose outputs are zeroed (b_O stays).
    ``freeze_mlp``: MLP outputs are zero (attention-only model), as in training phase 1.
    ``eps``/``gelu_kind`` override the settings carried by :class:`TorchParams`.
    """
    e, g = _settings(params, eps, gelu_kind)
    x = _input(params, tokens, embeddings)
    return _run(params, x, ablate_heads, freeze_mlp, e, g, None)


def run_with_cache(
    params: dict[str, torch.Tensor],
    tokens: torch.Tensor | np.ndarray | None = None,
    *,
    embeddings: torch.Tensor | None = None,
    ablate_heads: Iterable[tuple[int, int]] = (),
    freeze_mlp: bool = False,
    eps: float | None = None,
    gelu_kind: str | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`forward` keeping every intermediate, each stacked with a layer axis before (n, ·).

    ``x`` (..., L+1, n, d) residual streams x_0..x_L; ``z1`` = LN1(x_l), ``y`` = x_l + attention,
    ``z2`` = LN2(y_l) (..., L, n, d); ``mlp_pre`` (..., L, n, dff); ``attn`` (..., L, H, n, n);
    ``logits`` (..., n, V). With ``freeze_mlp`` the MLPs contribute 0 but z2/mlp_pre are reported.
    """
    e, g = _settings(params, eps, gelu_kind)
    x = _input(params, tokens, embeddings)
    cache: dict[str, list[torch.Tensor]] = {k: [] for k in ("x", "z1", "y", "z2", "mlp_pre")}
    out = _run(params, x, ablate_heads, freeze_mlp, e, g, cache)
    result = {k: torch.stack(v, dim=-3) for k, v in cache.items()}
    result["attn"] = out.attn
    result["logits"] = out.logits
    return result
