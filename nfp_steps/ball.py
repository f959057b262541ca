"""Midpoint-radius ("ball") arithmetic on float64 numpy arrays, rigorous under rounding.

A :class:`Ball` (m, r) stands for every exact real array X with |X − m| ≤ r elementwise. Each
operation returns a ball containing the exact result of the operation applied to any members
of its operands; the midpoint is the float64 result, and the radius adds the propagated radii
and the operation's own rounding (u = 2⁻⁵³ per correctly rounded operation, γ_k for sums and
matrix products in any order, η = 2⁻¹⁰⁷⁴ per operation for underflow). Radii are computed in
float64 from non-negative terms and inflated by (1 + 8u) plus one ulp, which covers the rounding
of the radius formula itself (at most a handful of operations each).

Why: the certified lower bounds (issue 4) evaluate a Jacobian-vector product at the stored point
and need ‖(J − I)v‖ from below; a ball evaluation gives mid and radius, and
‖mid‖ − ‖rad‖ ≤ ‖exact‖.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nfp_steps import elementary as E
from nfp_steps import rigor as R

_INFL = 1.0 + 8.0 * R.U


class BallError(ValueError):
    """An operation whose enclosure cannot be formed (a divisor ball reaching 0, exp overflow):
    callers computing lower bounds fall back to a trivial valid value (e.g. 0)."""


def _rad(x) -> np.ndarray:
    """Round a radius formula's float value up safely (non-negative terms)."""
    return R.clean_ub(R.up(R.up(np.asarray(x, dtype=np.float64) * _INFL) + R.ETA))


@dataclass
class Ball:
    m: np.ndarray
    r: np.ndarray

    @staticmethod
    def exact(x) -> Ball:
        x = np.asarray(x, dtype=np.float64)
        return Ball(x, np.zeros_like(x))

    @staticmethod
    def of(x) -> Ball:
        return x if isinstance(x, Ball) else Ball.exact(x)

    # ---- elementwise ----
    def __add__(self, other) -> Ball:
        o = Ball.of(other)
        m = self.m + o.m
        return Ball(m, _rad(self.r + o.r + R.U * np.abs(m)))

    __radd__ = __add__

    def __neg__(self) -> Ball:
        return Ball(-self.m, self.r)

    def __sub__(self, other) -> Ball:
        return self + (-Ball.of(other))

    def __rsub__(self, other) -> Ball:
        return Ball.of(other) + (-self)

    def __mul__(self, other) -> Ball:
        o = Ball.of(other)
        m = self.m * o.m
        r = np.abs(self.m) * o.r + self.r * np.abs(o.m) + self.r * o.r + R.U * np.abs(m)
        return Ball(m, _rad(r))

    __rmul__ = __mul__

    def __truediv__(self, other) -> Ball:
        """Division by a ball whose members are all positive (raises otherwise)."""
        o = Ball.of(other)
        lo = R.down(o.m - o.r)
        if np.any(~(lo > 0)):
            raise BallError("Ball division: the divisor's enclosure reaches zero or below")
        m = self.m / o.m
        # |a/b − m| ≤ (|a − am| + |am/bm|·|b − bm|)/b_lo + rounding
        r = (self.r + np.abs(m) * o.r) / lo + R.U * np.abs(m)
        return Ball(m, _rad(r))

    def sqrt(self) -> Ball:
        """√ of a ball with non-negative members (negative lower ends are clipped to 0)."""
        lo = np.maximum(R.down(self.m - self.r), 0.0)
        hi = R.up(self.m + self.r)
        m = np.sqrt(np.maximum(self.m, 0.0))
        r = np.maximum(R.up(R.sqrt_up(hi) - m), R.up(m - R.sqrt_down(lo)))
        return Ball(m, _rad(r))

    def exp(self) -> Ball:
        if np.any(R.up(self.m + self.r) > E.EXP_MAX_ARG):
            raise BallError("Ball exp: the enclosure reaches the float64 overflow range")
        lo, _ = E.exp_enclosure(R.down(self.m - self.r))
        _, hi = E.exp_enclosure(R.up(self.m + self.r))
        m = np.exp(self.m)
        return Ball(m, _rad(np.maximum(R.up(hi - m), R.up(m - lo))))

    def tanh(self) -> Ball:
        lo, _ = E.tanh_enclosure(R.down(self.m - self.r))
        _, hi = E.tanh_enclosure(R.up(self.m + self.r))
        m = np.tanh(self.m)
        return Ball(m, _rad(np.maximum(R.up(hi - m), R.up(m - lo))))

    def erf(self) -> Ball:
        lo, _ = E.erf_enclosure(R.down(self.m - self.r))
        _, hi = E.erf_enclosure(R.up(self.m + self.r))
        m = E.erf_values(self.m)
        return Ball(m, _rad(np.maximum(R.up(hi - m), R.up(m - lo))))

    # ---- reductions and products ----
    def sum(self, axis=-1, keepdims: bool = True) -> Ball:
        m = self.m.sum(axis=axis, keepdims=keepdims)
        k = self.m.shape[axis]
        g = R.gamma(k + 1)
        r = (self.r.sum(axis=axis, keepdims=keepdims)
             + g * np.abs(self.m).sum(axis=axis, keepdims=keepdims)) * (1 + 2 * g)
        return Ball(m, _rad(r + k * R.ETA))

    def mean(self, axis=-1, keepdims: bool = True) -> Ball:
        return self.sum(axis, keepdims) / Ball.exact(np.float64(self.m.shape[axis]))

    def __matmul__(self, other) -> Ball:
        o = Ball.of(other)
        m, rr = R.matmul_radius(self.m, o.m)
        k = self.m.shape[-1]
        g = R.gamma(k + 1)
        prop = np.abs(self.m) @ o.r + self.r @ np.abs(o.m) + self.r @ o.r
        return Ball(m, _rad(rr + prop * (1 + 2 * g) + k * R.ETA))

    @property
    def T(self) -> Ball:  # noqa: N802 (numpy's name)
        return Ball(np.swapaxes(self.m, -1, -2), np.swapaxes(self.r, -1, -2))

    def norm_lb(self) -> float:
        """Lower bound on ‖X‖ (Euclidean over all entries) for every member X."""
        return float(R.vec_norm_lb(self.m.ravel(), self.r.ravel()))

