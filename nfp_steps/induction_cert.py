"""Induction-head certificate: certified attention margins and a logit-difference lower bound.

For head (l, h) at the analysed prompt (the float64 forward trajectory's residual input x_l,
which the certificate carries as a witness), every *induction query* q (its token occurred
earlier; the last earlier occurrence is at j < q) has the target key t(q) = j + 1, the successor
of that occurrence. With S the exact attention logits at Z = LN1(x_l):

- margin_lb(q) ≤ min_{k ≤ q, k ≠ t} S[q, t] − S[q, k];
- eps_ub(q) ≥ 1 − p[q, t], from Σ_{k≠t} p_k/p_t = Σ e^{−m_k} ≤ Σ E(m_k) with
  E(m) = 1/Σ_{i≤8} m^i/i! ≥ e^{−m} for m > 0 (a key with m_k ≤ 0 makes the query vacuous);
- [lo, hi] ∋ val_k = ((Z_k W_V + b_V) W_O)·u for every key k, u = W_U[:, c] − W_U[:, i];
- the head's direct logit-difference contribution at q, out_q·u = Σ_k p_k val_k (before ln_f and
  without the layer's b_O), is ≥ (1 − ε)·max(val_t_lo, lo) + ε·lo with ε = min(1, eps_ub).

A query is *vacuous* when ε = 1 (the bound degenerates to lo). Everything is computed from
enclosures with outward rounding (:mod:`nfp_steps.bounds`); the independent checker
(:mod:`nfp_steps.check`) recomputes every claimed number from the weights and the witness.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from nfp_steps import bounds as B
from nfp_steps import rigor as R
from nfp_steps.model import GPT2Weights


def induction_targets(tokens: np.ndarray) -> dict[int, int]:
    """{query q: target key t} for every q whose token occurred earlier (t = last j < q, + 1)."""
    last: dict[int, int] = {}
    out = {}
    for q, tok in enumerate(int(t) for t in tokens):
        if tok in last:
            out[q] = last[tok] + 1
        last[tok] = q
    return out


# Degree of the Taylor lower bound on e^m in E(m) (recorded in the certificate).
EXP_TAYLOR_DEGREE = 8
# Every claim about a witness x holds for all x' with |x' − x| ≤ tol entrywise, tol =
# WITNESS_REL_TOL·(1 + max|x|): another float64 forward pass (the checker's) lands in that ball.
WITNESS_REL_TOL = 1e-11


def witness_tol(x: np.ndarray) -> float:
    """The entrywise tolerance ball a certificate's claims about witness x cover."""
    return float(R.up(WITNESS_REL_TOL * R.up(1.0 + float(np.max(np.abs(x))))))


def exp_neg_ub(m: Fraction, degree: int = EXP_TAYLOR_DEGREE) -> Fraction | None:
    """E(m) = 1/Σ_{i≤degree} m^i/i! ≥ e^{−m} for m > 0; None (no bound) for m ≤ 0."""
    if m <= 0:
        return None
    term = s = Fraction(1)
    for i in range(1, degree + 1):
        term = term * m / i
        s += term
    return 1 / s


def _ub(v: float) -> float:
    return float(R.up(R.up(v) * (1 + 2.0**-30)))


def _lb(v: float) -> float:
    return float(R.down(R.down(v) - 2.0**-30 * abs(v)))


def head_certificate(
    w: GPT2Weights, layer: int, head: int, x: np.ndarray, tokens: np.ndarray, correct: int,
    incorrect: int,
) -> dict:
    """The claims of one head's induction certificate (floats, each a valid bound)."""
    z, z_rad = B.layernorm_enclosure(x, w.ln1_g[layer], w.ln1_b[layer], w.eps)
    tol = witness_tol(x)
    z_rad = R.up(z_rad + B.layernorm_input_ball_radius(x, w.ln1_g[layer], w.eps, tol))
    wq, wk = w.W_Q[layer, head], w.W_K[layer, head]
    s, err = B.score_enclosure(z, wq, w.b_Q[layer, head], wk, w.b_K[layer, head], z_rad)
    s_lo, s_hi = R.down(s - err), R.up(s + err)
    # val_k = (Z_k W_V + b_V)·(W_O u), every product with its radius
    u_c = w.W_U[:, correct] - w.W_U[:, incorrect]
    u_r = R.up(2 * R.U * np.abs(u_c))
    wou, wou_r = R.matmul_radius(w.W_O[layer, head], u_c)
    wou_r = R.up(wou_r + np.abs(w.W_O[layer, head]) @ u_r * (1 + 2 * R.gamma(w.d_model + 1)))
    v, v_r = B.affine_radius(z, w.W_V[layer, head], w.b_V[layer, head], z_rad)
    val, val_r = R.matmul_radius(v, wou)
    k = v.shape[1]
    val_r = R.up(val_r + (v_r @ np.abs(wou) + np.abs(v) @ wou_r + v_r @ wou_r)
                 * (1 + 2 * R.gamma(k + 2)))
    val_lo, val_hi = R.down(val - val_r), R.up(val + val_r)
    lo, hi = _lb(float(np.min(val_lo))), _ub(float(np.max(val_hi)))
    queries = []
    for q, t in induction_targets(tokens).items():
        others = [kk for kk in range(q + 1) if kk != t]
        margins = [float(R.down(s_lo[q, t] - s_hi[q, kk])) for kk in others]
        m_min = min(margins) if margins else float("inf")
        es = [exp_neg_ub(Fraction(m)) for m in margins]
        if any(e is None for e in es):
            eps = 1.0
        else:
            eps = min(1.0, _ub(float(sum(es, Fraction(0)))))
        vt = max(float(val_lo[t]), lo)
        # (1 − ε)·vt + ε·lo exactly in rationals, then rounded down
        ld = (_lb(float(Fraction(vt) - Fraction(eps) * (Fraction(vt) - Fraction(lo))))
              if eps < 1.0 else lo)
        queries.append({
            "q": q, "target_key": t, "margin_lb": _lb(m_min) if margins else None,
            "eps_ub": eps, "val_target_lb": _lb(float(val_lo[t])), "logit_diff_lb": ld,
            "vacuous": eps >= 1.0,
        })
    covered = [r for r in queries if not r["vacuous"]]
    return {
        "layer": layer, "head": head, "correct": int(correct), "incorrect": int(incorrect),
        "value_lo": lo, "value_hi": hi, "queries": queries, "witness_tol": tol,
        "n_queries": len(queries), "n_nonvacuous": len(covered),
        "logit_diff_lb_min": min((r["logit_diff_lb"] for r in queries), default=None),
    }
