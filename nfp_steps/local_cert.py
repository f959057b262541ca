"""Local (at the analysed prompt) per-layer constants as checkable certificate claims.

The producer side of the certificate's local part: it *proposes* values from a float64
computation at the forward trajectory's residual streams x_l, inflated by 10⁻⁴ relative (far
above float64 error and the witness tolerance's effect), and derived values are composed
exactly in rationals. It is not trusted: the independent checker (:mod:`nfp_steps.check_local`)
proves every leaf claim over the witness ball with exact and fixed-point ball arithmetic, so a
wrong proposal is refused, never reported as verified. The quantities (see that module):
ln1 = max|γ₁|/(min σ(x_l) − τ); per head √(max col sum A)·‖W_V W_O‖₂ and
½(‖W_Q‖‖K − 1k̄ᵀ‖_F + ‖Q‖_F‖W_K‖)‖V W_O − 1v̄ᵀ‖_F/√dh; ln2 = max|γ₂|/min σ(x + attn + b_O);
a = ln1·Σ_h(value + pattern), m = ln2·‖W_in‖·g′·‖W_out‖, C = a + m + a·m.

These are looser than the layers stage's C_ub (which uses per-row softmax bounds, Cholesky-
certified norms and local GELU′ enclosures that the checker does not re-derive), but every one is
independently checked.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from nfp_steps import bounds as B
from nfp_steps.forward import attention_pattern, layer_norm
from nfp_steps.global_cert import _cid, _derived, _inflate
from nfp_steps.induction_cert import witness_tol
from nfp_steps.model import GPT2Weights

REL = 1e-4
WEIGHT_KINDS = ("gelu_deriv_sup", "softmax_jacobian_sup", "opnorm", "opnorm_product")


def _sigma(x: np.ndarray, eps: float) -> np.ndarray:
    """Per-row LayerNorm scale √(var + eps)."""
    return np.sqrt(x.var(axis=-1) + eps)


def _centred_frob(m: np.ndarray) -> float:
    return float(np.linalg.norm(m - m.mean(axis=0, keepdims=True)))


def local_claims(w: GPT2Weights, xs: np.ndarray, weight_claims: list[dict]) -> tuple[list, list]:
    """(claims, witness tolerances) for the residual streams xs[l] (l < n_layers); the claims
    start with the weight-norm claims they use, re-labelled ``local.``."""
    claims = [{**c, "id": c["id"].replace("global.", "local.", 1)}
              for c in weight_claims if c["kind"] in WEIGHT_KINDS]
    by = {(c["kind"], c.get("layer"), c.get("head"), c.get("matrix")): c["value"]
          for c in claims}
    g = by[("gelu_deriv_sup", None, None, None)]
    s = by[("softmax_jacobian_sup", None, None, None)]

    def add(kind: str, value: Fraction, **kw) -> Fraction:
        claims.append({"id": _cid(kind, kw, "local"), "kind": kind, **kw, "value": value})
        return value

    tols = []
    total = Fraction(1)
    n = xs.shape[1]
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    for layer in range(w.n_layers):
        x = xs[layer]
        tol = witness_tol(x)
        tols.append(tol)
        z = layer_norm(x, w.ln1_g[layer], w.ln1_b[layer], w.eps)
        sig = _sigma(x, w.eps)
        gm = float(np.max(np.abs(w.ln1_g[layer])))
        ln1 = add("ln_jacobian_local",
                  _inflate(gm / max(float(sig.min()) - tol, math.sqrt(w.eps)), REL),
                  layer=layer, which="ln1")
        # the checker proves each claim over the witness ball: LN1 rows move by up to r_z
        # (entrywise), so the Frobenius norms below carry that radius (matters when the
        # centred norms vanish, e.g. a one-token prompt)
        r_z = B.layernorm_input_ball_radius(x, w.ln1_g[layer], w.eps, tol)[:, 0]
        heads = Fraction(0)
        out = np.zeros_like(x)
        r_out = np.full_like(x, tol)
        for h in range(w.n_heads):
            ht = {"layer": layer, "head": h}
            q = z @ w.W_Q[layer, h] + w.b_Q[layer, h]
            k = z @ w.W_K[layer, h] + w.b_K[layer, h]
            vwo = (z @ w.W_V[layer, h] + w.b_V[layer, h]) @ w.W_O[layer, h]
            a = attention_pattern(q, k)
            out += a @ vwo
            # radii over the witness ball, as the checker will see them (estimates, doubled)
            rq_m = r_z[:, None] * np.abs(w.W_Q[layer, h]).sum(axis=0)[None, :]
            rk_m = r_z[:, None] * np.abs(w.W_K[layer, h]).sum(axis=0)[None, :]
            r_v = r_z[:, None] * np.abs(w.W_V[layer, h]).sum(axis=0)[None, :]
            rvwo_m = r_v @ np.abs(w.W_O[layer, h])
            r_s = np.where(mask, 0.0, (np.abs(q) @ rk_m.T + rq_m @ np.abs(k).T + rq_m @ rk_m.T)
                           / math.sqrt(w.d_head))
            r_a = 2 * a * np.expm1(4 * r_s.max(axis=1, keepdims=True))
            r_out += r_a @ np.abs(vwo) + (a + r_a) @ rvwo_m
            r_q, r_k, r_vwo = (float(np.linalg.norm(m)) for m in (rq_m, rk_m, rvwo_m))
            vo = by[("opnorm_product", layer, h, None)]
            nq, nk = by[("opnorm", layer, h, "W_Q")], by[("opnorm", layer, h, "W_K")]
            col_max = float((a + r_a).sum(axis=0).max())
            value = add("head_value_local", _inflate(math.sqrt(col_max) * float(vo), REL), **ht)
            k_f = _centred_frob(k) + r_k
            q_f = float(np.linalg.norm(q)) + r_q
            pat = (float(s) * (float(nq) * k_f + q_f * float(nk)) * (_centred_frob(vwo) + r_vwo)
                   / math.sqrt(w.d_head))
            pattern = add("head_pattern_local", _inflate(pat, REL), **ht)
            heads += value + pattern
        a_l = add("layer_attn_local", _derived(ln1 * heads), layer=layer)
        sig2 = _sigma(x + out + w.b_O[layer], w.eps)
        # σ over the ball of y moves by ≤ ‖radius row‖₂/√d (σ is 1/√d-Lipschitz)
        sig2_lo = np.maximum(sig2 - 2 * np.linalg.norm(r_out, axis=1) / math.sqrt(w.d_model),
                             math.sqrt(w.eps))  # σ = √(var + eps) ≥ √eps
        ln2 = add("ln_jacobian_local",
                  _inflate(float(np.max(np.abs(w.ln2_g[layer]))) / float(sig2_lo.min()), REL),
                  layer=layer, which="ln2")
        m_l = add("layer_mlp_local", _derived(ln2 * by[("opnorm", layer, None, "W_in")] * g
                                              * by[("opnorm", layer, None, "W_out")]), layer=layer)
        c_l = add("layer_C", _derived(a_l + m_l + a_l * m_l), layer=layer)
        total *= 1 + c_l
    add("total_amplification", _derived(total))
    return claims, tols
