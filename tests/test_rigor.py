"""The rigorous primitives against exact rationals and 200-bit mpmath."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

from nfp_steps import bounds as B
from nfp_steps import rigor as R
from nfp_steps.gelu_cert import gelu_deriv_sup_ub


def exact_sum(xs) -> Fraction:
    return sum((Fraction(float(v)) for v in np.ravel(xs)), Fraction(0))


@pytest.mark.parametrize("seed", range(4))
def test_sums_and_norms_bracket_exact_rationals(seed):
    rng = np.random.default_rng(seed)
    # wide dynamic range, cancellation-free non-negative data and signed data
    x = rng.standard_normal(200) * 10.0 ** rng.integers(-8, 8, 200)
    ax = np.abs(x)
    assert Fraction(float(R.sum_nonneg_ub(ax))) >= exact_sum(ax)
    assert Fraction(float(R.sum_nonneg_lb(ax))) <= exact_sum(ax)
    sq = sum((Fraction(float(v)) ** 2 for v in x), Fraction(0))
    assert Fraction(float(R.sumsq_ub(x))) >= sq
    assert Fraction(float(R.sumsq_lb(x))) <= sq
    s_up = Fraction(float(R.sqrt_up(2.0)))
    assert s_up * s_up >= 2
    s_dn = Fraction(float(R.sqrt_down(2.0)))
    assert s_dn * s_dn <= 2


def test_matmul_radius_covers_exact_product():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((4, 30)) * 10.0 ** rng.integers(-5, 5, (4, 30))
    b = rng.standard_normal((30, 3))
    c, r = R.matmul_radius(a, b)
    for i in range(4):
        for j in range(3):
            exact = sum(Fraction(float(a[i, k])) * Fraction(float(b[k, j])) for k in range(30))
            assert abs(exact - Fraction(float(c[i, j]))) <= Fraction(float(r[i, j]))


def test_underflow_is_covered():
    tiny = np.full(10, 1e-170)  # squares underflow to 0 or subnormals
    exact = sum(Fraction(1e-170) ** 2 for _ in range(10))
    assert Fraction(float(R.sumsq_ub(tiny))) >= exact


def test_numpy_exp_within_documented_relative_error():
    """B.EXP_REL_ERR covers numpy's exp on the range the softmax uses (x ≤ 0)."""
    mpmath.mp.prec = 200
    rng = np.random.default_rng(11)
    xs = np.concatenate([
        -rng.exponential(3.0, 60000),
        -rng.uniform(0, 745, 20000),
        -rng.uniform(0, 1e-6, 10000),
        np.array([0.0, -1e-300, -708.0, -744.0]),
    ])
    got = np.exp(xs)
    worst = 0.0
    for x, g in zip(xs, got, strict=True):
        t = mpmath.exp(mpmath.mpf(float(x)))
        if t < mpmath.mpf(2) ** -1022:  # subnormal output: covered by the absolute term
            assert abs(mpmath.mpf(float(g)) - t) <= mpmath.mpf(2) ** -1074
            continue
        worst = max(worst, float(abs(mpmath.mpf(float(g)) - t) / t))
    assert worst <= B.EXP_REL_ERR


@pytest.mark.parametrize("kind", ["tanh", "exact"])
def test_gelu_derivative_sup_is_certified(kind):
    ub = gelu_deriv_sup_ub(kind)
    assert ub <= B.GELU_DERIV_SUP
    # and it is a real bound: the known maximiser (x ≈ 1.5) stays below it
    mpmath.mp.prec = 100
    c = mpmath.sqrt(2 / mpmath.pi)
    for x in np.linspace(-10, 10, 4001):
        x = mpmath.mpf(float(x))
        if kind == "tanh":
            t = mpmath.tanh(c * (x + mpmath.mpf("0.044715") * x**3))
            g = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * mpmath.mpf("0.044715") * x**2)
        else:
            g = mpmath.ncdf(x) + x * mpmath.npdf(x)
        assert abs(g) <= ub
    assert ub >= 1.1289  # not vacuous-looking: the true sup is ≈ 1.12899


def test_matrix_norms_accept_a_vector_as_one_row():
    v = np.array([3.0, -4.0])
    assert R.inf_norm_ub(v) >= 7.0 and R.inf_norm_ub(v) <= 7.0 * (1 + 1e-15)
    assert R.one_norm_ub(v) >= 4.0 and R.one_norm_ub(v) <= 4.0 * (1 + 1e-15)
