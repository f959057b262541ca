"""Softmax-row Jacobian bounds: every candidate ≥ the exact λ_max, nearly one-hot rows included."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from nfp_steps import bounds as B
from nfp_steps.softmax_bounds import CANDIDATES, row_bounds


def jacobian_norm_exact(p: np.ndarray) -> float:
    """λ_max(diag(p) − ppᵀ) in float64 (dense eigvalsh)."""
    return float(np.linalg.eigvalsh(np.diag(p) - np.outer(p, p))[-1])


def _exact(logits: np.ndarray, prec: int = 300) -> tuple[list, mpmath.mpf]:
    """Exact softmax of float logits and λ_max(diag(p) − ppᵀ), both at ``prec`` bits."""
    with mpmath.workprec(prec):
        s = [mpmath.mpf(float(v)) for v in logits]
        m = max(s)
        e = [mpmath.exp(v - m) for v in s]
        tot = mpmath.fsum(e)
        p = [v / tot for v in e]
        n = len(p)
        J = mpmath.matrix(n, n)
        for i in range(n):
            for j in range(n):
                J[i, j] = (p[i] if i == j else 0) - p[i] * p[j]
        lam = max(mpmath.eigsy(J, eigvals_only=True))
    return p, lam


def _enclose(p: list, rel: float) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([float(v * (1 - mpmath.mpf(rel))) for v in p])
    hi = np.array([float(v * (1 + mpmath.mpf(rel))) for v in p])
    return np.nextafter(lo, 0), np.nextafter(hi, 1)


FAMILIES = {
    "random": lambda rng, n: rng.normal(size=n),
    "hot": lambda rng, n: rng.normal(size=n) * 10,
    "nearly_one_hot": lambda rng, n: np.r_[60.0, rng.normal(size=n - 1)],
    "extreme_one_hot": lambda rng, n: np.r_[700.0, rng.normal(size=n - 1)],
    "uniform": lambda rng, n: np.zeros(n),
    "two_way_tie": lambda rng, n: np.r_[30.0, 30.0, rng.normal(size=n - 2)],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("seed", range(3))
def test_every_candidate_bounds_the_exact_row_norm(family, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    logits = FAMILIES[family](rng, n)
    p, lam = _exact(logits)
    for rel in (0.0, 1e-15, 1e-6):
        lo, hi = _enclose(p, rel)
        b = row_bounds(lo, hi)
        for k in CANDIDATES:
            assert mpmath.mpf(float(b[k])) >= lam, (family, rel, k)
        assert b["used"] == min(b[k] for k in CANDIDATES)
    if family in ("nearly_one_hot", "extreme_one_hot"):
        # no cancellation: the bound stays within a small factor of the tiny truth
        lo, hi = _enclose(p, 1e-12)
        used = row_bounds(lo, hi)["used"]
        assert lam > 0 and float(used) <= 4 * float(lam)


def test_single_key_row_and_masked_entries():
    b = row_bounds(np.array([1.0]), np.array([1.0]))
    assert b["used"] <= 1e-300 and b["trace"] <= 1e-300  # J = 0 (underflow allowance only)
    # masked entries do not count, whatever their values
    lo = np.array([[0.5, 0.5, 0.9]])
    hi = np.array([[0.5, 0.5, 0.9]])
    mask = np.array([[False, False, True]])
    got = row_bounds(lo, hi, mask)
    assert got["used"][0] >= 0.5 and got["used"][0] <= 0.5 * (1 + 1e-12)


def test_nan_enclosure_is_never_a_small_bound():
    b = row_bounds(np.array([0.0, 0.0]), np.array([np.nan, np.nan]))
    assert b["used"] == 0.5  # hi NaN -> treated as 1 (clean_ub, then clipped), not 0


def test_attention_rows_from_a_head_enclose_the_truth():
    """End to end on a head: enclosure from attention_enclosure, truth from mpmath."""
    rng = np.random.default_rng(5)
    n, d, dh = 6, 8, 4
    z = rng.normal(size=(n, d))
    wq, wk = rng.normal(size=(d, dh)) * 2, rng.normal(size=(d, dh)) * 2
    bq, bk = rng.normal(size=dh), rng.normal(size=dh)
    a, lo, hi = B.attention_enclosure(z, wq, bq, wk, bk)
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    b = row_bounds(lo, hi, mask)
    for q in range(n):
        logits = ((z[: q + 1] @ wk + bk) @ (z[q] @ wq + bq)) / np.sqrt(dh)
        _, lam = _exact(logits, prec=200)
        # float logits differ from the exact ones by far less than the enclosure's width
        assert float(b["used"][q]) >= float(lam) * (1 - 1e-9)
        assert abs(jacobian_norm_exact(a[q, : q + 1]) - float(lam)) < 1e-12  # float64 eig
