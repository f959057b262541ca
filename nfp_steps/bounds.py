"""Rigorous bounds for issue-2's stages: operator norms, LayerNorm, softmax, heads, layers.

These are the simplest *valid* forms of DESIGN §6 (Frobenius/Schur candidates, an exact
enclosure of the attention probabilities, the ½ softmax bound, the simple pattern-term form).
Every ``*_ub`` is ≥ and every ``*_lb`` ≤ the exact-real quantity it names, rounding included
(see :mod:`nfp_steps.rigor`). Heuristic values are named ``*_est`` and never called bounds.
"""

from __future__ import annotations

import math

import numpy as np

from nfp_steps import rigor as R

# |fl(exp(x)) − exp(x)| ≤ EXP_REL_ERR·exp(x) for numpy's float64 exp (checked against mpmath
# at 200 bits in tests/test_rigor.py). glibc/numpy document < 1 ulp; we allow 4 u.
EXP_REL_ERR = 4 * R.U

# sup_x |GELU'(x)| ≤ GELU_DERIV_SUP for both GELU kinds (true values ≈ 1.12899); certified in
# tests/test_rigor.py by a grid check at 200-bit precision plus a Lipschitz bound between points.
GELU_DERIV_SUP = 1.13


# ---- operator norms -------------------------------------------------------------------------
def opnorm_candidates(m: np.ndarray, radius: np.ndarray | None = None) -> dict[str, float]:
    """Valid upper bounds on ‖M‖₂ for M exact (or ``m`` ± ``radius``), and the one used."""
    frob = R.frobenius_ub(m, radius)
    schur = float(R.sqrt_up(R.mul_up(R.one_norm_ub(m, radius), R.inf_norm_ub(m, radius))))
    return {"frob": frob, "schur": schur, "used": min(frob, schur)}


def opnorm_ub(m: np.ndarray, radius: np.ndarray | None = None) -> float:
    return opnorm_candidates(m, radius)["used"]


def product_opnorm_candidates(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Upper bounds on ‖a @ b‖₂ (e.g. W_Q W_Kᵀ, W_V W_O): factor and dense-product forms."""
    factor = float(R.mul_up(opnorm_ub(a), opnorm_ub(b)))
    c, rad = R.matmul_radius(a, b)
    dense = opnorm_candidates(c, rad)
    out = {"factor": factor, "dense_frob": dense["frob"], "dense_schur": dense["schur"]}
    out["used"] = min(out.values())
    return out


def chain_norm_lb(mats: list[tuple[np.ndarray, np.ndarray | None]], x: np.ndarray) -> float:
    """Rigorous lower bound on ‖M₁⋯M_k x‖₂ / ‖x‖₂ ≤ ‖M₁⋯M_k‖₂ (a Rayleigh-type quotient).

    Each factor is ``(m, radius)``: the exact factor lies within ``m`` ± ``radius`` (radius
    None: exact). The vector is propagated right to left with an error radius.
    """
    y = np.asarray(x, dtype=np.float64)
    r = np.zeros_like(y)
    for m, rad in reversed(mats):
        ynew, rr = R.matmul_radius(m, y)
        # exact = m*(y*) with |m* − m| ≤ rad, |y* − y| ≤ r
        acc = rr + np.abs(m) @ r
        if rad is not None:
            acc = acc + rad @ (np.abs(y) + r)
        k = m.shape[-1]
        r = R.clean_ub(R.up(acc * (1.0 + 4.0 * R.gamma(k + 2))))
        y = ynew
    num = R.vec_norm_lb(y, r)
    den = R.vec_norm_ub(np.asarray(x, dtype=np.float64))
    return float(R.div_down(num, den)) if den > 0 else 0.0


def power_top_right(mats: list[np.ndarray], iters: int = 60, seed: int = 0) -> np.ndarray:
    """A (heuristic) top right singular vector of M = M₁⋯M_k by power iteration on MᵀM, applied
    through the factors (no dense product, no LAPACK). Only ever fed to :func:`chain_norm_lb`,
    so its accuracy affects tightness, never validity. Deterministic (seeded start)."""
    q = mats[-1].shape[-1]
    x = np.random.default_rng(seed).standard_normal(q)
    for _ in range(iters):
        y = x
        for m in reversed(mats):
            y = m @ y
        for m in mats:
            y = m.T @ y
        nrm = np.linalg.norm(y)
        if not np.isfinite(nrm) or nrm == 0.0:
            break
        x = y / nrm
    return x


def top_right_singular_vector(m: np.ndarray) -> np.ndarray:
    """Heuristic top right singular vector of one matrix (see :func:`power_top_right`)."""
    if m.size == 0:
        return np.ones(m.shape[-1])
    return power_top_right([m])


def lowrank_top_vector(a: np.ndarray, bt: np.ndarray) -> np.ndarray:
    """Heuristic top right singular vector of a @ bt (a: p×r, bt: r×q) through the factors."""
    return power_top_right([a, bt])


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


def attention_enclosure(
    z: np.ndarray, wq: np.ndarray, bq: np.ndarray, wk: np.ndarray, bk: np.ndarray,
    z_rad: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, A_lo, A_hi): the float attention pattern and bounds on the exact softmax.

    The exact pattern is softmax over k ≤ q of (Z W_Q + b_Q)(Z W_K + b_K)ᵀ/√dh at the exact Z*
    (the stored Z, or any Z* within z ± z_rad). Logit errors T_q per row give exp(±2T_q)
    factors; exp, sum and division add a relative c.
    """
    n, dh = z.shape[0], wq.shape[1]
    q, rq = affine_radius(z, wq, bq, z_rad)
    k, rk = affine_radius(z, wk, bk, z_rad)
    s_raw, rs = R.matmul_radius(q, k.T)
    prop = np.abs(q) @ rk.T + rq @ np.abs(k).T + rq @ rk.T
    sq = math.sqrt(dh)
    s = s_raw / sq
    err = R.up((rs + prop) * (1 + 4 * R.gamma(dh + 2)) / R.down(sq)) + 4 * R.U * np.abs(s)
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
    ub = min(float(R.sqrt_up(one)), R.frobenius_ub(hi))  # ‖A*‖_∞ = 1 exactly
    rad = np.maximum(hi - a, a - lo)
    lb = chain_norm_lb([(a, rad)], top_right_singular_vector(a))
    return lb, ub


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
    qk = product_opnorm_candidates(wq, wk.T)
    vo = product_opnorm_candidates(wv, wo)
    vo_lb = chain_norm_lb([(wv, None), (wo, None)], lowrank_top_vector(wv, wo))
    qk_lb = chain_norm_lb([(wq, None), (wk.T, None)], lowrank_top_vector(wq, wk.T))
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
    value_lb = float(R.mul_down(a_lb, vo_lb))
    eps_ub = float(R.div_up(pattern_ub, value_lb)) if value_lb > 0 else R.INF
    return {
        "attn_norm_lb": a_lb,
        "attn_norm_ub": a_ub,
        "qk_ub_factor": qk["factor"],
        "qk_ub_dense_frob": qk["dense_frob"],
        "qk_ub_dense_schur": qk["dense_schur"],
        "qk_ub": qk["used"],
        "qk_lb": qk_lb,
        "vo_ub_factor": vo["factor"],
        "vo_ub_dense_frob": vo["dense_frob"],
        "vo_ub_dense_schur": vo["dense_schur"],
        "vo_ub": vo["used"],
        "vo_lb": vo_lb,
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
