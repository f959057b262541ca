"""Rigorous bounds on softmax-row Jacobians J(p) = diag(p) − ppᵀ, from an enclosure of p.

The exact probabilities p* of a row are known only inside [lo, hi] (from
:func:`nfp_steps.bounds.attention_enclosure`), with Σ p* = 1 exactly. J(p) is symmetric positive
semi-definite, so λ_max(J) = ‖J‖₂ and every one of these is an upper bound:

* ``maxp``   λ_max ≤ max_i p_i                 (J ⪯ diag(p));
* ``trace``  λ_max ≤ tr J = 1 − Σp² = Σ_i p_i (1 − p_i);
* ``gersh``  λ_max ≤ max_i 2 p_i (1 − p_i)      (Gershgorin: the off-diagonal row sum of row i is
  p_i Σ_{j≠i} p_j = p_i (1 − p_i));
* ``moment`` λ_max ≤ √tr(J²) = ‖J‖_F, with ‖J‖_F² = Σ_i p_i²(1 − p_i)² + Σ_{i≠j} p_i² p_j²;
* ``half``   λ_max ≤ ½ (max_i 2p_i(1 − p_i) ≤ ½).

Without cancellation: 1 − p_i is never formed as 1 minus a float near 1 (catastrophic for
nearly one-hot rows, where it is the whole answer); it is bounded by Σ_{j≠i} hi_j (a sum of
non-negative upper bounds, from prefix and suffix sums, never as a total minus hi_i) and by
1 − lo_i, whichever is smaller. Every operation rounds outward.
"""

from __future__ import annotations

import numpy as np

from nfp_steps import rigor as R

CANDIDATES = ("maxp", "trace", "gersh", "moment", "half")


def _others_ub(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Upper bounds on Σ_{j≠i} v_j (v ≥ 0, masked entries excluded), as prefix + suffix sums.

    Not total − v_i: for a nearly one-hot row the total's own rounding (≈ 1e-16) would swamp
    the tiny sum of the others. Each prefix/suffix sum of k ≤ n non-negative terms is within
    γ_n of its value in any summation order, hence the factor (1 + 2γ_{n+1}) after rounding.
    """
    v = np.where(mask, 0.0, v)
    n = v.shape[-1]
    pre = np.concatenate([np.zeros_like(v[..., :1]), np.cumsum(v, axis=-1)[..., :-1]], axis=-1)
    suf = np.flip(np.cumsum(np.flip(v, -1), axis=-1), -1)
    suf = np.concatenate([suf[..., 1:], np.zeros_like(v[..., :1])], axis=-1)
    g = R.gamma(n + 2)
    return R.clean_ub(R.up(R.up(pre + suf) * (1.0 + 2.0 * g)) + n * R.ETA)


def row_bounds(lo: np.ndarray, hi: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Per row (last axis = keys): every candidate ub on λ_max(J(p*)), and the one used.

    ``lo``/``hi`` enclose the exact probabilities (0 ≤ lo ≤ p* ≤ hi ≤ 1, Σp* = 1); ``mask``
    marks entries that are not part of the row (causal mask; their p* is exactly 0).
    Returns arrays of shape lo.shape[:-1] under the names of :data:`CANDIDATES` and "used".
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if mask is None:
        mask = np.zeros(lo.shape, dtype=bool)
    hi = np.where(mask, 0.0, np.clip(R.clean_ub(hi), 0.0, 1.0))
    lo = np.where(mask, 0.0, np.clip(R.clean_lb(lo), 0.0, 1.0))
    # q_i ≥ 1 − p_i, without cancellation
    q = np.minimum(_others_ub(hi, mask), R.up(1.0 - lo))
    q = np.minimum(q, 1.0)
    pq = R.mul_up(hi, q)  # ≥ p_i (1 − p_i)
    out = {
        "maxp": hi.max(axis=-1),
        "trace": R.sum_nonneg_ub(pq, axis=-1),
        "gersh": R.mul_up(2.0, pq.max(axis=-1)),
    }
    # ‖J‖_F² ≤ Σ_i (p_i q_i)² + Σ_i p_i² Σ_{j≠i} p_j²
    hi2 = R.mul_up(hi, hi)
    cross = R.mul_up(hi2, _others_ub(hi2, mask))
    frob2 = R.add_up(R.sumsq_ub(pq, axis=-1), R.sum_nonneg_ub(cross, axis=-1))
    out["moment"] = R.sqrt_up(frob2)
    out["half"] = np.full(lo.shape[:-1], 0.5)
    out = {k: R.clean_ub(v) for k, v in out.items()}
    out["used"] = np.minimum.reduce([out[k] for k in CANDIDATES])
    return out

