"""Spectral-norm bounds (nfp_steps.opnorm): every ub ≥ the exact norm, every lb ≤ it.

Truth: numpy's float64 SVD of a power-of-two rescaled copy; when it cannot decide (ub or lb
within TOL of it) an exact rational test decides: ‖M‖₂ ≤ x ⟺ x²I − G ⪰ 0 for the exact
integer Gram G, checked by symmetric elimination in Fractions.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nfp_steps import opnorm as O
from nfp_steps import rigor as R

TOL = 1e-11  # float64 SVD of these sizes is accurate to well below this (relative)
TOY = Path(__file__).resolve().parents[1] / "models" / "nfp-toy"


# ---- exact truth --------------------------------------------------------------------------
def to_int(m: np.ndarray) -> tuple[np.ndarray, int]:
    """m = Z / q exactly, Z an object array of Python ints, q a power of two."""
    ratios = [float(v).as_integer_ratio() for v in np.ravel(m)]
    q = max((d for _, d in ratios), default=1)
    z = np.array([n * (q // d) for n, d in ratios], dtype=object).reshape(m.shape)
    return z, q


def exact_psd(a: list[list[Fraction]], strict: bool) -> bool:
    """Is the symmetric rational matrix a PSD (PD if strict)? Exact elimination."""
    a = [row[:] for row in a]
    n = len(a)
    for k in range(n):
        p = a[k][k]
        if p < 0 or (strict and p == 0):
            return False
        if p == 0:
            if any(a[k][j] != 0 for j in range(k + 1, n)):
                return False
            continue
        for i in range(k + 1, n):
            f = a[i][k] / p
            if f:
                for j in range(k + 1, n):
                    a[i][j] -= f * a[k][j]
    return True


def exact_gram(z: np.ndarray) -> np.ndarray:
    x = z.T if z.shape[0] >= z.shape[1] else z
    return x.dot(x.T)


def exact_norm_le(z: np.ndarray, q: int, x: float, strict: bool = False) -> bool:
    """‖Z/q‖₂ ≤ x (< x if strict), exactly: (x q)² I − ZᵀZ ⪰ 0 (≻ 0)."""
    g = exact_gram(z)
    x2 = (Fraction(x) * q) ** 2
    n = g.shape[0]
    a = [[(x2 if i == j else 0) - Fraction(int(g[i, j])) for j in range(n)] for i in range(n)]
    return exact_psd(a, strict)


def sigma_np(m: np.ndarray) -> float:
    mx = np.abs(m).max() if m.size else 0.0
    if mx == 0:
        return 0.0
    e = int(np.frexp(mx)[1])
    return float(np.ldexp(np.linalg.norm(np.ldexp(m, -e), 2), e))


def assert_ub(ub: float, m: np.ndarray, exact=None, sigma=None) -> None:
    """ub ≥ ‖m‖₂ (``exact`` = (Z, q) of a matrix with that norm, default from m)."""
    s = sigma_np(m) if sigma is None else sigma
    assert ub >= 0
    if ub >= s * (1 + TOL):
        return
    assert ub > s * (1 - TOL), (ub, s)
    z, q = to_int(m) if exact is None else exact
    assert exact_norm_le(z, q, ub), (ub, s)


def exact_quotient_sq(factors: list[np.ndarray], x: np.ndarray) -> Fraction:
    """‖F₁⋯F_k x‖²/‖x‖² exactly (≤ ‖F₁⋯F_k‖₂²)."""
    zx, qx = to_int(x)
    y, q = zx, qx
    for f in reversed(factors):
        zf, qf = to_int(f)
        y, q = zf.dot(y), q * qf
    num = Fraction(int(sum(int(v) * int(v) for v in y)), q * q)
    return num / Fraction(int(sum(int(v) * int(v) for v in zx)), qx * qx)


def assert_lb(lb: float, m: np.ndarray, exact=None, sigma=None, witness=None) -> None:
    """lb ≤ ‖m‖₂; undecided cases use the exact Gram test, or for large matrices the exact
    quotient ‖F₁⋯F_k x‖/‖x‖ ≤ ‖m‖₂ of ``witness`` = (factors, x), the vector lb came from."""
    s = sigma_np(m) if sigma is None else sigma
    assert lb >= 0
    if lb <= s * (1 - TOL):
        return
    assert lb < s * (1 + TOL), (lb, s)
    if witness is not None:
        assert Fraction(lb) ** 2 <= exact_quotient_sq(*witness), (lb, s)
        return
    z, q = to_int(m) if exact is None else exact
    assert not exact_norm_le(z, q, lb, strict=True), (lb, s)


def check_all(m: np.ndarray, radius=None) -> dict[str, float]:
    c = O.opnorm_candidates(m, radius)
    assert set(c) == set(O.OPNORM_KEYS) | {"used"}
    assert c["used"] == min(v for k, v in c.items() if k != "used")
    for k, v in c.items():
        assert isinstance(v, float), k
        assert not np.isnan(v), k
        assert_ub(v, m)
    lb = O.opnorm_lb(m, radius)
    witness = None
    if min(m.shape) > 16 and radius is None:
        v = O.top_right_singular_vector(O.scale_pow2(m).m)
        assert O.opnorm_lb(m, v=v) == lb  # the default vector
        witness = ([m], v)
    assert_lb(lb, m, witness=witness)
    return c


def test_harness_catches_invalid_bounds():
    """The truth checks themselves reject near-misses (exact path) and the swapped product."""
    m = np.random.default_rng(13).standard_normal((5, 4))
    s = sigma_np(m)
    with pytest.raises(AssertionError):
        assert_ub(s * (1 - 1e-14), m)
    with pytest.raises(AssertionError):
        assert_lb(s * (1 + 1e-14), m)
    a, b = (np.random.default_rng(14).standard_normal((30, 3)) for _ in range(2))
    with pytest.raises(AssertionError):
        assert_ub(float(np.linalg.norm(b.T @ a, 2)), a @ b.T)


# ---- random matrices of many kinds --------------------------------------------------------
def make_matrix(rng, rows, cols, kind, center, spread) -> np.ndarray:
    g = rng.standard_normal((rows, cols))
    if kind == "rank1":
        g = np.outer(rng.standard_normal(rows), rng.standard_normal(cols))
    elif kind == "near_rank_deficient":
        u, v = rng.standard_normal((rows, 2)), rng.standard_normal((2, cols))
        g = u @ v + 1e-12 * g
    elif kind == "sparse":
        g = np.where(rng.random((rows, cols)) < 0.6, 0.0, g)
    elif kind == "subnormal":
        return g * 1e-312  # every entry subnormal (or zero)
    elif kind == "integer":
        return np.round(g * 3)
    expo = np.clip(center + spread * rng.uniform(-1, 1, (rows, cols)), -300, 300)
    return g * 10.0**expo


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 9), cols=st.integers(1, 9),
       kind=st.sampled_from(["gauss", "rank1", "near_rank_deficient", "sparse", "subnormal",
                             "integer"]),
       center=st.floats(-300, 300), spread=st.floats(0, 40))
def test_candidates_bound_random_matrices(seed, rows, cols, kind, center, spread):
    m = make_matrix(np.random.default_rng(seed), rows, cols, kind, center, spread)
    check_all(m)


@settings(max_examples=40, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 8), cols=st.integers(1, 8),
       rel=st.floats(1e-16, 1e-1), scale=st.floats(-200, 200))
def test_radius_covers_every_matrix_in_the_box(seed, rows, cols, rel, scale):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((rows, cols)) * 10.0**scale
    other = m + rel * np.abs(m) * rng.uniform(-1, 1, m.shape)  # an exact matrix in the box
    radius = R.up(np.abs(other - m))  # ≥ |other − m| exactly
    c = O.opnorm_candidates(m, radius)
    assert c["used"] == min(v for k, v in c.items() if k != "used")
    for v in c.values():
        assert_ub(v, other)
        assert_ub(v, m)
    lb = O.opnorm_lb(m, radius)
    assert_lb(lb, other)
    assert_lb(lb, m)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (3, 3), (40, 7), (7, 40)])
def test_rank_one_and_vectors(shape):
    rng = np.random.default_rng(1)
    m = np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[1]))
    check_all(m)


def test_huge_and_tiny_entries_in_one_matrix():
    rng = np.random.default_rng(2)
    m = rng.standard_normal((6, 5)) * 10.0 ** rng.uniform(-300, 300, (6, 5))
    c = check_all(m)
    assert c["used"] <= sigma_np(m) * (1 + 1e-9)  # scaling keeps the Gram bounds usable
    big = rng.standard_normal((5, 4)) * 1e300
    c = check_all(big)
    assert c["cholesky"] <= sigma_np(big) * (1 + 1e-8)


def test_subnormal_matrix_is_tight():
    m = np.random.default_rng(3).standard_normal((5, 4)) * 1e-315
    c = check_all(m)
    assert c["used"] <= sigma_np(m) * 1.001  # rounding of subnormal scaling only


def test_zero_matrix_and_empty():
    for m in (np.zeros((4, 3)), np.zeros((0, 3)), np.zeros((3, 0)), -np.zeros((2, 2))):
        c = O.opnorm_candidates(m)
        assert all(np.isfinite(v) and v >= 0 for v in c.values())
        assert O.opnorm_lb(m) == 0.0
    c = O.opnorm_candidates(np.zeros((3, 3)), radius=np.full((3, 3), 1e-300))
    assert all(np.isfinite(v) and v >= 3e-300 for v in c.values())  # ‖ρ‖₂ = 3e-300 reachable


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_gives_infinite_ub(bad):
    m = np.random.default_rng(4).standard_normal((5, 4))
    m[2, 1] = bad
    assert all(v == np.inf for v in O.opnorm_candidates(m).values())
    assert O.opnorm_lb(m) == 0.0
    ok = np.ones((5, 4))
    rad = np.zeros((5, 4))
    rad[0, 0] = bad if bad != -np.inf else np.nan
    assert all(v == np.inf for v in O.opnorm_candidates(ok, rad).values())
    assert O.opnorm_lb(ok, rad) == 0.0
    assert O.opnorm_lb(ok, v=np.array([1.0, bad, 0, 0])) == 0.0
    assert all(v == np.inf for v in O.product_candidates(m, ok).values())
    assert O.product_lb(m, ok) == 0.0


def test_negative_radius_and_bad_shapes_are_errors():
    with pytest.raises(ValueError):
        O.opnorm_candidates(np.ones((2, 2)), -np.ones((2, 2)))
    with pytest.raises(ValueError):
        O.opnorm_candidates(np.ones(3))
    with pytest.raises(ValueError):
        O.product_candidates(np.ones((3, 2)), np.ones((3, 4)))


def test_overflowing_norm_is_inf_not_wrong():
    m = np.full((4, 4), 1.7e308)  # ‖M‖₂ = 6.8e308 > max float
    assert all(v == np.inf for v in O.opnorm_candidates(m).values())
    assert O.opnorm_lb(m) == np.finfo(np.float64).max


# ---- the Cholesky certificate -------------------------------------------------------------
@pytest.mark.parametrize("shape", [(30, 30), (200, 50), (50, 200), (64, 16), (768, 64)])
def test_cholesky_candidate_is_tight_on_well_conditioned_matrices(shape):
    m = np.random.default_rng(5).standard_normal(shape) * 0.02
    c = check_all(m)
    s = sigma_np(m)
    assert c["cholesky"] >= s * (1 + TOL)
    assert c["cholesky"] <= s * (1 + 1e-4)
    assert c["used"] <= s * (1 + 1e-4)
    assert O.opnorm_lb(m) >= s * (1 - 1e-8)


@pytest.mark.parametrize("seed", range(6))
def test_wrong_bound_is_never_certified(seed):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((rng.integers(1, 7), rng.integers(1, 7)))
    z, q = to_int(m)
    s = sigma_np(m)
    below = [float(R.down(s)), s * (1 - 2.0**-50), s * (1 - 1e-12), s * (1 - 1e-6)]
    for b in below:
        if exact_norm_le(z, q, b):
            continue  # not actually below the truth
        assert not O.certify_opnorm_le(m, b)
    above = s * (1 + 1e-9)
    assert exact_norm_le(z, q, above)
    assert O.certify_opnorm_le(m, above)


def test_wrong_bound_not_certified_on_gpt2_shapes():
    rng = np.random.default_rng(7)
    for shape in [(768, 64), (64, 768), (128, 128)]:
        m = rng.standard_normal(shape) * 0.02
        s = sigma_np(m)
        assert not O.certify_opnorm_le(m, s * (1 - 1e-9))
        assert not O.certify_opnorm_le(m, s * 0.5)
        assert O.certify_opnorm_le(m, s * (1 + 1e-8))
    m = rng.standard_normal((20, 10))
    s = sigma_np(m)
    rad = np.full(m.shape, 1e-3)
    assert not O.certify_opnorm_le(m, s, rad)  # the box contains matrices with larger norm
    assert O.certify_opnorm_le(m, s + 0.02, rad)  # ‖ρ‖₂ = 1e-3·√200 ≈ 0.014


def test_certify_lambda_rejects_c_below_lambda_max_of_indefinite_matrix():
    # S = diag(3, −5): λ_max = 3 although ‖S‖ = 5; c < 3 must fail, c = 3 + tiny must pass
    enc = O.symmetric_enclosure(np.diag([3.0, -5.0]), np.zeros((2, 2)))
    assert not O.certify_lambda_max_le(enc, 2.999999)
    assert not O.certify_lambda_max_le(enc, float(R.down(3.0)))
    assert O.certify_lambda_max_le(enc, 3.000001)


# ---- helpers ------------------------------------------------------------------------------
def test_brauer_and_dot_helpers_against_exact_values():
    rng = np.random.default_rng(8)
    d, r = rng.random(7), rng.random(7)
    val = O.brauer_ub(d, r)
    import mpmath

    mpmath.mp.prec = 200
    best = max(
        (mpmath.mpf(d[i]) + d[j] + mpmath.sqrt((mpmath.mpf(d[i]) - d[j]) ** 2
                                               + 4 * mpmath.mpf(r[i]) * r[j])) / 2
        for i in range(7) for j in range(7) if i != j)
    assert mpmath.mpf(val) >= best
    assert val <= float(best) * (1 + 1e-14)
    x = rng.standard_normal(300) * 10.0 ** rng.integers(-20, 20, 300)
    y = rng.standard_normal(300)
    exact = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(x, y, strict=True))
    assert Fraction(O.dot_ub(x, y)) >= exact


def test_brauer_with_infinite_input_is_infinite():
    assert O.brauer_ub(np.array([np.inf, 1.0, 2.0]), np.ones(3)) == np.inf
    assert O.brauer_ub(np.ones(3), np.array([0.0, np.inf, 1.0])) == np.inf


def test_brauer_beats_gershgorin_and_all_bound_lambda():
    rng = np.random.default_rng(9)
    m = rng.standard_normal((12, 9))
    g = O.gram_enclosure(m)
    lam = np.linalg.eigvalsh(m.T @ m)[-1]
    assert O.brauer_lambda_ub(g) <= O.gersh_lambda_ub(g) * (1 + 1e-15)
    for f in (O.gram_inf_lambda_ub, O.gersh_lambda_ub, O.brauer_lambda_ub,
              O.trace2_lambda_ub, O.trace4_lambda_ub, O.certified_lambda_max_ub):
        assert f(g) >= lam


# ---- head products ------------------------------------------------------------------------
def product_truth(a: np.ndarray, b: np.ndarray) -> tuple[float, tuple]:
    za, qa = to_int(a)
    zb, qb = to_int(b)
    _, ra = np.linalg.qr(a)
    _, rb = np.linalg.qr(b)
    return float(np.linalg.norm(ra @ rb.T, 2)), (za.dot(zb.T), qa * qb)


def check_product(a: np.ndarray, b: np.ndarray, exact: bool = True) -> dict[str, float]:
    c = O.product_candidates(a, b)
    assert set(c) == set(O.PRODUCT_KEYS) | {"used"}
    assert c["used"] == min(v for k, v in c.items() if k != "used")
    s, ex = product_truth(a, b) if exact else (float(np.linalg.norm(a @ b.T, 2)), None)
    for v in c.values():
        assert_ub(v, a @ b.T, exact=ex, sigma=s)
    x = O.product_top_vector(O.scale_pow2(a).m, O.scale_pow2(b).m)
    lb = O.product_lb(a, b)
    assert O.product_lb(a, b, x) == lb  # the default vector
    assert_lb(lb, a @ b.T, exact=ex, sigma=s, witness=([a, b.T], x))
    return c


def test_swapped_product_counterexample():
    a, b = np.array([[1.0], [0.0]]), np.array([[0.0], [1.0]])
    assert np.linalg.norm(b.T @ a, 2) == 0.0  # the false identity would give 0
    c = check_product(a, b)
    assert c["used"] >= 1.0
    assert O.product_lb(a, b) >= 1 - 1e-14
    c = O.vo_candidates(a, b.T)  # W_V W_O with W_O = e₂ᵀ: W_V W_O = e₁e₂ᵀ, W_O W_V = 0
    assert c["used"] >= 1.0


@settings(max_examples=30, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 10), h=st.integers(1, 5),
       d2=st.integers(1, 10), sa=st.floats(-150, 150), sb=st.floats(-150, 150),
       aligned=st.booleans())
def test_product_candidates_bound_random_heads(seed, d, h, d2, sa, sb, aligned):
    # the float64 reference ‖A Bᵀ‖₂ squares the product's entries: beyond 10^150 it overflows to
    # NaN and would compare against nothing (the bounds themselves are then +inf, still valid)
    assume(abs(sa + sb) < 140)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, h)) * 10.0**sa
    b = rng.standard_normal((d2, h)) * 10.0**sb
    if aligned and d == d2:
        b = a @ rng.standard_normal((h, h)) * 10.0**sb
    check_product(a, b)


def test_products_on_gpt2_head_shapes_and_swap_is_not_a_bound():
    rng = np.random.default_rng(10)
    wq, wk, wv = (rng.standard_normal((768, 64)) * 0.02 for _ in range(3))
    wo = rng.standard_normal((64, 768)) * 0.02
    c = check_product(wq, wk, exact=False)
    s = float(np.linalg.norm(wq @ wk.T, 2))
    assert np.linalg.norm(wk.T @ wq, 2) < 0.7 * s  # the original's swapped candidate
    assert c["core"] <= s * (1 + 1e-4)
    assert O.product_lb(wq, wk) >= s * (1 - 1e-8)
    vo = O.vo_candidates(wv, wo)
    assert vo == O.product_candidates(wv, wo.T)
    s_vo = float(np.linalg.norm(wv @ wo, 2))
    assert vo["used"] >= s_vo * (1 + TOL) and vo["core"] <= s_vo * (1 + 1e-4)
    assert s_vo * (1 - 1e-8) <= O.vo_lb(wv, wo) <= s_vo


def test_product_with_rank_deficient_and_zero_factor():
    rng = np.random.default_rng(11)
    a = rng.standard_normal((20, 4))
    b = np.outer(rng.standard_normal(20), rng.standard_normal(4))  # G_b singular
    check_product(a, b)
    z = O.product_candidates(a, np.zeros((20, 4)))
    assert all(v == 0.0 for v in z.values())
    assert O.product_lb(a, np.zeros((20, 4))) == 0.0


@pytest.mark.parametrize("shape", [(64, 16), (768, 64)])
def test_trained_like_matrices(shape):
    m = np.random.default_rng(12).standard_normal(shape) * 0.02
    c = O.opnorm_candidates(m)
    s = sigma_np(m)
    for v in c.values():
        assert_ub(v, m, sigma=s)
    assert c["used"] <= s * (1 + 1e-4)


def test_toy_model_heads_and_mlp():
    if not (TOY / "config.json").exists():
        pytest.skip("toy model not shipped")
    from nfp_steps.io.loader import load_model

    w = load_model(TOY)
    for layer in range(w.n_layers):
        for head in range(w.n_heads):
            q, k = w.W_Q[layer, head], w.W_K[layer, head]
            s = float(np.linalg.norm(q @ k.T, 2))
            c = O.product_candidates(q, k)
            assert c["used"] >= s * (1 + TOL) and c["core"] <= s * (1 + 1e-4)
            assert O.product_lb(q, k) <= s * (1 + TOL)
        for mat in (w.W_in[layer], w.W_out[layer]):
            c = O.opnorm_candidates(mat)
            s = sigma_np(mat)
            assert min(c.values()) >= s * (1 + TOL) and c["used"] <= s * (1 + 1e-4)
