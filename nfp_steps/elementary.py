"""Certified enclosures of exp, tanh and erf on float64 arrays.

Method: the vectorised float64 implementations (numpy's ``exp``/``tanh``, torch's
``special.erf``) plus a documented bound on their error, widened by outward rounding:

    |f̂(x) − f(x)| ≤ REL_ERR[f] · |f(x)| + ABS_ERR        (x any float64 in the stated range)

REL_ERR = 4u for every function (u = 2⁻⁵³): glibc documents exp/tanh within 1 ulp (≤ 2u
relative), and the tests check all three functions against MPFR (gmpy2) at 200 bits on more
than a million points over the ranges this tool uses, plus every special point (0, subnormals,
under- and overflow thresholds); the largest error seen is ≈ 1.2u. ABS_ERR = 2⁻¹⁰⁷³ covers
results in the subnormal range, where the relative error is meaningless.

Ranges (everything else raises ``ValueError``, never a silent wrong bound): exp on [−∞, 709]
(exp(−∞) = 0 exactly; below −745.2 the float result is 0 and the true value < 2⁻¹⁰⁷⁴); tanh and
erf on all finite floats (|f| ≤ 1 is used to clip). NaN inputs give the enclosure [−∞, +∞].
"""

from __future__ import annotations

import numpy as np

from nfp_steps import rigor as R

REL_ERR = {"exp": 4 * R.U, "tanh": 4 * R.U, "erf": 4 * R.U}
ABS_ERR = 2.0**-1073
EXP_MAX_ARG = 709.0


def _widen(y: np.ndarray, rel: float) -> tuple[np.ndarray, np.ndarray]:
    """[y − rel|y| − ABS, y + rel|y| + ABS] with outward rounding; f = y(1 ± rel') holds."""
    a = np.abs(y)
    # |f − y| ≤ rel|f| + ABS ⇒ |f − y| ≤ (rel|y| + ABS)/(1 − rel); the /(1 − rel) is folded
    # into a factor (1 + 2·rel) and one ulp of outward rounding per operation
    r = R.up(R.up(a * (rel * (1 + 2 * rel))) + 2 * ABS_ERR)
    return R.down(y - r), R.up(y + r)


def _nan_to_all(x: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    bad = np.isnan(x)
    if bad.any():
        lo = np.where(bad, -np.inf, lo)
        hi = np.where(bad, np.inf, hi)
    return lo, hi


def exp_enclosure(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) with lo ≤ exp(x) ≤ hi elementwise, for x ≤ 709 (−∞ allowed)."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(x > EXP_MAX_ARG):
        raise ValueError(f"exp_enclosure: argument above {EXP_MAX_ARG} (overflow range)")
    with np.errstate(under="ignore"):
        y = np.exp(x)
    lo, hi = _widen(y, REL_ERR["exp"])
    lo = np.maximum(lo, 0.0)
    zero = x == -np.inf
    lo, hi = np.where(zero, 0.0, lo), np.where(zero, 0.0, hi)
    return _nan_to_all(x, lo, hi)


def tanh_enclosure(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) with lo ≤ tanh(x) ≤ hi elementwise, clipped to [−1, 1]."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = _widen(np.tanh(x), REL_ERR["tanh"])
    lo, hi = np.clip(lo, -1.0, 1.0), np.clip(hi, -1.0, 1.0)
    return _nan_to_all(x, lo, hi)


def erf_values(x: np.ndarray) -> np.ndarray:
    """torch.special.erf in float64 (the implementation whose error REL_ERR['erf'] covers)."""
    import torch

    x = np.asarray(x, dtype=np.float64)
    return torch.special.erf(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def erf_enclosure(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) with lo ≤ erf(x) ≤ hi elementwise, clipped to [−1, 1]."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = _widen(erf_values(x), REL_ERR["erf"])
    lo, hi = np.clip(lo, -1.0, 1.0), np.clip(hi, -1.0, 1.0)
    return _nan_to_all(x, lo, hi)
