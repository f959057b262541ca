"""Exact GPT-2 forward pass in float64 numpy (DESIGN §3), keeping every intermediate.

This trajectory is the "concrete point" at which all rigorous bounds are evaluated. It matches
``transformers``' GPT-2 (attention biases, c_proj bias, gelu_new with √(2/π), the model's eps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nfp_steps.model import GPT2Weights, ModelError

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@dataclass
class Trajectory:
    """All intermediates of one forward pass over n positions.

    x (L+1,n,d) residual entering each layer (x[L] = final residual); z1 (L,n,d) = LN1(x_l);
    y (L,n,d) = x_l + attention output; z2 (L,n,d) = LN2(y_l); pre (L,n,dff) MLP
    pre-activations; attn (L,H,n,n) attention patterns; final (n,d) = LN_f(x_L); logits (n,V).
    """

    x: np.ndarray
    z1: np.ndarray
    y: np.ndarray
    z2: np.ndarray
    pre: np.ndarray
    attn: np.ndarray
    final: np.ndarray
    logits: np.ndarray


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """Row-wise LayerNorm with biased variance, as torch.nn.LayerNorm."""
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return xc / np.sqrt(var + eps) * gamma + beta


def gelu(x: np.ndarray, kind: str) -> np.ndarray:
    """GPT-2's ``gelu_new`` (tanh form, √(2/π)) or the exact erf GELU."""
    if kind == "tanh":
        return 0.5 * x * (1.0 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3)))
    if kind == "exact":
        import torch  # erf: numpy has none; torch is a dependency anyway

        erf = torch.special.erf(torch.from_numpy(np.ascontiguousarray(x) / math.sqrt(2.0)))
        return 0.5 * x * (1.0 + erf.numpy())
    raise ModelError(f"unknown gelu_kind {kind!r}")


def attention_pattern(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Causal softmax(QKᵀ/√dh); masked entries are exactly 0."""
    n, dh = q.shape
    s = (q @ k.T) / math.sqrt(dh)
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    s = np.where(mask, -np.inf, s)
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def head_outputs(w: GPT2Weights, layer: int, z: np.ndarray, attn: np.ndarray) -> np.ndarray:
    """Each head's output A V W_O (H,n,d), without the layer's c_proj bias."""
    v = z @ w.W_V[layer] + w.b_V[layer][:, None, :]  # (H,n,dh), BLAS via broadcasting matmul
    return (attn @ v) @ w.W_O[layer]


def embed(w: GPT2Weights, tokens: np.ndarray | None) -> np.ndarray:
    """x_0: wte[tokens] + wpe[positions], or the embeddings baked into an ``.nfpt`` file."""
    if w.wte is not None and w.wpe is not None and tokens is not None:
        n = len(tokens)
        if n > w.wpe.shape[0]:
            raise ModelError(
                f"prompt has {n} tokens but the model's context length is {w.wpe.shape[0]}"
            )
        if n and (tokens.min() < 0 or tokens.max() >= w.vocab_size):
            bad = int(tokens[(tokens < 0) | (tokens >= w.vocab_size)][0])
            raise ModelError(f"token id {bad} is outside the vocabulary [0, {w.vocab_size})")
        return w.wte[tokens] + w.wpe[:n]
    if w.embeddings is not None:
        if tokens is not None and w.tokens is not None and not np.array_equal(tokens, w.tokens):
            raise ModelError(
                "the model file bakes in the embeddings of its own TOKENS; a different prompt "
                "cannot be embedded (it has no wte/wpe tables)"
            )
        if tokens is not None and w.tokens is None and len(tokens) != w.embeddings.shape[0]:
            raise ModelError(
                f"prompt has {len(tokens)} tokens but the file's EMBEDDINGS have "
                f"{w.embeddings.shape[0]} rows"
            )
        return w.embeddings.copy()
    raise ModelError("the model has neither wte/wpe tables nor baked EMBEDDINGS: nothing to run")


def run_forward(
    w: GPT2Weights, tokens: np.ndarray | None, ablate: dict | None = None
) -> Trajectory:
    """Run the model on one prompt and keep every intermediate.

    ``ablate`` optionally maps ``(layer, head)`` to a replacement for that head's output
    (an (n,d) array, e.g. zeros or a mean), used by the verify stage.
    """
    x = embed(w, tokens)
    n, d = x.shape
    L, H = w.n_layers, w.n_heads
    xs = np.empty((L + 1, n, d))
    z1s = np.empty((L, n, d))
    ys = np.empty((L, n, d))
    z2s = np.empty((L, n, d))
    pres = np.empty((L, n, w.d_mlp))
    attns = np.empty((L, H, n, n))
    for layer in range(L):
        xs[layer] = x
        z = layer_norm(x, w.ln1_g[layer], w.ln1_b[layer], w.eps)
        z1s[layer] = z
        q = z @ w.W_Q[layer] + w.b_Q[layer][:, None, :]
        k = z @ w.W_K[layer] + w.b_K[layer][:, None, :]
        for h in range(H):
            attns[layer, h] = attention_pattern(q[h], k[h])
        heads = head_outputs(w, layer, z, attns[layer])
        if ablate:
            for (al, ah), repl in ablate.items():
                if al == layer:
                    heads[ah] = repl
        y = x + heads.sum(axis=0) + w.b_O[layer]
        ys[layer] = y
        z2 = layer_norm(y, w.ln2_g[layer], w.ln2_b[layer], w.eps)
        z2s[layer] = z2
        pre = z2 @ w.W_in[layer] + w.b_in[layer]
        pres[layer] = pre
        x = y + gelu(pre, w.gelu_kind) @ w.W_out[layer] + w.b_out[layer]
    xs[L] = x
    final = layer_norm(x, w.lnf_g, w.lnf_b, w.eps)
    return Trajectory(xs, z1s, ys, z2s, pres, attns, final, final @ w.W_U)
