"""Rigorous bounds on spectral norms ‖M‖₂ of float64 matrices, and of head products A Bᵀ.

Every ``*_ub`` value (and every candidate) is ≥, every ``*_lb`` ≤, the exact-real spectral norm
of the matrix as stored (or of any matrix in ``m`` ± ``radius``), floating-point rounding
included, for any summation order (multithreaded BLAS, FMA). Error model and primitives:
:mod:`nfp_steps.rigor` (u = 2⁻⁵³, η = 2⁻¹⁰⁷⁴, γ_k = ku/(1−ku); |fl(XY) − XY| ≤ γ_k|X||Y| + kη).
NaN/Inf in the input makes every upper candidate +∞ and every lower bound 0.

Scaling. M is first multiplied by 2⁻ᵉ with 2ᵉ⁻¹ ≤ max|mᵢⱼ| < 2ᵉ (so Grams cannot overflow and
tiny matrices do not underflow). The scaling is exact except where an entry becomes subnormal;
there the exact scaled entry is within η/2 of the stored one, and η joins the radius. Results
are scaled back by 2ᵉ (exact unless they leave the normal range; then rounded outward).

Radius. M* ∈ M ± ρ entrywise. Entrywise candidates (Frobenius, Schur, abs-Gram) use |M| + ρ
directly. Gram-based candidates bound ‖M‖₂ of the midpoint and add ‖M* − M‖₂ ≤ ‖ρ‖₂ (Perron-
Frobenius: |Δ| ≤ ρ ⇒ ‖Δ‖₂ ≤ ‖ρ‖₂) ≤ min(‖ρ‖_F, √(‖ρ‖₁‖ρ‖_∞)).

Candidates for ‖M‖₂ (G = MᵀM or MMᵀ, the smaller side, k×k; ‖M‖₂² = λ_max(G)):

* ``frobenius`` ‖M‖₂ ≤ ‖M‖_F (rigorous sum of squares, rounded up).
* ``schur``  ‖M‖₂² ≤ ‖M‖₁‖M‖_∞ (rigorous absolute row/column sums).
* ``abs_gram_gersh`` / ``abs_gram_brauer``: with P = |M| + ρ, |G| ≤ PᵀP entrywise, so
  λ_max(G) ≤ ρ(PᵀP) ≤ max_i (PᵀP1)_i, two non-negative mat-vecs (no Gram formed), rounded up.
  Brauer uses dᵢ = ‖P_{:,i}‖² ≥ gᵢᵢ and rᵢ = (PᵀP1)ᵢ − dᵢ ≥ Σ_{j≠i}|gᵢⱼ| (upper rᵢ from an
  upper row sum minus a lower dᵢ).
* Signed Gram: Ĝ = fl(XXᵀ) (SYRK), mirrored from its upper triangle (exactly symmetric H),
  |G − H| ≤ E := γ_{n+1}(1+2γ)fl(|X||X|ᵀ) + 2nη (n the long side), E symmetrised by max(E, Eᵀ).
  By Weyl λ_max(G) ≤ λ_max(H) + δ_E with δ_E ≥ ‖E‖₂ = ρ(E) ≤ min(‖E‖_∞, ‖E‖_F).
  - ``gram``  λ_max(G) = ρ(G) ≤ ‖G‖_∞ ≤ ‖|H| + E‖_∞.
  - ``gram_gersh`` max_i (hᵢᵢ + eᵢᵢ + Σ_{j≠i}(|hᵢⱼ| + eᵢⱼ)) (signed Gershgorin; equals ``gram``
    up to rounding since hᵢᵢ ≥ 0, reported because the design lists it).
  - ``gram_brauer`` Brauer's ovals: every eigenvalue lies in some {z : |z−gᵢᵢ||z−gⱼⱼ| ≤ rᵢrⱼ},
    i ≠ j, so λ_max ≤ max_{i≠j} bᵢⱼ, bᵢⱼ = (dᵢ + dⱼ + √((dᵢ−dⱼ)² + 4rᵢrⱼ))/2, which is
    non-decreasing in each dᵢ and rᵢ ≥ 0: we plug in upper bounds and round every op upward
    (|dᵢ−dⱼ| as nextafter(|fl(dᵢ−dⱼ)|, +∞)).
  - ``trace2`` λ_max(G) ≤ ‖G‖_F ≤ ‖H‖_F + ‖E‖_F (= tr(G²)^{1/2}).
  - ``trace4`` λ_max(H) ≤ (Σλᵢ(H)⁴)^{1/4} = ‖H²‖_F^{1/2} for symmetric H; H² = fl(HH) ± radius,
    plus δ_E (Weyl). Only for k ≤ TRACE4_MAX_DIM (two k³ GEMMs).
  - ``moment`` Wolkowicz–Styan, valid for every real symmetric matrix:
    λ_max ≤ (t + √((k−1)(k f − t²)))/k with t = tr G = ‖M‖_F² ∈ [t⁻, t⁺] and f = ‖G‖_F² ≤ f⁺.
    Each occurrence is bounded separately (t⁺ outside, (t⁻)² under the root), rounded up.
  - ``cholesky`` (tight): λ̂ = eigvalsh(H)_max (heuristic), t = λ̂ + margin. Form
    A = tI − H with the diagonal rounded down (so tI − H ⪰ A), take any floating-point Cholesky
    L of A (LAPACK), then bound the residual a posteriori: D := up(|fl(LLᵀ) − A|) + radius of
    the GEMM fl(LLᵀ) ≥ |LLᵀ − A| (symmetrised by min(D, Dᵀ), the residual being symmetric).
    A = LLᵀ − Δ ⪰ −Δ gives λ_min(A) ≥ −‖D‖₂, hence λ_max(H) ≤ t + δ_D and
    λ_max(G) ≤ t + δ_D + δ_E (rounded up). No property of LAPACK is assumed: any L works, a
    good one makes δ_D ≈ γ_k tr(A). If Cholesky breaks down, the margin grows ×256 (4 tries),
    else the candidate is +∞. :func:`certify_lambda_max_le` is Rump's test (BIT 2006) in the
    same a-posteriori form: to prove λ_max(G) ≤ c it factors cI − H − sI with
    s = δ_E + 3γ_{k+1}tr(cI − H)/(1 − 2γ_{k+1}) + 8u|c| and succeeds iff the bound above is ≤ c.
    Relative overestimate ≈ margin ≈ 1e-10 + O(k²u).

Head products ‖A Bᵀ‖₂ (QK: A = W_Q, B = W_K, d×dh; VO: A = W_V, B = W_Oᵀ). With the dh×dh Grams
G_a = AᵀA, G_b = BᵀB: ‖ABᵀ‖₂² = λ_max(A G_b Aᵀ) = λ_max(G_a G_b) (cyclic eigenvalues).
Never ‖BᵀA‖₂: that has other singular values (A = e₁, B = e₂ gives ‖ABᵀ‖ = 1, BᵀA = 0).

* ``factor`` ‖A‖₂‖B‖₂ (each from :func:`opnorm_candidates`).
* ``gram_product_inf`` / ``gram_product_one``: λ_max(G_aG_b) = ρ(G_aG_b) ≤ ‖G_aG_b‖_{∞ or 1},
  with |G_a*G_b* − fl(HₐH_b)| ≤ radius + |Hₐ|E_b + Eₐ(|H_b| + E_b) (upward-rounded GEMMs).
* ``frobenius`` ‖ABᵀ‖_F² = tr(G_aG_b) = Σᵢⱼ(G_a)ᵢⱼ(G_b)ᵢⱼ, a signed dot product bounded by
  fl(Σ) + γ_{N+2}Σ|·| + 2Nη, plus the radius terms.
* ``core`` (exact small core): take any float L with LLᵀ ≈ H_b (Cholesky, else eigh), bound
  D_L ≥ |G_b − LLᵀ| a posteriori. A G_b Aᵀ = (AL)(AL)ᵀ + AΔ_LAᵀ, so
  ‖ABᵀ‖₂² ≤ λ_max(K) + ‖A‖₂²‖D_L‖₂ with K = LᵀG_aL (dh×dh, enclosed by two radius-tracked
  GEMMs), and λ_max(K) is bounded by the Cholesky certificate above.
* Lower bounds: ‖ABᵀx‖/‖x‖ for an explicit x (top right singular vector via thin QRs),
  propagated through Bᵀ then A with error radii (:func:`chain_lb`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nfp_steps import rigor as R

INF = float("inf")
ETA = R.ETA
MAX_GRAM_DIM = 4096  # Gram-based candidates (formed k×k Gram) only up to this k
TRACE4_MAX_DIM = 2048  # tr(G⁴) needs two more k³ GEMMs
REL_MARGIN = 1e-10  # Cholesky trial shift above the estimated λ_max, relative
CHOL_TRIES = 4
OPNORM_KEYS = ("frobenius", "schur", "abs_gram_gersh", "abs_gram_brauer", "gram", "gram_gersh",
               "gram_brauer", "trace2", "trace4", "moment", "cholesky")
PRODUCT_KEYS = ("factor", "gram_product_inf", "gram_product_one", "frobenius", "core")


# ---- small rigorous helpers (not in rigor.py) ---------------------------------------------
def _ub(x) -> float:
    """A float upper bound, NaN/Inf → +∞."""
    return float(R.clean_ub(x))


def nonneg_matmul_ub(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise upper bound on the exact product x @ y of non-negative float arrays."""
    c, r = R.matmul_radius(x, y)
    return R.clean_ub(R.up(c + r))


def absdiff_ub(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise upper bound on |x − y| (correctly rounded, then one ulp up)."""
    return R.clean_ub(R.up(np.abs(x - y)))


def add3_ub(a, b, c):
    """Upper bound on a + b + c (elementwise)."""
    return R.clean_ub(R.up(R.up(np.add(a, b)) + c))


def sym_gram(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fl(x xᵀ) (SYRK, exactly symmetric after mirroring) and a radius ≥ |x xᵀ − fl(x xᵀ)|.

    Same bound as :func:`rigor.matmul_radius`, written so numpy calls SYRK (half the flops)."""
    c = x @ x.T
    p = np.abs(x)
    k = x.shape[1]
    g = R.gamma(k + 1)
    r = R.up((p @ p.T) * (g * (1.0 + 2.0 * g))) + R.up(2 * k * ETA)
    return c, R.clean_ub(r)


def nonneg_sym_norm_ub(e: np.ndarray) -> float:
    """Upper bound on ‖E‖₂ = ρ(E) for a symmetric non-negative E: min(‖E‖_∞, ‖E‖_F)."""
    if e.size == 0:
        return 0.0
    return min(R.inf_norm_ub(e), R.frobenius_ub(e))


def nonneg_norm_ub(e: np.ndarray) -> float:
    """Upper bound on ‖E‖₂ for any E (e.g. a radius): min(‖E‖_F, √(‖E‖₁‖E‖_∞))."""
    if e.size == 0:
        return 0.0
    schur = _ub(R.sqrt_up(R.mul_up(R.one_norm_ub(e), R.inf_norm_ub(e))))
    return min(R.frobenius_ub(e), schur)


def dot_ub(x: np.ndarray, y: np.ndarray) -> float:
    """Upper bound on the exact Σ xᵢyᵢ (signed; any summation order)."""
    p = np.multiply(x, y).ravel()
    n = max(p.size, 1)
    abs_s = R.sum_nonneg_ub(np.abs(p))
    err = R.up(R.up(abs_s * R.gamma(n + 2)) + 2 * n * ETA)
    return _ub(R.up(p.sum() + err))


def brauer_ub(d: np.ndarray, r: np.ndarray, chunk: int = 256) -> float:
    """max_{i≠j} of (dᵢ + dⱼ + √((dᵢ−dⱼ)² + 4rᵢrⱼ))/2 rounded up (dᵢ, rᵢ ≥ 0 upper bounds)."""
    k = d.size
    if k == 0:
        return 0.0
    if k == 1:
        return _ub(d[0])
    if not (np.isfinite(d).all() and np.isfinite(r).all()):
        return INF
    best = -INF
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(0, k, chunk):
            di, ri = d[s:s + chunk, None], r[s:s + chunk, None]
            diff = R.up(np.abs(di - d[None, :]))
            rad = R.sqrt_up(R.up(R.up(diff * diff) + 4.0 * R.up(ri * r[None, :])))
            b = R.up(R.up(R.up(di + d[None, :]) + rad) * 0.5)
            rows = np.arange(b.shape[0])
            b[rows, rows + s] = -INF  # i = j is Gershgorin, not an oval
            top = float(np.max(b))
            if np.isnan(top):  # never let Python's max skip a NaN
                return INF
            best = max(best, top)
    return _ub(best)


# ---- power-of-two scaling ------------------------------------------------------------------
@dataclass(frozen=True)
class Scaled:
    """m·2⁻ᵉ as stored (``m``), the exact scaled matrix lying within ``m`` ± ``radius``."""

    m: np.ndarray
    radius: np.ndarray | None
    exp: int


def scale_pow2(m: np.ndarray, radius: np.ndarray | None = None) -> Scaled:
    """Scale so that max(|m|, radius) ∈ [½, 1); entries rounded into the subnormal range get
    an extra radius η (their exact scaled value is within η/2)."""
    mx = float(np.max(np.abs(m))) if m.size else 0.0
    if radius is not None and radius.size:
        mx = max(mx, float(np.max(radius)))
    if mx == 0.0:
        return Scaled(m, radius, 0)
    e = int(np.frexp(mx)[1])
    ms = np.ldexp(m, -e)
    lost = np.ldexp(ms, e) != m
    rs = None
    if radius is not None:
        rs = np.ldexp(radius, -e)
        rs = np.where(np.ldexp(rs, e) != radius, R.up(rs), rs)
    if lost.any():
        base = np.zeros_like(ms) if rs is None else rs
        rs = np.where(lost, R.up(base + ETA), base)
    return Scaled(ms, rs, e)


def unscale_ub(x: float, e: int) -> float:
    """Upper bound on x·2ᵉ."""
    x = float(x)
    if not math.isfinite(x):
        return INF
    with np.errstate(over="ignore", under="ignore"):
        y = np.ldexp(np.float64(x), e)
        if np.ldexp(y, -e) != x:
            y = R.up(y)
    return _ub(y)


def unscale_lb(x: float, e: int) -> float:
    """Lower bound on x·2ᵉ (x ≥ 0)."""
    x = float(x)
    if not math.isfinite(x) or x <= 0:
        return 0.0
    with np.errstate(over="ignore", under="ignore"):
        y = np.ldexp(np.float64(x), e)
        if not np.isfinite(y):
            return float(np.finfo(np.float64).max)
        if np.ldexp(y, -e) != x:
            y = R.down(y)
    return max(float(y), 0.0)


# ---- symmetric enclosures and λ_max bounds -------------------------------------------------
@dataclass(frozen=True)
class SymEnclosure:
    """An exact symmetric matrix S with |S − h| ≤ e; h exactly symmetric; delta ≥ ‖S − h‖₂."""

    h: np.ndarray
    e: np.ndarray
    delta: float


def symmetric_enclosure(c: np.ndarray, r: np.ndarray) -> SymEnclosure:
    """Enclosure of an exact symmetric S given |S − c| ≤ r: mirror c's upper triangle."""
    h = np.triu(c) + np.triu(c, 1).T
    e = np.maximum(r, r.T)
    return SymEnclosure(h, e, nonneg_sym_norm_ub(e))


def gram_enclosure(m: np.ndarray) -> SymEnclosure:
    """Enclosure of G = MᵀM (if rows ≥ cols) or MMᵀ, whichever is smaller."""
    x = m.T if m.shape[0] >= m.shape[1] else m
    return symmetric_enclosure(*sym_gram(x))


def col_gram_enclosure(m: np.ndarray) -> SymEnclosure:
    """Enclosure of MᵀM (columns' Gram), whatever the shape."""
    return symmetric_enclosure(*sym_gram(m.T))


def gram_inf_lambda_ub(g: SymEnclosure) -> float:
    """λ_max(S) ≤ ρ(S) ≤ ‖S‖_∞ (S PSD)."""
    return R.inf_norm_ub(g.h, g.e)


def gersh_parts(g: SymEnclosure) -> tuple[np.ndarray, np.ndarray]:
    """Upper bounds dᵢ ≥ sᵢᵢ and rᵢ ≥ Σ_{j≠i}|sᵢⱼ|."""
    d = R.up(np.diag(g.h) + np.diag(g.e))
    off = R.up(np.abs(g.h) + g.e)
    np.fill_diagonal(off, 0.0)
    return R.clean_ub(d), R.sum_nonneg_ub(off, axis=1)


def gersh_lambda_ub(g: SymEnclosure) -> float:
    """Signed Gershgorin: λ_max ≤ maxᵢ (sᵢᵢ + Σ_{j≠i}|sᵢⱼ|)."""
    d, r = gersh_parts(g)
    return _ub(np.max(R.up(d + r)))


def brauer_lambda_ub(g: SymEnclosure) -> float:
    """Brauer ovals on the enclosure (monotone in d and r)."""
    return brauer_ub(*gersh_parts(g))


def trace2_lambda_ub(g: SymEnclosure) -> float:
    """λ_max(S) ≤ ‖S‖_F = tr(S²)^{1/2}."""
    return R.frobenius_ub(g.h, g.e)


def trace4_lambda_ub(g: SymEnclosure) -> float:
    """λ_max(S) ≤ λ_max(h) + ‖S − h‖₂ ≤ ‖h²‖_F^{1/2} + delta."""
    h2, r2 = sym_gram(g.h)  # h hᵀ = h²
    return _ub(R.add_up(R.sqrt_up(R.frobenius_ub(h2, r2)), g.delta))


def moment_lambda_ub(g: SymEnclosure, tr_lo: float, tr_hi: float) -> float:
    """Wolkowicz–Styan with tr S ∈ [tr_lo, tr_hi] and ‖S‖_F from the enclosure."""
    k = g.h.shape[0]
    if k == 1:
        return _ub(tr_hi)
    f2 = R.mul_up(R.frobenius_ub(g.h, g.e), R.frobenius_ub(g.h, g.e))
    rad = R.up(R.mul_up(k, f2) - R.mul_down(tr_lo, tr_lo))
    root = R.sqrt_up(R.mul_up(k - 1, np.maximum(rad, 0.0)))
    return _ub(R.div_up(R.add_up(tr_hi, root), float(k)))


def cholesky_lambda_ub(h: np.ndarray, t: float) -> float:
    """λ_max(h) ≤ result for an exactly symmetric float h, from a floating-point Cholesky of
    tI − h (diagonal rounded down) and an a-posteriori residual bound; +∞ on breakdown."""
    n = h.shape[0]
    a = -h
    a[np.diag_indices(n)] = R.down(t - np.diag(h))
    try:
        low = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return INF
    if not np.isfinite(low).all():
        return INF
    f, r = sym_gram(low)
    d = R.clean_ub(R.up(absdiff_ub(f, a) + r))
    delta = nonneg_sym_norm_ub(np.minimum(d, d.T))
    return _ub(R.add_up(t, delta))


def rump_shift(h: np.ndarray, c: float) -> float:
    """A-priori budget for the Cholesky residual of cI − h (3× Rump's γ_{n+1} tr bound)."""
    n = h.shape[0]
    g = R.gamma(n + 1)
    tr = float(R.sum_nonneg_ub(np.maximum(c - np.diag(h), 0.0)))
    return _ub(R.up(R.up(3.0 * g / (1.0 - 2.0 * g) * tr) + 8 * n * (n + 1) * ETA))


def certify_lambda_max_le(g: SymEnclosure, c: float) -> bool:
    """Prove λ_max(S) ≤ c (Rump: Cholesky of cI − h − sI, s = Cholesky budget + ‖S − h‖₂)."""
    if not (math.isfinite(c) and g.h.size and np.isfinite(g.h).all()):
        return False
    s = float(R.add_up(R.add_up(rump_shift(g.h, c), g.delta), 8 * R.U * abs(c)))  # + scalar ulps
    t = float(R.down(c - s))
    lam = cholesky_lambda_ub(g.h, t)
    return float(R.add_up(lam, g.delta)) <= c


def certified_lambda_max_ub(g: SymEnclosure, rel_margin: float = REL_MARGIN) -> float:
    """Tight certified upper bound on λ_max(S): trial shift just above eigvalsh's estimate,
    proved by :func:`cholesky_lambda_ub`; the shift grows ×256 on breakdown (CHOL_TRIES)."""
    if g.h.size == 0:
        return 0.0
    if not np.isfinite(g.h).all():
        return INF
    try:
        w = np.linalg.eigvalsh(g.h)
    except np.linalg.LinAlgError:
        return INF
    lam, scale = float(w[-1]), float(np.max(np.abs(w)))
    n = g.h.shape[0]
    margin = rel_margin * scale + rump_shift(g.h, lam + scale * 1e-8) + 16 * n * R.U * scale
    margin = max(margin, 2.0**-1000)
    for _ in range(CHOL_TRIES):
        ub = cholesky_lambda_ub(g.h, float(R.up(lam + margin)))
        if math.isfinite(ub):
            return _ub(R.add_up(ub, g.delta))
        margin *= 256.0
    return INF


# ---- ‖M‖₂ candidates ------------------------------------------------------------------------
def _as_matrix(m) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {m.shape}")
    return m


def _as_radius(radius, shape) -> np.ndarray | None:
    if radius is None:
        return None
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), shape)
    if (r < 0).any():
        raise ValueError("radius must be non-negative")
    return np.array(r)


def _finite(*arrays) -> bool:
    return all(a is None or np.isfinite(a).all() for a in arrays)


def abs_gram_lambda_ubs(m: np.ndarray, radius: np.ndarray | None) -> tuple[float, float]:
    """(Gershgorin, Brauer) upper bounds on λ_max(G) from P = |M| + ρ, without forming G."""
    p = np.abs(m) if radius is None else R.clean_ub(R.up(np.abs(m) + radius))
    if p.shape[0] < p.shape[1]:
        p = p.T  # now G is pᵀp-sized (the smaller side)
    s = R.sum_nonneg_ub(p, axis=1)
    rowsum = nonneg_matmul_ub(p.T, s)
    d_hi, d_lo = R.sumsq_ub(p, axis=0), R.sumsq_lb(p, axis=0)
    r_hi = np.maximum(R.up(rowsum - d_lo), 0.0)
    return _ub(np.max(rowsum)), brauer_ub(R.clean_ub(d_hi), R.clean_ub(r_hi))


def schur_ub(m: np.ndarray, radius: np.ndarray | None = None) -> float:
    """‖M‖₂ ≤ √(‖M‖₁‖M‖_∞)."""
    return _ub(R.sqrt_up(R.mul_up(R.one_norm_ub(m, radius), R.inf_norm_ub(m, radius))))


def gram_lambda_candidates(m: np.ndarray, tight: bool = True) -> dict[str, float]:
    """Upper bounds on λ_max of the (smaller) Gram of the exact float matrix m."""
    g = gram_enclosure(m)
    k = g.h.shape[0]
    out = {"gram": gram_inf_lambda_ub(g), "gram_gersh": gersh_lambda_ub(g),
           "gram_brauer": brauer_lambda_ub(g), "trace2": trace2_lambda_ub(g)}
    out["trace4"] = trace4_lambda_ub(g) if k <= TRACE4_MAX_DIM else INF
    out["moment"] = moment_lambda_ub(g, float(R.sumsq_lb(m)), float(R.sumsq_ub(m)))
    out["cholesky"] = certified_lambda_max_ub(g) if tight else INF
    return out


def _empty(keys, value: float) -> dict[str, float]:
    out = {k: value for k in keys}
    out["used"] = value
    return out


def opnorm_candidates(m: np.ndarray, radius: np.ndarray | None = None, *, tight: bool = True,
                      max_gram_dim: int = MAX_GRAM_DIM) -> dict[str, float]:
    """Every upper-bound candidate on ‖M‖₂ (M = ``m``, or any matrix in ``m`` ± ``radius``)
    and ``used`` = their minimum. Candidates not computed (too large, ``tight=False``) are +∞."""
    m = _as_matrix(m)
    radius = _as_radius(radius, m.shape)
    if not _finite(m, radius):
        return _empty(OPNORM_KEYS, INF)
    if m.size == 0 or (not m.any() and (radius is None or not radius.any())):
        return _empty(OPNORM_KEYS, 0.0)
    sc = scale_pow2(m, radius)
    ms, rs = sc.m, sc.radius
    out = {k: INF for k in OPNORM_KEYS}
    out["frobenius"] = R.frobenius_ub(ms, rs)
    out["schur"] = schur_ub(ms, rs)
    gersh, brauer = abs_gram_lambda_ubs(ms, rs)
    out["abs_gram_gersh"] = _ub(R.sqrt_up(gersh))
    out["abs_gram_brauer"] = _ub(R.sqrt_up(brauer))
    if min(ms.shape) <= max_gram_dim:
        rho = 0.0 if rs is None else nonneg_norm_ub(rs)
        for key, lam in gram_lambda_candidates(ms, tight).items():
            out[key] = _ub(R.add_up(R.sqrt_up(lam), rho))
    out = {k: unscale_ub(v, sc.exp) for k, v in out.items()}
    out["used"] = min(out.values())
    return out


def opnorm_ub(m: np.ndarray, radius: np.ndarray | None = None, **kw) -> float:
    """The used (smallest) upper bound on ‖M‖₂."""
    return opnorm_candidates(m, radius, **kw)["used"]


def certify_opnorm_le(m: np.ndarray, bound: float, radius: np.ndarray | None = None) -> bool:
    """Prove ‖M‖₂ ≤ bound by the Cholesky test on c = (bound·2⁻ᵉ − ‖ρ‖₂)² rounded down."""
    m = _as_matrix(m)
    radius = _as_radius(radius, m.shape)
    if not (_finite(m, radius) and math.isfinite(bound)) or bound < 0:
        return False
    if m.size == 0 or (not m.any() and (radius is None or not radius.any())):
        return True
    sc = scale_pow2(m, radius)
    b = np.ldexp(np.float64(bound), -sc.exp)
    if np.ldexp(b, sc.exp) != bound:
        b = R.down(b)
    if sc.radius is not None:
        b = R.down(b - nonneg_norm_ub(sc.radius))
    if b <= 0:
        return False
    c = float(R.down(b * b))
    return certify_lambda_max_le(gram_enclosure(sc.m), c)


# ---- lower bounds ---------------------------------------------------------------------------
def chain_lb(factors: list[tuple[np.ndarray, np.ndarray | None]], x: np.ndarray) -> float:
    """Rigorous lower bound on ‖M₁⋯M_k x‖₂/‖x‖₂ ≤ ‖M₁⋯M_k‖₂; factor i is (mᵢ, radius or None),
    the exact factor lying in mᵢ ± radius. Propagated right to left with an error radius r:
    |M*y* − fl(My)| ≤ rad(fl) + |M|r + ρ(|y| + r)."""
    x = np.asarray(x, dtype=np.float64)
    if not _finite(x, *[f for pair in factors for f in pair]):
        return 0.0
    y, r = x, np.zeros_like(x)
    for mat, rad in reversed(factors):
        ynew, rr = R.matmul_radius(mat, y)
        acc = R.up(rr + nonneg_matmul_ub(np.abs(mat), r))
        if rad is not None:
            acc = R.up(acc + nonneg_matmul_ub(rad, R.up(np.abs(y) + r)))
        y, r = ynew, R.clean_ub(acc)
    den = R.vec_norm_ub(x)
    if not den > 0:
        return 0.0
    return float(R.div_down(R.vec_norm_lb(y, r), den))


def top_right_singular_vector(m: np.ndarray, iters: int = 100) -> np.ndarray:
    """Heuristic top right singular vector (eigh of the smaller Gram; power iteration if the
    Gram would be large). Affects only the tightness of lower bounds."""
    if m.size == 0 or not np.isfinite(m).all():
        return np.ones(m.shape[1])
    if min(m.shape) <= MAX_GRAM_DIM:
        try:
            if m.shape[0] >= m.shape[1]:
                return np.linalg.eigh(m.T @ m)[1][:, -1]
            return m.T @ np.linalg.eigh(m @ m.T)[1][:, -1]
        except np.linalg.LinAlgError:
            pass
    v = np.random.default_rng(0).standard_normal(m.shape[1])
    for _ in range(iters):
        v = m.T @ (m @ v)
        nv = np.linalg.norm(v)
        if not nv > 0:
            break
        v /= nv
    return v


def opnorm_lb(m: np.ndarray, radius: np.ndarray | None = None,
              v: np.ndarray | None = None) -> float:
    """Rigorous lower bound ‖M*v‖/‖v‖ ≤ ‖M*‖₂ for every M* in ``m`` ± ``radius``; v defaults
    to a computed top right singular vector."""
    m = _as_matrix(m)
    radius = _as_radius(radius, m.shape)
    if v is not None and np.shape(v) != (m.shape[1],):
        raise ValueError(f"v must have shape ({m.shape[1]},), got {np.shape(v)}")
    if not _finite(m, radius, v) or m.size == 0:
        return 0.0
    sc = scale_pow2(m, radius)
    if v is None:
        v = top_right_singular_vector(sc.m)
    return unscale_lb(chain_lb([(sc.m, sc.radius)], v), sc.exp)


# ---- head products ‖A Bᵀ‖₂ --------------------------------------------------------------------
def psd_factor(h: np.ndarray) -> np.ndarray:
    """Some L with L Lᵀ ≈ h (Cholesky, else eigh with negative eigenvalues clipped)."""
    try:
        return np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(h)
        return v * np.sqrt(np.maximum(w, 0.0))


def core_lambda_ub(ga: SymEnclosure, gb: SymEnclosure, a_norm_ub: float) -> float:
    """λ_max(G_a G_b) = ‖ABᵀ‖₂² ≤ λ_max(LᵀG_aL) + ‖A‖₂²‖G_b − LLᵀ‖₂ for any float L."""
    low = psd_factor(gb.h)
    if not np.isfinite(low).all():
        return INF
    f, r = sym_gram(low)
    d = add3_ub(absdiff_ub(f, gb.h), r, gb.e)
    dl = nonneg_sym_norm_ub(np.minimum(d, d.T))
    al = np.abs(low)
    k1, r1 = R.matmul_radius(ga.h, low)
    e1 = R.clean_ub(R.up(r1 + nonneg_matmul_ub(ga.e, al)))
    k2, r2 = R.matmul_radius(low.T, k1)
    e2 = R.clean_ub(R.up(r2 + nonneg_matmul_ub(al.T, e1)))
    lam = certified_lambda_max_ub(symmetric_enclosure(k2, e2))
    return _ub(R.add_up(lam, R.mul_up(R.mul_up(a_norm_ub, a_norm_ub), dl)))


def gram_product_lambda_ubs(ga: SymEnclosure, gb: SymEnclosure) -> tuple[float, float]:
    """λ_max(G_aG_b) ≤ ‖G_aG_b‖_∞ and ≤ ‖G_aG_b‖₁, product enclosed with its radius."""
    p, rp = R.matmul_radius(ga.h, gb.h)
    t1 = nonneg_matmul_ub(np.abs(ga.h), gb.e)
    t2 = nonneg_matmul_ub(ga.e, R.up(np.abs(gb.h) + gb.e))
    ep = add3_ub(rp, t1, t2)
    return R.inf_norm_ub(p, ep), R.one_norm_ub(p, ep)


def frobenius_sq_product_ub(ga: SymEnclosure, gb: SymEnclosure) -> float:
    """‖ABᵀ‖_F² = tr(G_aG_b) = Σᵢⱼ (G_a)ᵢⱼ(G_b)ᵢⱼ ≤ signed dot + radius terms."""
    rad = add3_ub(R.mul_up(np.abs(ga.h), gb.e), R.mul_up(ga.e, np.abs(gb.h)),
                  R.mul_up(ga.e, gb.e))
    return _ub(R.up(dot_ub(ga.h, gb.h) + R.sum_nonneg_ub(rad)))


def _product_inputs(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_matrix(a), _as_matrix(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A Bᵀ needs equal column counts, got {a.shape} and {b.shape}")
    return a, b


def product_candidates(a: np.ndarray, b: np.ndarray, *, tight: bool = True) -> dict[str, float]:
    """Upper-bound candidates on ‖A Bᵀ‖₂ (QK: A = W_Q, B = W_K) and ``used`` = their minimum.

    Never uses ‖BᵀA‖₂ (a different matrix with different singular values)."""
    a, b = _product_inputs(a, b)
    if not _finite(a, b):
        return _empty(PRODUCT_KEYS, INF)
    if a.size == 0 or b.size == 0 or not a.any() or not b.any():
        return _empty(PRODUCT_KEYS, 0.0)
    sa, sb = scale_pow2(a), scale_pow2(b)
    na = opnorm_candidates(sa.m, sa.radius, tight=tight)["used"]
    nb = opnorm_candidates(sb.m, sb.radius, tight=tight)["used"]
    out = {"factor": _ub(R.mul_up(na, nb))}
    ga, gb = col_gram_enclosure(sa.m), col_gram_enclosure(sb.m)
    lam = dict(zip(("gram_product_inf", "gram_product_one"),
                   gram_product_lambda_ubs(ga, gb), strict=True))
    lam["frobenius"] = frobenius_sq_product_ub(ga, gb)
    lam["core"] = core_lambda_ub(ga, gb, na) if tight else INF
    extra = _scaling_extra(sa, sb, na, nb)
    for key, v in lam.items():
        out[key] = _ub(R.add_up(R.sqrt_up(v), extra))
    out = {k: unscale_ub(v, sa.exp + sb.exp) for k, v in out.items()}
    out["used"] = min(out.values())
    return out


def _scaling_extra(sa: Scaled, sb: Scaled, na: float, nb: float) -> float:
    """‖A*B*ᵀ − A'B'ᵀ‖₂ ≤ ρ_a‖B*‖ + ‖A'‖ρ_b when scaling rounded entries (else 0)."""
    if sa.radius is None and sb.radius is None:
        return 0.0
    ra = 0.0 if sa.radius is None else nonneg_norm_ub(sa.radius)
    rb = 0.0 if sb.radius is None else nonneg_norm_ub(sb.radius)
    return _ub(R.add_up(R.mul_up(ra, nb), R.mul_up(na, rb)))


def product_top_vector(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Heuristic top right singular vector of A Bᵀ via thin QRs: ABᵀ = Q_a(R_aR_bᵀ)Q_bᵀ."""
    try:
        qa, ra = np.linalg.qr(a)
        qb, rb = np.linalg.qr(b)
        return qb @ np.linalg.svd(ra @ rb.T)[2][0]
    except np.linalg.LinAlgError:
        return np.ones(b.shape[0])


def product_lb(a: np.ndarray, b: np.ndarray, x: np.ndarray | None = None) -> float:
    """Rigorous lower bound ‖A(Bᵀx)‖/‖x‖ ≤ ‖A Bᵀ‖₂ (x defaults to the top right vector)."""
    a, b = _product_inputs(a, b)
    if x is not None and np.shape(x) != (b.shape[0],):
        raise ValueError(f"x must have shape ({b.shape[0]},), got {np.shape(x)}")
    if not _finite(a, b, x) or a.size == 0 or b.size == 0:
        return 0.0
    sa, sb = scale_pow2(a), scale_pow2(b)
    if x is None:
        x = product_top_vector(sa.m, sb.m)
    rbt = None if sb.radius is None else sb.radius.T
    return unscale_lb(chain_lb([(sa.m, sa.radius), (sb.m.T, rbt)], x), sa.exp + sb.exp)


def qk_candidates(w_q: np.ndarray, w_k: np.ndarray, **kw) -> dict[str, float]:
    """‖W_Q W_Kᵀ‖₂ candidates (W_Q, W_K: d×dh)."""
    return product_candidates(w_q, w_k, **kw)


def vo_candidates(w_v: np.ndarray, w_o: np.ndarray, **kw) -> dict[str, float]:
    """‖W_V W_O‖₂ candidates (W_V: d×dh, W_O: dh×d), as ‖A Bᵀ‖ with A = W_V, B = W_Oᵀ."""
    return product_candidates(w_v, np.asarray(w_o, dtype=np.float64).T, **kw)


def vo_lb(w_v: np.ndarray, w_o: np.ndarray, x: np.ndarray | None = None) -> float:
    """Rigorous lower bound on ‖W_V W_O‖₂."""
    return product_lb(w_v, np.asarray(w_o, dtype=np.float64).T, x)
