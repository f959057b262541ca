"""Rigorous float64 arithmetic: outward rounding and a-priori error radii (Higham's γ_k).

Every function here returns a number that bounds the named exact-real quantity in the stated
direction, floating-point rounding (including underflow) accounted for. Model: IEEE binary64,
round-to-nearest, unit roundoff u = 2⁻⁵³; any summation order (so multithreaded BLAS is fine):
|fl(Σ xᵢ) − Σ xᵢ| ≤ γ_{k−1} Σ|xᵢ|, |fl(AB) − AB| ≤ γ_k |A||B| + k·η (η = 2⁻¹⁰⁷⁴ covers
underflow), γ_k = k u / (1 − k u). Radii are themselves computed in floating point from
non-negative terms and then inflated by (1 + 2γ_k), which dominates their own rounding.
NaN or Inf in an upper bound becomes +∞ (never 0); in a lower bound it becomes 0.
"""

from __future__ import annotations

import numpy as np

U = 2.0**-53
ETA = 2.0**-1074
INF = float("inf")


def up(x):
    """Next float toward +∞ (one ulp of outward rounding)."""
    return np.nextafter(x, np.inf)


def down(x):
    """Next float toward −∞."""
    return np.nextafter(x, -np.inf)


def gamma(k: int) -> float:
    """An upper bound on γ_k = k u / (1 − k u)."""
    if k * U >= 0.5:
        raise ValueError(f"γ_k undefined for k = {k}")
    return float(up(up(k * U) / down(1.0 - k * U)))


def clean_ub(x):
    """NaN/Inf → +∞ for an upper bound."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(x), x, np.inf)


def clean_lb(x):
    """NaN/Inf/negative → 0 for a lower bound on a non-negative quantity."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(x) & (x > 0), x, 0.0)


def sum_nonneg_ub(x: np.ndarray, axis=None):
    """Upper bound on the exact sum of non-negative floats."""
    x = np.asarray(x, dtype=np.float64)
    k = x.size if axis is None else x.shape[axis]
    s = x.sum(axis=axis)
    g = gamma(max(k, 1))
    return clean_ub(up(up(s * (1.0 + 2.0 * g)) + k * ETA))


def sum_nonneg_lb(x: np.ndarray, axis=None):
    """Lower bound on the exact sum of non-negative floats."""
    x = np.asarray(x, dtype=np.float64)
    k = x.size if axis is None else x.shape[axis]
    s = x.sum(axis=axis)
    return clean_lb(down(s * down(1.0 - gamma(max(k, 1)))))


def sumsq_ub(x: np.ndarray, axis=None):
    """Upper bound on Σ xᵢ² (the squares' own rounding and underflow included)."""
    x = np.asarray(x, dtype=np.float64)
    k = x.size if axis is None else x.shape[axis]
    s = (x * x).sum(axis=axis)
    g = gamma(max(k, 1) + 1)
    return clean_ub(up(up(s * (1.0 + 2.0 * g)) + 2 * k * ETA))


def sumsq_lb(x: np.ndarray, axis=None):
    """Lower bound on Σ xᵢ²."""
    x = np.asarray(x, dtype=np.float64)
    k = x.size if axis is None else x.shape[axis]
    s = (x * x).sum(axis=axis)
    return clean_lb(down(down(s * down(1.0 - gamma(max(k, 1) + 1))) - 2 * k * ETA))


def sqrt_up(x):
    """Upper bound on √x (x ≥ 0 an exact float); IEEE sqrt is correctly rounded."""
    return clean_ub(up(np.sqrt(np.maximum(x, 0.0))))


def sqrt_down(x):
    return clean_lb(down(np.sqrt(np.maximum(x, 0.0))))


def mul_up(a, b):
    return clean_ub(up(np.multiply(a, b)))


def mul_down(a, b):
    """Lower bound on a·b for a NON-NEGATIVE exact product (negative results clamp to 0)."""
    return clean_lb(down(np.multiply(a, b)))


def div_up(a, b):
    """Upper bound on a / b for a ≥ 0, b > 0; b ≤ 0 gives +∞."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(b > 0, up(a / np.where(b > 0, b, 1.0)), np.inf)
    return clean_ub(q)


def div_down(a, b):
    """Lower bound on a / b for a ≥ 0, b > 0 (non-negative results only; b ≤ 0 gives 0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(b > 0, down(a / np.where(b > 0, b, 1.0)), 0.0)
    return clean_lb(q)


def add_up(a, b):
    return clean_ub(up(np.add(a, b)))


def matmul_radius(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``C = fl(a @ b)`` and a radius R with |a @ b − C| ≤ R elementwise (exact reals)."""
    c = a @ b
    k = a.shape[-1]
    g = gamma(k + 1)
    r = up((np.abs(a) @ np.abs(b)) * (g * (1.0 + 2.0 * g))) + up(2 * k * ETA)
    return c, clean_ub(r)


def frobenius_ub(m: np.ndarray, radius: np.ndarray | None = None) -> float:
    """Upper bound on ‖M‖_F, for M known exactly or as ``m`` ± ``radius``."""
    s = float(sqrt_up(sumsq_ub(m)))
    if radius is not None:
        s = float(add_up(s, sqrt_up(sumsq_ub(radius))))
    return s


def _abs_matrix(m: np.ndarray, radius: np.ndarray | None) -> np.ndarray:
    """|M| (+ radius, rounded up) as a 2-D array; a 1-D input is one row."""
    a = np.abs(m) if radius is None else up(np.abs(m) + radius)
    return np.atleast_2d(a)


def inf_norm_ub(m: np.ndarray, radius: np.ndarray | None = None) -> float:
    """Upper bound on ‖M‖_∞ (max absolute row sum)."""
    a = _abs_matrix(m, radius)
    return float(np.max(sum_nonneg_ub(a, axis=-1))) if a.size else 0.0


def one_norm_ub(m: np.ndarray, radius: np.ndarray | None = None) -> float:
    """Upper bound on ‖M‖₁ (max absolute column sum)."""
    a = _abs_matrix(m, radius)
    return float(np.max(sum_nonneg_ub(a, axis=-2))) if a.size else 0.0


def vec_norm_lb(w: np.ndarray, radius: np.ndarray | None = None) -> float:
    """Lower bound on ‖w*‖₂ for an exact vector w* with |w* − w| ≤ radius."""
    lb = float(sqrt_down(sumsq_lb(w)))
    if radius is not None:
        lb = float(down(lb - float(sqrt_up(sumsq_ub(radius)))))
    return max(lb, 0.0)


def vec_norm_ub(w: np.ndarray, radius: np.ndarray | None = None) -> float:
    return frobenius_ub(w, radius)
