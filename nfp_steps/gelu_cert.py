"""Certified upper bound on sup_x |GELU'(x)| for both GELU kinds (true value ≈ 1.12899).

On [−X, X] the axis is cut into pieces; on each piece the derivative is enclosed by interval
arithmetic (mpmath.iv, used only for +, −, ×, ÷) on enclosures of its monotone parts, whose
endpoint values are computed at 200 bits and widened by 2⁻¹⁵⁰. Outside [−X, X] (X ≥ 8) the
derivative is within 1e-20 of 0 or 1 (tanh/Φ saturate doubly exponentially), stated in the
docstring of :func:`gelu_deriv_sup_ub` and checked at the boundary pieces.
"""

from __future__ import annotations

import math

import mpmath

A = mpmath.mpf("0.044715")


def _widen(v, iv):
    w = mpmath.mpf(2) ** -150
    return iv.mpf([v - w * (1 + abs(v)), v + w * (1 + abs(v))])


def _tanh_deriv_piece(a, b, iv):
    """Enclosure of gelu_new'(x) on [a, b]: T = tanh(c(x + A x³)) is increasing in x."""
    c = mpmath.sqrt(2 / mpmath.pi)
    ta = mpmath.tanh(c * (a + A * a**3))
    tb = mpmath.tanh(c * (b + A * b**3))
    t = iv.mpf([_widen(ta, iv).a, _widen(tb, iv).b])
    x = iv.mpf([a, b])
    ci = _widen(c, iv)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * ci * (1 + 3 * iv.mpf(A) * x * x)


def _exact_deriv_piece(a, b, iv):
    """Enclosure of gelu'(x) = Φ(x) + x φ(x) on [a, b] (Φ increasing; φ monotone per side)."""
    phi_cdf = lambda v: mpmath.ncdf(v)  # noqa: E731
    phi = lambda v: mpmath.npdf(v)  # noqa: E731
    cdf = iv.mpf([_widen(phi_cdf(a), iv).a, _widen(phi_cdf(b), iv).b])
    pa, pb = phi(a), phi(b)
    if a >= 0:
        dens = iv.mpf([_widen(pb, iv).a, _widen(pa, iv).b])
    elif b <= 0:
        dens = iv.mpf([_widen(pa, iv).a, _widen(pb, iv).b])
    else:
        dens = iv.mpf([min(_widen(pa, iv).a, _widen(pb, iv).a), _widen(phi(0), iv).b])
    return cdf + iv.mpf([a, b]) * dens


def gelu_deriv_sup_ub(kind: str, x_max: int = 8, pieces_per_unit: int = 400) -> float:
    """A certified upper bound on sup |GELU'| over all reals (as a float, rounded up).

    Beyond |x| > x_max ≥ 8: for gelu_new, 1 − tanh(c(x+Ax³)) ≤ 2e^{−2·24} and the x-polynomial
    factor is < 1e4, so |g'(x) − 1| < 1e-15 for x > 8 and |g'(x)| < 1e-15 for x < −8; for the
    exact GELU, Φ(−8) + 8φ(8) < 1e-13 likewise. Both stay far below the interior maximum.
    """
    iv = mpmath.iv
    mpmath.mp.prec = 200
    iv.prec = 200
    piece = _tanh_deriv_piece if kind == "tanh" else _exact_deriv_piece
    if kind not in ("tanh", "exact"):
        raise ValueError(f"unknown gelu kind {kind!r}")
    n = 2 * x_max * pieces_per_unit
    best = mpmath.mpf(1)  # covers the saturated tails (|g'| ≤ 1 + 1e-15 there)
    best += mpmath.mpf(10) ** -14
    for i in range(n):
        a = mpmath.mpf(-x_max) + mpmath.mpf(i) / pieces_per_unit
        b = a + mpmath.mpf(1) / pieces_per_unit
        e = piece(a, b, iv)
        best = max(best, abs(e.a), abs(e.b))
    return math.nextafter(float(best), math.inf)  # float() rounds to nearest: step up once
