"""Heuristic Jacobian norms from torch autograd (float64): diagnostics next to the rigorous bounds.

Nothing here is a bound: power iteration approaches ‖J_l − I‖₂ from below up to rounding, and
dense autograd Jacobians carry float64 rounding. They show how tight the rigorous ub are and are
labelled ``*_pi`` / ``*_autograd`` wherever they are stored or printed.

The layer map is GPT-2's block at the stored input x_l: f(x) = x + A(x) + M(x + A(x)), so
J_l − I = d(f(x) − x)/dx, applied matrix-free with ``torch.func.jvp`` / ``vjp`` (one forward-mode
and one reverse-mode pass per iteration; feasible at GPT-2-small size).
"""

from __future__ import annotations

import numpy as np

from nfp_steps.model import GPT2Weights


def torch_params(w: GPT2Weights):
    """float64 torch copies of the weights (exact)."""
    from nfp_steps.torch_gpt2 import weights_to_torch_params

    return weights_to_torch_params(w)


def residual_fn(params, layer: int):
    """x (n, d) ↦ block_l(x) − x, GPT-2 semantics (attention biases, gelu kind, eps)."""
    from nfp_steps.torch_gpt2 import _settings, attention, layer_norm, mlp

    eps, kind = _settings(params, None, None)

    def f(x):
        a, _ = attention(params, layer, layer_norm(x, params["ln1_g"][layer],
                                                   params["ln1_b"][layer], eps))
        y = x + a
        m = mlp(params, layer, layer_norm(y, params["ln2_g"][layer], params["ln2_b"][layer], eps),
                kind)
        return a + m

    return f


def layer_residual_pi(w: GPT2Weights, x: np.ndarray, layer: int, iters: int = 20,
                      seed: int = 0, params=None) -> float:
    """Power-iteration estimate of ‖J_l − I‖₂ at x (HEURISTIC)."""
    import torch
    from torch.func import jvp, vjp

    params = torch_params(w) if params is None else params
    f = residual_fn(params, layer)
    x0 = torch.as_tensor(np.asarray(x, dtype=np.float64))
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    _, pullback = vjp(f, x0)
    est = 0.0
    for _ in range(iters):
        nv = torch.linalg.vector_norm(v)
        if not torch.isfinite(nv) or nv == 0:
            return float("nan")
        v = v / nv
        _, jv = jvp(f, (x0,), (v,))
        est = float(torch.linalg.vector_norm(jv))
        (v,) = pullback(jv)
    return est


def head_jacobian_norms(w: GPT2Weights, z: np.ndarray, layer: int, head: int,
                        max_size: int = 1024) -> dict[str, float]:
    """Dense autograd ‖·‖₂ of one head's Jacobian w.r.t. its input Z and of its value and
    pattern terms (HEURISTIC, float64); NaN when n·d > max_size (too large to form densely)."""
    import torch

    n, d = z.shape
    if n * d > max_size:
        nan = float("nan")
        return {"head_autograd": nan, "value_autograd": nan, "pattern_autograd": nan}
    wq, wk, wv = (torch.as_tensor(getattr(w, k)[layer, head]) for k in ("W_Q", "W_K", "W_V"))
    bq, bk, bv = (torch.as_tensor(getattr(w, k)[layer, head]) for k in ("b_Q", "b_K", "b_V"))
    wo = torch.as_tensor(w.W_O[layer, head])
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
    zt = torch.as_tensor(np.asarray(z, dtype=np.float64))

    def pattern(zz):
        s = (zz @ wq + bq) @ (zz @ wk + bk).T / float(np.sqrt(wq.shape[1]))
        return torch.softmax(s.masked_fill(mask, float("-inf")), -1)

    def head_out(zz):
        return pattern(zz) @ (zz @ wv + bv) @ wo

    jac = torch.autograd.functional.jacobian(head_out, zt, vectorize=True).reshape(n * d, n * d)
    with torch.no_grad():
        a = pattern(zt)
    value = torch.kron(a.contiguous(), (wv @ wo).T.contiguous())
    spec = torch.linalg.matrix_norm
    return {"head_autograd": float(spec(jac, 2)), "value_autograd": float(spec(value, 2)),
            "pattern_autograd": float(spec(jac - value, 2))}
