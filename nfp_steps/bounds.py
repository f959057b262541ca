"""Rigorous bounds of the layernorm, heads and layers stages (DESIGN §6).

LayerNorm (per-row variance lower bounds, local and global Jacobian bounds, an output
enclosure), attention (an enclosure of the exact probabilities, the operator norm of A), the
per-head value and pattern terms (centred and simple forms) and the per-layer constants.
Operator norms come from :mod:`nfp_steps.opnorm`, softmax-row bounds from
:mod:`nfp_steps.softmax_bounds`. Every ``*_ub`` is ≥ and every ``*_lb`` ≤ the exact-real
quantity it names, rounding included (see :mod:`nfp_steps.rigor`). Heuristic values are named
``*_pi`` / ``*_autograd`` and never called bounds.
"""

from __future__ import annotations

import math

import numpy as np

from nfp_steps import rigor as R
from nfp_steps.elementary import REL_ERR
from nfp_steps.opnorm import (  # re-exported: the stages take every bound from here
    opnorm_candidates,
    opnorm_lb,
    opnorm_ub,
    product_lb,
    qk_candidates,
    vo_candidates,
    vo_lb,
)

# |fl(exp(x)) − exp(x)| ≤ EXP_REL_ERR·exp(x) for numpy's float64 exp: the documented bound of
# nfp_steps.elementary (checked against MPFR at 200 bits on > 1e6 points, and in test_rigor.py)
EXP_REL_ERR = REL_ERR["exp"]

# sup_x |GELU'(x)| ≤ GELU_DERIV_SUP for both GELU kinds (true values ≈ 1.12899); certified in
# tests/test_rigor.py by a grid check at 200-bit precision plus a Lipschitz bound between points.
GELU_DERIV_SUP = 1.13


# ---- LayerNorm ------------------------------------------------------------------------------
def variance_lb(x: np.ndarray) -> np.ndarray:
    """Per-row rigorous lower bound on the biased variance (error-bounded two-pass)."""
    d = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    # |μ̂ − μ| ≤ γ_d Σ|x|/d + 2u|μ̂| (sum, then division)
    err_mu = R.up(R.sum_nonneg_ub(np.abs(x), axis=-1)[..., None] * R.gamma(d + 2) / d)
    err_mu = R.up(err_mu + 2 * R.U * np.abs(mu))
    diff = x - mu  # fl(x − μ̂) = (x − μ̂)(1+δ)
    s_lb = R.sumsq_lb(diff / (1.0 + R.U) ** 2 * (1 - 2 * R.U), axis=-1)  # (x−μ̂)² ≥ fl²/(1+u)²
    # (1/d)Σ(x − μ̂)² = var + (μ − μ̂)²  ⇒  var ≥ S/d − err_mu²
    v = R.down(R.down(s_lb / d) - R.up(err_mu[..., 0] ** 2 * (1 + 4 * R.U)))
    return np.maximum(v, 0.0)


def layernorm_row_ub(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    """Per row: ub on ‖J_LN(x_row)‖₂ = max|γ|/√(var+eps) (DESIGN §6)."""
    gmax = float(np.max(np.abs(gamma)))
    den = R.sqrt_down(R.down(variance_lb(x) + eps))
    return R.div_up(gmax, den)


def layernorm_row_pi(x: np.ndarray, gamma: np.ndarray, eps: float, iters: int = 40) -> np.ndarray:
    """Per row: power-iteration estimate of ‖J_LN(x_row)‖₂ (HEURISTIC diagnostic, not a bound).

    Matrix-free: J u = γ ⊙ (u − mean(u) − v (v·u)/d)/σ with σ = √(var + eps), v = (x − μ)/σ,
    and Jᵀ w = (P (γ ⊙ w))/σ (P symmetric); iterates JᵀJ from a fixed start, vectorised over rows.
    """
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    sig = np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    v = (x - mu) / sig

    def proj(u):
        return u - u.mean(axis=-1, keepdims=True) - v * (v * u).sum(axis=-1, keepdims=True) / d

    u = np.broadcast_to(np.cos(np.arange(d) * 0.7 + 0.3), x.shape).copy()
    est = np.zeros(x.shape[:-1])
    for _ in range(iters):
        u /= np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-300)
        ju = gamma * proj(u) / sig
        est = np.linalg.norm(ju, axis=-1)
        u = proj(gamma * ju) / sig
    return est


def layernorm_global_ub(gamma: np.ndarray, eps: float) -> float:
    """Input-free ub max|γ|/√eps, valid for every input row."""
    return float(R.div_up(float(np.max(np.abs(gamma))), R.sqrt_down(eps)))


# ---- attention ------------------------------------------------------------------------------
def affine_radius(
    z: np.ndarray, w: np.ndarray, b: np.ndarray, z_rad: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``fl(z @ w + b)`` and a radius covering the exact Z* W + b for every Z* in z ± z_rad."""
    c, r = R.matmul_radius(z, w)
    if z_rad is not None:
        r = r + R.up(z_rad @ np.abs(w)) * (1.0 + 2.0 * R.gamma(w.shape[0] + 1))
    y = c + b
    return y, R.clean_ub(R.up((r + 2 * R.U * np.abs(y)) * (1 + 4 * R.U)))


def layernorm_enclosure(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """(z, radius): the float64 LayerNorm of the rows of x (as the forward pass computes it) and
    a radius with |LN(x)_exact − z| ≤ radius, by interval arithmetic with outward rounding.

    μ ∈ [s/d ∓ (γ_d Σ|x|/d + ulp)]; var ∈ [variance_lb, upper-rounded mean((x − μ̂)²)] (for any
    c, mean((x − c)²) = var + (μ − c)² ≥ var); σ = √(var + eps); then (x − μ)/σ·γ + β elementwise.
    """
    from nfp_steps.forward import layer_norm

    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    z = layer_norm(x, gamma, beta, eps)
    s = x.sum(axis=-1, keepdims=True)
    e_s = R.up(R.sum_nonneg_ub(np.abs(x), axis=-1)[..., None] * R.gamma(d))
    mu_lo = R.down(R.down(s - e_s) / d)
    mu_hi = R.up(R.up(s + e_s) / d)
    dev_ub = np.maximum(np.abs(R.up(x - mu_lo)), np.abs(R.down(x - mu_hi)))
    var_ub = R.up(R.sumsq_ub(dev_ub, axis=-1)[..., None] / d)
    var_lb = variance_lb(x)[..., None]
    sig_lo = R.sqrt_down(R.down(var_lb + eps))
    sig_hi = R.sqrt_up(R.up(var_ub + eps))
    # t = (x − μ)/σ over the boxes μ ∈ [mu_lo, mu_hi], σ ∈ [sig_lo, sig_hi] (σ > 0)
    num_lo, num_hi = R.down(x - mu_hi), R.up(x - mu_lo)
    cands = [num_lo / sig_lo, num_lo / sig_hi, num_hi / sig_lo, num_hi / sig_hi]
    t_lo = R.down(np.minimum.reduce(cands))
    t_hi = R.up(np.maximum.reduce(cands))
    g_lo = np.minimum(gamma * t_lo, gamma * t_hi)
    g_hi = np.maximum(gamma * t_lo, gamma * t_hi)
    z_lo = R.down(R.down(g_lo) + beta)
    z_hi = R.up(R.up(g_hi) + beta)
    rad = np.maximum(R.up(z_hi - z), R.up(z - z_lo))
    return z, R.clean_ub(np.maximum(rad, 0.0))


def layernorm_input_ball_radius(
    x: np.ndarray, gamma: np.ndarray, eps: float, tol: float
) -> np.ndarray:
    """Per-row radius r (shape (n, 1)) with |LN(x')_j − LN(x)_j| ≤ r for every x' with
    |x' − x| ≤ tol entrywise (the witness tolerance of a certificate).

    ‖J_LN(ξ)‖₂ ≤ max|γ|/σ(ξ), and σ = √(var + eps) is 1/√d-Lipschitz in ℓ₂, so along the segment
    σ ≥ σ(x) − tol; hence ‖LN(x') − LN(x)‖₂ ≤ max|γ|·√d·tol/(σ(x) − tol), which bounds every entry.
    """
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    if tol == 0:
        return np.zeros(x.shape[:-1] + (1,))
    sig_lo = R.sqrt_down(R.down(variance_lb(x)[..., None] + eps))
    den = R.down(sig_lo - tol)
    if np.any(den <= 0):
        raise ValueError(f"witness tolerance {tol} is not below the LayerNorm scale of a row")
    num = R.up(R.mul_up(float(np.max(np.abs(gamma))), R.sqrt_up(float(d))) * tol)
    return R.clean_ub(R.up(num / den))


def score_enclosure(
    z: np.ndarray, wq: np.ndarray, bq: np.ndarray, wk: np.ndarray, bk: np.ndarray,
    z_rad: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(S, err): float attention logits (Z W_Q + b_Q)(Z W_K + b_K)ᵀ/√dh (no mask) and a radius
    with |S_exact − S| ≤ err at every Z* within z ± z_rad."""
    dh = wq.shape[1]
    q, rq = affine_radius(z, wq, bq, z_rad)
    k, rk = affine_radius(z, wk, bk, z_rad)
    s_raw, rs = R.matmul_radius(q, k.T)
    prop = np.abs(q) @ rk.T + rq @ np.abs(k).T + rq @ rk.T
    sq = math.sqrt(dh)
    s = s_raw / sq
    err = R.up((rs + prop) * (1 + 4 * R.gamma(dh + 2)) / R.down(sq)) + 4 * R.U * np.abs(s)
    return s, R.clean_ub(err)


def attention_enclosure(
    z: np.ndarray, wq: np.ndarray, bq: np.ndarray, wk: np.ndarray, bk: np.ndarray,
    z_rad: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, A_lo, A_hi): the float attention pattern and bounds on the exact softmax.

    The exact pattern is softmax over k ≤ q of (Z W_Q + b_Q)(Z W_K + b_K)ᵀ/√dh at the exact Z*
    (the stored Z, or any Z* within z ± z_rad). Logit errors T_q per row give exp(±2T_q)
    factors; exp, sum and division add a relative c.
    """
    n = z.shape[0]
    s, err = score_enclosure(z, wq, bq, wk, bk, z_rad)
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    s_m = np.where(mask, -np.inf, s)
    m = s_m.max(axis=-1, keepdims=True)
    shifted = s_m - m
    e = np.exp(shifted)
    a = e / e.sum(axis=-1, keepdims=True)
    t = np.where(mask, 0.0, err + R.U * np.abs(np.where(mask, 0.0, shifted)))
    t_row = R.up(t.max(axis=-1, keepdims=True) * (1 + 1e-10))
    c = 4 * EXP_REL_ERR + 3 * R.gamma(n + 2)
    ok = t_row <= 0.5
    hi = np.where(ok, R.up(a * (1 + 4 * t_row) * (1 + c)) + 1e-300, 1.0)
    lo = np.where(ok, R.down(a * (1 - 2 * t_row) * (1 - c)), 0.0)
    lo = np.where(a < 2.0**-1000, 0.0, lo)  # near/below the subnormal range: relative error void
    hi = np.where(mask, 0.0, np.minimum(R.clean_ub(hi), 1.0))
    lo = np.where(mask, 0.0, R.clean_lb(lo))
    return a, lo, hi


def product_ub(a: np.ndarray, a_rad: np.ndarray | None, b: np.ndarray) -> float:
    """Upper bound on ‖A* B‖₂ for an exact B and A* within ``a`` ± ``a_rad``: the smaller of the
    dense product (with its rounding radius) and the factor bound ‖A*‖₂‖B‖₂."""
    c, rc = R.matmul_radius(a, b)
    if a_rad is not None:
        rc = R.clean_ub(R.up((rc + a_rad @ np.abs(b)) * (1.0 + 4.0 * R.gamma(b.shape[0] + 2))))
    factor = float(R.mul_up(opnorm_ub(a, a_rad), opnorm_ub(b)))
    return min(opnorm_ub(c, rc), factor)


def centred(m: np.ndarray, rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``m`` minus their (computed) mean ĉ, with a radius for the exact M* − 1ĉᵀ.

    ĉ is just some float vector: softmax Jacobian rows sum to zero, so subtracting any 1ĉᵀ from
    keys or values leaves the pattern term unchanged; only the subtraction's rounding and the
    radius of M* count.
    """
    c = m.mean(axis=0, keepdims=True)
    out = m - c
    return out, R.clean_ub(R.up(rad + R.up(R.U * np.abs(out) * (1.0 + 2.0 * R.U))))


def attention_opnorm(a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
    """(lb, ub) on ‖A*‖₂ for the exact row-stochastic A* in [lo, hi]."""
    one = float(np.max(R.sum_nonneg_ub(hi, axis=0)))  # max column sum
    # ‖A*‖_∞ = 1 exactly (rows sum to 1) gives Schur; 0 ≤ A* ≤ hi entrywise gives ‖A*‖ ≤ ‖hi‖
    # (Perron-Frobenius), bounded by the certified candidates
    ub = min(float(R.sqrt_up(one)), opnorm_ub(hi))
    rad = R.up(np.maximum(hi - a, a - lo))
    return opnorm_lb(a, rad), ub


def head_bounds(
    z: np.ndarray,
    wq: np.ndarray,
    bq: np.ndarray,
    wk: np.ndarray,
    bk: np.ndarray,
    wv: np.ndarray,
    wo: np.ndarray,
    softmax: str = "rows",
    z_rad: np.ndarray | None = None,
    z_norm: dict[str, float] | None = None,
) -> dict[str, float]:
    """Bounds on one head's Jacobian at its input Z* (DESIGN §6, "Head (l,h)"): the stored Z, or
    every Z* within z ± z_rad (the exact LN1 output of the stored x; :func:`layernorm_enclosure`).

    value term δZ ↦ A δZ W_VO has norm ‖A‖₂‖W_VO‖₂ exactly; pattern term ub is the simple valid
    form (s/√dh)(2‖Z‖₂‖W_QK‖₂ + √n‖W_K b_Qᵀ‖₂)‖Z‖₂‖W_VO‖₂ (b_K, b_V drop out: J(p)1 = 0).
    """
    from nfp_steps.softmax_bounds import CANDIDATES, row_bounds

    if softmax not in ("rows", "half"):
        raise ValueError(f"softmax bound must be 'rows' or 'half', got {softmax!r}")
    n, dh = z.shape[0], wq.shape[1]
    a, lo, hi = attention_enclosure(z, wq, bq, wk, bk, z_rad)
    a_lb, a_ub = attention_opnorm(a, lo, hi)
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    rows = row_bounds(lo, hi, mask)
    soft = {f"softmax_{k}": float(np.max(rows[k])) for k in CANDIDATES}
    # rows whose logit errors were too large for an enclosure (lo = 0, hi = 1: only ½ holds)
    soft["softmax_fallback_rows"] = float(np.count_nonzero(
        np.all(lo == 0.0, axis=-1) & (np.max(hi, axis=-1) >= 1.0)))
    softmax_ub = soft["softmax_half"] if softmax == "half" else float(np.max(rows["used"]))
    qk = qk_candidates(wq, wk)  # ‖W_Q W_Kᵀ‖ (never ‖W_Kᵀ W_Q‖)
    vo = vo_candidates(wv, wo)
    vo_low = vo_lb(wv, wo)
    qk_lb = product_lb(wq, wk)
    if z_norm is None:  # the same for every head of a layer: callers may pass it in
        z_norm = opnorm_candidates(z, z_rad)
    bq_vec, bq_rad = R.matmul_radius(wk, bq)
    bq_ub = R.vec_norm_ub(bq_vec, bq_rad)
    inner = R.add_up(R.mul_up(2.0, R.mul_up(z_norm["used"], qk["used"])),
                     R.mul_up(R.sqrt_up(float(n)), bq_ub))
    scale = R.div_up(softmax_ub, R.sqrt_down(float(dh)))
    pattern_simple = float(R.mul_up(scale, R.mul_up(inner, R.mul_up(z_norm["used"], vo["used"]))))
    # centred form (DESIGN §6): (s/√dh)(‖W_Q K_cᵀ‖ + ‖Q W_Kᵀ‖)‖V_c W_O‖; b_K and b_V cancel
    q, rq = affine_radius(z, wq, bq, z_rad)
    k, rk = affine_radius(z, wk, np.zeros(dh), z_rad)
    v, rv = affine_radius(z, wv, np.zeros(wv.shape[1]), z_rad)
    kc, rkc = centred(k, rk)
    vc, rvc = centred(v, rv)
    t_qk = product_ub(kc, rkc, wq.T)  # ‖K_c W_Qᵀ‖ = ‖W_Q K_cᵀ‖
    t_kq = product_ub(q, rq, wk.T)  # ‖Q W_Kᵀ‖
    t_vo = product_ub(vc, rvc, wo)  # ‖V_c W_O‖
    pattern_centred = float(R.mul_up(scale, R.mul_up(R.add_up(t_qk, t_kq), t_vo)))
    pattern_ub = min(pattern_simple, pattern_centred)
    value_ub = float(R.mul_up(a_ub, vo["used"]))
    value_lb = float(R.mul_down(a_lb, vo_low))
    eps_ub = float(R.div_up(pattern_ub, value_lb)) if value_lb > 0 else R.INF
    return {
        "attn_norm_lb": a_lb,
        "attn_norm_ub": a_ub,
        **{f"qk_ub_{k}": v for k, v in qk.items() if k != "used"},
        "qk_ub": qk["used"],
        "qk_lb": qk_lb,
        **{f"vo_ub_{k}": v for k, v in vo.items() if k != "used"},
        "vo_ub": vo["used"],
        "vo_lb": vo_low,
        **{f"z_norm_ub_{k}": v for k, v in z_norm.items() if k != "used"},
        "z_norm_ub": z_norm["used"],
        **soft,
        "softmax_ub": softmax_ub,
        "value_ub": value_ub,
        "value_lb": value_lb,
        "pattern_ub_simple": pattern_simple,
        "pattern_ub_centred": pattern_centred,
        "wq_kc_ub": t_qk,
        "q_wk_ub": t_kq,
        "vc_wo_ub": t_vo,
        "pattern_ub": float(pattern_ub),
        "eps_ub": eps_ub,
    }


def pair_error_ub(eps1: float, eps2: float) -> float:
    """(1+ε₁)(1+ε₂) − 1, rounded up."""
    return float(R.add_up(R.add_up(eps1, eps2), R.mul_up(eps1, eps2)))


def layer_constant(a: float, m: float) -> float:
    """C = a + m + a·m bounds ‖J_l − I‖₂ when ‖attn part‖ ≤ a and ‖MLP part‖ ≤ m."""
    return pair_error_ub(a, m)
