"""Text of the original's ``-d`` diagnostic blocks, with our (correct) numbers.

Line layouts follow ``reference/induction_spec.md`` §6.2 where the quantity is the same; where
the original printed a value that is not a bound (e.g. ‖Z‖_F in the pattern term, ‖A‖_F for
the value term) the corrected quantity is printed under an explicit name. Every ``ub``/``lb``
printed is rigorous; PI values are heuristic and say so.
"""

from __future__ import annotations

import math

import numpy as np

from nfp_steps import rigor as R
from nfp_steps.ranking import fmt
from nfp_steps.softmax_bounds import CANDIDATES as SOFTMAX_PARTS


def layer_block(ly, adaptive: bool) -> list[str]:
    """Per-layer: PI vs rigorous, or LOWER vs UPPER (``--adaptive``)."""
    c_ub, c_lb = ly["C_ub"].values, ly["C_lb"].values
    if adaptive:
        out = ["LAYER NORM DIAGNOSTICS (LOWER vs UPPER)",
               "  (lb is rigorous lower bound via Krylov steps; ub is rigorous upper bound)"]
        for i, c in enumerate(c_ub):
            lb = float(c_lb[i])
            slack = fmt(c / lb) if lb > 1e-12 else "inf"
            out.append(f"  L{i}: lb≈{fmt(lb)}  ub={fmt(c)}  ub/lb={slack}  "
                       f"tier={ly['tier'].values[i]}")
        return out
    out = ["LAYER NORM DIAGNOSTICS (PI vs rigorous)",
           "  (PI is diagnostics-only; lb (Krylov vector, certified) and ub are rigorous)"]
    for i, c in enumerate(c_ub):
        pi, lb = float(ly["C_pi"].values[i]), float(c_lb[i])
        ratio = fmt(c / pi) if pi > 1e-12 else "inf"
        slack = fmt(c / lb) if lb > 1e-12 else "inf"
        a_ub, m_ub = fmt(ly["attn_ub"].values[i]), fmt(ly["mlp_ub"].values[i])
        out.append(f"  L{i}: PI≈{fmt(pi)}  ub={fmt(c)}  ub/PI={ratio}  lb={fmt(lb)}  "
                   f"ub/lb={slack}  (attn_ub={a_ub} mlp_ub={m_ub})")
    return out


def _lam(norm_ub: float) -> str:
    """λ bound of the Gram from a norm bound (λ = ‖M‖², rounded up)."""
    return fmt(float(R.mul_up(norm_ub, norm_ub))) if math.isfinite(norm_ub) else "inf"


def rect_gram_block(w_in: np.ndarray, w_out: np.ndarray) -> list[str]:
    """RECT-GRAM DIAGNOSTICS for MLP layer 0: every candidate of the certified suite."""
    from nfp_steps.opnorm import opnorm_candidates

    out = ["RECT-GRAM DIAGNOSTICS (MLP layer 0 weights)"]
    for name, m in (("W_in: ", w_in), ("W_out:", w_out)):
        c = opnorm_candidates(m)
        gram = min(c[k] for k in ("gram", "gram_gersh", "gram_brauer", "trace2", "trace4",
                                  "moment", "cholesky"))
        absg = min(c["abs_gram_gersh"], c["abs_gram_brauer"])
        out += [
            f"  {name} usedGram={str(c['used'] == gram).lower()}  "
            f"usedAbsGram={str(c['used'] == absg).lower()} gramDim={min(m.shape)}",
            f"        frob={fmt(c['frobenius'])}  oneInf={fmt(c['schur'])} "
            f"opBound={fmt(c['used'])}",
            f"        λ_abs_gersh={_lam(c['abs_gram_gersh'])} "
            f"λ_abs_brauer={_lam(c['abs_gram_brauer'])}",
            f"        λ_gersh={_lam(c['gram_gersh'])}",
            f"        λ_brauer={_lam(c['gram_brauer'])}",
            f"        λ_moment={_lam(c['moment'])}",
            f"        λ_trace={_lam(c['trace2'])}  λ_trace4={_lam(c['trace4'])}",
            f"        λ_cholesky={_lam(c['cholesky'])}   (certified tight bound)",
            f"        λ_used={_lam(c['used'])}",
        ]
    return out


def _candidates(hd, prefix: str, layer: int, head: int) -> str:
    keys = [k for k in hd.data_vars if k.startswith(prefix)]
    return " / ".join(f"{k[len(prefix):]}={fmt(hd[k].values[layer, head])}" for k in keys)


def head_block(hd, layer: int, head: int, d_head: int) -> list[str]:
    """One head's ε decomposition (the original's printHeadDiagnostics, corrected)."""

    def v(key: str) -> str:
        return fmt(hd[key].values[layer, head])

    parts = [f"row{k.capitalize()}={v('softmax_' + k)}" for k in SOFTMAX_PARTS]
    return [
        f"    softmaxOpBound = {v('softmax_ub')}",
        "    softmaxParts  = " + "\n                 = ".join(
            parts + [f"fallbackRows={int(hd['softmax_fallback_rows'].values[layer, head])}"]),
        f"    scaleFactor    = {fmt(math.sqrt(d_head))}",
        f"    inputNorm      = {v('z_norm_ub')}   (ub of ‖Z‖₂, Z = LN1(x) enclosed)",
        f"    qkOpBoundUsed  = {v('qk_ub')}   (‖W_Q W_Kᵀ‖₂ ub; lb {v('qk_lb')})",
        f"    qkCandidates   = {_candidates(hd, 'qk_ub_', layer, head)}",
        f"    voOpBoundUsed  = {v('vo_ub')}   (‖W_V W_O‖₂ ub; lb {v('vo_lb')})",
        f"    voCandidates   = {_candidates(hd, 'vo_ub_', layer, head)}",
        f"    attnOpBound    = [{v('attn_norm_lb')}, {v('attn_norm_ub')}]   (‖A‖₂)",
        f"    patternTerms   = ‖W_Q K_cᵀ‖≤{v('wq_kc_ub')}  ‖Q W_Kᵀ‖≤{v('q_wk_ub')}  "
        f"‖V_c W_O‖≤{v('vc_wo_ub')}",
        f"    patternBound   = {v('pattern_ub')}   (centred {v('pattern_ub_centred')}, "
        f"simple {v('pattern_ub_simple')}; lb {v('pattern_lb')})",
        f"    valueBound     = [{v('value_lb')}, {v('value_ub')}]   (= ‖A‖₂‖W_VO‖₂)",
        f"    ε              = {v('eps_ub')}   (pattern ub / value lb)",
    ]


def eps_decomposition(rows: list[dict], hd, d_head: int) -> list[str]:
    out = [f"DIAGNOSTICS (ε decomposition) for top-{len(rows)} candidates"]
    for r in rows:
        out.append(f"Candidate L{r['l1']}H{r['h1']} -> L{r['l2']}H{r['h2']}")
        for tag, (lay, h) in (("Head1", (r["l1"], r["h1"])), ("Head2", (r["l2"], r["h2"]))):
            out.append(f"  {tag} L{lay}H{h}:")
            out += head_block(hd, lay, h, d_head)
        out += ["  Combined:",
                f"    ε1 = {fmt(r['eps1_ub'])}  ε2 = {fmt(r['eps2_ub'])}",
                f"    combinedError = (1+ε1)(1+ε2)-1 = {fmt(r['pairError_ub'])}"]
    return out
