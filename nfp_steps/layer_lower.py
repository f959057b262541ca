"""Certified lower bounds on ‖J_l − I‖₂ for GPT-2 blocks (Krylov vector + ball JVP).

1. A Krylov (Lanczos) process on (J_l − I)ᵀ(J_l − I), with float64 torch JVP/VJP, picks a vector
   v close to the top right singular vector (heuristic: it only affects tightness).
2. (J_l − I)v is evaluated again in ball arithmetic (:mod:`nfp_steps.ball`) at the stored x_l:
   the ball contains the exact product, so lb = (‖mid‖ − ‖rad‖)/‖v‖ ≤ ‖(J_l − I)v‖/‖v‖ ≤
   ‖J_l − I‖₂, with every rounding accounted for.

The JVP follows GPT-2 exactly: d LN(x)[v] = γ ⊙ (v_c − x_c (x_c·v_c)/(dσ²))/σ; per head
dS = (dQ Kᵀ + Q dKᵀ)/√d_h, dP_q = P_q ⊙ (dS_q − P_q·dS_q), d out = (dP V + P dV) W_O; the MLP
derivative uses GELU′ on an enclosure of the pre-activations. The softmax is evaluated with an
exact shift (any constant per row leaves it unchanged) and exact zeros on masked keys.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np

from nfp_steps import rigor as R
from nfp_steps.ball import Ball, BallError
from nfp_steps.model import GPT2Weights


def _const(value: mpmath.mpf) -> Ball:
    """A real constant as a ball: the nearest float ± one ulp."""
    f = float(value)
    return Ball(np.float64(f), np.float64(abs(np.nextafter(f, np.inf) - f)))


with mpmath.workprec(200):
    SQRT_2_OVER_PI = _const(mpmath.sqrt(2 / mpmath.pi))
    INV_SQRT_2 = _const(1 / mpmath.sqrt(2))
    INV_SQRT_2PI = _const(1 / mpmath.sqrt(2 * mpmath.pi))
    GELU_A = _const(mpmath.mpf("0.044715"))


def layer_norm_ball(x: Ball, g: np.ndarray, b: np.ndarray, eps: float):
    """(LN(x), x_c, σ) as balls."""
    xc = x - x.mean()
    var = (xc * xc).mean()
    sig = (var + eps).sqrt()
    return xc / sig * g + b, xc, sig


def layer_norm_jvp(xc: Ball, sig: Ball, g: np.ndarray, v: Ball) -> Ball:
    vc = v - v.mean()
    t = (xc * vc).mean()
    return (vc - xc * t / (sig * sig)) / sig * g


def gelu_deriv(x: Ball, kind: str) -> Ball:
    if kind == "tanh":
        x2 = x * x
        t = (SQRT_2_OVER_PI * (x + GELU_A * x2 * x)).tanh()
        dt = (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_A * x2)
        return 0.5 * (1.0 + t) + 0.5 * x * dt
    phi = (-0.5 * (x * x)).exp() * INV_SQRT_2PI
    return 0.5 * (1.0 + (x * INV_SQRT_2).erf()) + x * phi


def _masked_shifted(s: Ball, keep: np.ndarray) -> Ball:
    """Logits minus the row max of the kept (causal) entries; masked entries become exact 0.

    Any per-row constant leaves the softmax unchanged, and masked entries are multiplied by 0
    afterwards, so their (possibly huge) logits must not reach exp.
    """
    shift = np.max(np.where(keep > 0, s.m, -np.inf), axis=-1, keepdims=True)
    t = s - shift
    return Ball(np.where(keep > 0, t.m, 0.0), np.where(keep > 0, t.r, 0.0))


def _head_ball(w: GPT2Weights, layer: int, h: int, z: Ball, dz: Ball):
    """(P, V, dP, dZ W_V) of one head at z along dz: dP_q = P_q ⊙ (dS_q − P_q·dS_q) with
    dS = (dQ Kᵀ + Q dKᵀ)/√d_h, on the causal entries."""
    n, dh = z.m.shape[0], w.d_head
    keep = np.tril(np.ones((n, n)))
    sq = Ball.exact(np.float64(dh)).sqrt()
    q = z @ w.W_Q[layer, h] + w.b_Q[layer, h]
    k = z @ w.W_K[layer, h] + w.b_K[layer, h]
    v = z @ w.W_V[layer, h] + w.b_V[layer, h]
    dq, dk = dz @ w.W_Q[layer, h], dz @ w.W_K[layer, h]
    e = _masked_shifted(q @ k.T / sq, keep).exp() * keep
    p = e / e.sum()
    ds = ((dq @ k.T) + (q @ dk.T)) / sq * keep
    dp = p * (ds - (p * ds).sum())
    return p, v, dp, dz @ w.W_V[layer, h]


def attention_ball(w: GPT2Weights, layer: int, z: Ball, dz: Ball) -> tuple[Ball, Ball]:
    """(attention sublayer output, its JVP) at z along dz."""
    out = Ball.exact(np.broadcast_to(w.b_O[layer], z.m.shape))
    dout = Ball.exact(np.zeros(z.m.shape))
    for h in range(w.n_heads):
        p, v, dp, dv = _head_ball(w, layer, h, z, dz)
        out = out + (p @ v) @ w.W_O[layer, h]
        dout = dout + ((dp @ v) + (p @ dv)) @ w.W_O[layer, h]
    return out, dout


def head_pattern_jvp_ball(w: GPT2Weights, layer: int, head: int, z: Ball, dz: Ball) -> Ball:
    """A ball containing the exact pattern term of head (layer, head) at Z applied to dZ:
    dA·V W_O with dA_q = J(p_q) dS_q, dS = (dZ W_Q Kᵀ + Q W_Kᵀ dZᵀ)/√d_h (values held fixed)."""
    _, v, dp, _ = _head_ball(w, layer, head, z, dz)
    return (dp @ v) @ w.W_O[layer, head]


def head_pattern_vector(w: GPT2Weights, layer: int, head: int, z: np.ndarray, iters: int = 20,
                        seed: int = 0) -> np.ndarray:
    """Power-iteration vector for the pattern term (torch float64 JVP/VJP; heuristic)."""
    import torch
    from torch.func import jvp, vjp

    t = {k: torch.as_tensor(getattr(w, k)[layer, head])
         for k in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V")}
    z0 = torch.as_tensor(np.asarray(z, dtype=np.float64))
    n = z0.shape[0]
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
    vo = ((z0 @ t["W_V"] + t["b_V"]) @ t["W_O"]).detach()

    def f(zz):
        s = (zz @ t["W_Q"] + t["b_Q"]) @ (zz @ t["W_K"] + t["b_K"]).T / float(np.sqrt(w.d_head))
        return torch.softmax(s.masked_fill(mask, float("-inf")), -1) @ vo

    _, pullback = vjp(f, z0)
    u = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for _ in range(iters):
        nu = torch.linalg.vector_norm(u)
        if not torch.isfinite(nu) or nu <= 1e-300:
            break
        u = u / nu
        _, ju = jvp(f, (z0,), (u,))
        (u,) = pullback(ju)
    return u.numpy()


def head_pattern_lower_bound(w: GPT2Weights, layer: int, head: int, z: np.ndarray,
                             z_rad: np.ndarray | None = None) -> float:
    """Certified lb on the pattern term's ‖·‖₂ at every Z* in z ± z_rad (a Rayleigh quotient)."""
    u = head_pattern_vector(w, layer, head, z)
    nu = R.vec_norm_ub(u)
    if not (nu > 0 and math.isfinite(nu)):
        return 0.0
    zb = Ball(np.asarray(z, dtype=np.float64),
              np.zeros_like(z) if z_rad is None else np.asarray(z_rad, dtype=np.float64))
    try:
        out = head_pattern_jvp_ball(w, layer, head, zb, Ball.exact(u))
    except BallError:  # enclosure too wide (extreme weights): 0 is a valid lower bound
        return 0.0
    return float(R.div_down(out.norm_lb(), nu))


def mlp_input_bounds(w: GPT2Weights, layer: int, x: np.ndarray) -> tuple[np.ndarray, float]:
    """At the exact MLP input of block l for the stored x_l (y* = x_l + attention(x_l), known
    as a ball, not the stored fl(y)): per row a rigorous ub on ‖J_LN2(y*_row)‖₂, and a rigorous
    ub on max |GELU′| over the exact pre-activations. If the enclosure cannot be formed
    (extreme weights), the input-free bounds: max|γ|/√eps per row and the GELU′ supremum."""
    try:
        return _mlp_input_bounds(w, layer, x)
    except BallError:
        from nfp_steps.bounds import GELU_DERIV_SUP, layernorm_global_ub

        g = layernorm_global_ub(w.ln2_g[layer], w.eps)
        return np.full(x.shape[0], g), GELU_DERIV_SUP


def _mlp_input_bounds(w: GPT2Weights, layer: int, x: np.ndarray) -> tuple[np.ndarray, float]:
    X = Ball.exact(x)
    z1, _, _ = layer_norm_ball(X, w.ln1_g[layer], w.ln1_b[layer], w.eps)
    a, _ = attention_ball(w, layer, z1, Ball.exact(np.zeros_like(x)))
    y = X + a
    yc = y - y.mean()
    var = (yc * yc).mean()
    var_lb = np.maximum(R.down(var.m - var.r), 0.0)[..., 0]
    gmax = float(np.max(np.abs(w.ln2_g[layer])))
    ln2_rows = R.div_up(gmax, R.sqrt_down(R.down(var_lb + w.eps)))
    z2, _, _ = layer_norm_ball(y, w.ln2_g[layer], w.ln2_b[layer], w.eps)
    gp = gelu_deriv(z2 @ w.W_in[layer] + w.b_in[layer], w.gelu_kind)
    return ln2_rows, float(np.max(R.up(np.abs(gp.m) + gp.r)))


def residual_jvp_ball(w: GPT2Weights, layer: int, x: np.ndarray, v: np.ndarray) -> Ball:
    """A ball containing the exact (J_l − I)v at the stored input x (n, d), v (n, d)."""
    X, V = Ball.exact(x), Ball.exact(v)
    z1, xc1, sig1 = layer_norm_ball(X, w.ln1_g[layer], w.ln1_b[layer], w.eps)
    dz1 = layer_norm_jvp(xc1, sig1, w.ln1_g[layer], V)
    a, da = attention_ball(w, layer, z1, dz1)
    y, dy = X + a, V + da
    z2, xc2, sig2 = layer_norm_ball(y, w.ln2_g[layer], w.ln2_b[layer], w.eps)
    dz2 = layer_norm_jvp(xc2, sig2, w.ln2_g[layer], dy)
    pre = z2 @ w.W_in[layer] + w.b_in[layer]
    dpre = dz2 @ w.W_in[layer]
    dm = (gelu_deriv(pre, w.gelu_kind) * dpre) @ w.W_out[layer]
    return da + dm


def krylov_vector(w: GPT2Weights, layer: int, x: np.ndarray, steps: int, seed: int = 0,
                  params=None) -> np.ndarray:
    """Ritz vector of the top eigenvalue of (J−I)ᵀ(J−I) after ``steps`` Lanczos steps
    (full reorthogonalisation; torch float64 JVP/VJP). Heuristic: only tightness depends on it."""
    import torch
    from torch.func import jvp, vjp

    from nfp_steps.jacobian_diag import residual_fn, torch_params

    params = torch_params(w) if params is None else params
    f = residual_fn(params, layer)
    x0 = torch.as_tensor(np.asarray(x, dtype=np.float64))
    _, pullback = vjp(f, x0)

    def gram(u):
        _, ju = jvp(f, (x0,), (u,))
        return pullback(ju)[0]

    g = torch.Generator().manual_seed(seed)
    q = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    basis: list[torch.Tensor] = []
    for _ in range(max(1, steps)):
        for b in basis:  # full reorthogonalisation
            q = q - (b * q).sum() * b
        nq = torch.linalg.vector_norm(q)
        if not torch.isfinite(nq) or nq <= 1e-300:
            break
        q = q / nq
        basis.append(q)
        q = gram(q)
    k = len(basis)
    images = [gram(b) for b in basis]
    t = np.array([[float((basis[i] * images[j]).sum()) for j in range(k)] for i in range(k)])
    evals, evecs = np.linalg.eigh((t + t.T) / 2)
    coef = evecs[:, int(np.argmax(evals))]
    v = sum(float(c) * b for c, b in zip(coef, basis, strict=True))
    return v.numpy()


def layer_lower_bound(w: GPT2Weights, layer: int, x: np.ndarray, steps: int = 4,
                      params=None) -> float:
    """Certified lb ≤ ‖J_l − I‖₂ at the stored x (a Rayleigh quotient of an explicit vector)."""
    v = krylov_vector(w, layer, x, steps, params=params)
    nv = R.vec_norm_ub(v)
    if not (nv > 0 and math.isfinite(nv)):
        return 0.0
    try:
        ball = residual_jvp_ball(w, layer, x, v)
    except BallError:  # enclosure too wide (extreme weights): 0 is a valid lower bound
        return 0.0
    return float(R.div_down(ball.norm_lb(), nv))
