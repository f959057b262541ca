"""The ``analyze`` reports: one head pair in detail, or every candidate pair in the original's
"NFP Circuit Analysis Report" layout (induction_spec.md §7), corrected.

Everything here reads numbers the stages computed (scores, heads, layers stores); the only
arithmetic is the composition of existing rigorous bounds with outward rounding:

**Path amplification.** Head 1 (layer l1) writes into the residual stream after layer l1's
attention; head 2 reads LN1 of x_{l2}. The linear map between them is T = J_LN1(l2) ·
J_{l2−1} ⋯ J_{l1+1} · (I + M_{l1}), with M_{l1} the MLP part of layer l1 and J_j the full
residual Jacobian of layer j, so ‖T‖₂ ≤ ‖J_LN1(l2)‖ · ∏_{l1<j<l2} (1 + C_j) · (1 + m_{l1}).
With the heads' Jacobians J_i = V_i + P_i (‖P_i‖ ≤ ε_i‖V_i‖),
J₂TJ₁ − V₂TV₁ = P₂TJ₁ + V₂TP₁, hence ‖J₂TJ₁ − V₂TV₁‖ ≤ ((1+ε₁)(1+ε₂) − 1)·‖T‖·‖V₂‖‖V₁‖:
the "amplified pair error" pairError·‖T‖_ub bounds the error of the two heads' frozen-attention
(value-term) story relative to ‖V₂‖‖V₁‖ along the real path between them.
"""

from __future__ import annotations

import math

import numpy as np

from nfp_steps import rigor as R
from nfp_steps.ranking import fmt

RULE = "═" * 64
THIN = "─" * 64


def path_amplification(ly, l1: int, l2: int) -> dict:
    """Rigorous ub of ‖T‖₂ (module docstring) and its factors, from the layers store."""
    mlp = float(ly["mlp_ub"].values[l1])
    between = [float(R.add_up(1.0, ly["C_ub"].values[j])) for j in range(l1 + 1, l2)]
    ln1 = float(ly["ln1_ub"].values[l2])
    t = float(R.add_up(1.0, mlp))
    for f in between:
        t = float(R.mul_up(t, f))
    t = float(R.mul_up(t, ln1))
    return {"mlp_l1_ub": mlp, "one_plus_C_between": between, "ln1_l2_ub": ln1, "path_ub": t,
            "suffix_after_l2_ub": float(ly["suffix_ub"].values[l2 + 1]),
            "suffix_from_l1_ub": float(ly["suffix_ub"].values[l1])}


def amplified_error(pair_error: float, path_ub: float) -> float:
    """pairError · ‖T‖_ub, rounded up (inf stays inf)."""
    return float(R.mul_up(pair_error, path_ub))


def used_candidates(hd, prefix: str, layer: int, head: int) -> list[str]:
    """Names of the candidates ``prefix*`` whose value equals the used bound ``prefix`` ub."""
    used = float(hd[prefix[:-1]].values[layer, head])
    return [k[len(prefix):] for k in hd.data_vars
            if k.startswith(prefix) and float(hd[k].values[layer, head]) == used]


def head_decomposition(hd, layer: int, head: int) -> dict:
    """Which candidate each rigorous factor of one head's ε used, and its value."""
    v = {k: float(hd[k].values[layer, head]) for k in hd.data_vars
         if hd[k].dims == ("layer", "head")}
    pat = "centred" if v["pattern_ub_centred"] <= v["pattern_ub_simple"] else "simple"
    return {
        "values": v,
        "qk_used": used_candidates(hd, "qk_ub_", layer, head),
        "vo_used": used_candidates(hd, "vo_ub_", layer, head),
        "z_norm_used": used_candidates(hd, "z_norm_ub_", layer, head),
        "pattern_used": pat,
    }


def _names(names: list[str]) -> str:
    return "/".join(names) if names else "?"


def head_lines(tag: str, layer: int, head: int, dec: dict, d_head: int) -> list[str]:
    """One head's bound decomposition with the candidate used and why."""
    v = dec["values"]
    return [
        f"  {tag} L{layer}H{head}:",
        f"    ε = pattern ub / value lb = {fmt(v['pattern_ub'])} / {fmt(v['value_lb'])} = "
        f"{fmt(v['eps_ub'])}",
        f"    value term   [{fmt(v['value_lb'])}, {fmt(v['value_ub'])}] = ‖A‖₂·‖W_VO‖₂ with "
        f"‖A‖₂ ∈ [{fmt(v['attn_norm_lb'])}, {fmt(v['attn_norm_ub'])}], "
        f"‖W_VO‖₂ ∈ [{fmt(v['vo_lb'])}, {fmt(v['vo_ub'])}]",
        f"    pattern term ub = {fmt(v['pattern_ub'])}: the {dec['pattern_used']} form "
        f"(the smaller valid one; centred {fmt(v['pattern_ub_centred'])} = "
        f"(s/√dh)(‖W_Q K_cᵀ‖ {fmt(v['wq_kc_ub'])} + ‖Q W_Kᵀ‖ {fmt(v['q_wk_ub'])})·"
        f"‖V_c W_O‖ {fmt(v['vc_wo_ub'])}; simple {fmt(v['pattern_ub_simple'])}); "
        f"certified lb {fmt(v['pattern_lb'])}",
        f"    softmax s = {fmt(v['softmax_ub'])} (max over rows of the smallest row bound: "
        f"maxP {fmt(v['softmax_maxp'])}, trace {fmt(v['softmax_trace'])}, gersh "
        f"{fmt(v['softmax_gersh'])}, moment {fmt(v['softmax_moment'])}, ½); √dh = "
        f"{fmt(math.sqrt(d_head))}",
        f"    ‖W_Q W_Kᵀ‖₂ ub = {fmt(v['qk_ub'])} from {_names(dec['qk_used'])} (smallest of "
        f"the valid candidates; lb {fmt(v['qk_lb'])})",
        f"    ‖W_V W_O‖₂ ub = {fmt(v['vo_ub'])} from {_names(dec['vo_used'])} (smallest of "
        f"the valid candidates)",
        f"    ‖Z‖₂ ub = {fmt(v['z_norm_ub'])} from {_names(dec['z_norm_used'])} "
        "(Z = LN1(x) enclosed; smallest valid candidate)",
    ]


def pair_report(model: str, r: dict, rank: int | None, failures: list[str], hd, ly,
                d_head: int, d_model: int, n_prompts: int, kcomp: str, threshold: float,
                target_desc: str) -> tuple[list[str], dict]:
    """The single-pair analysis: (text lines, JSON document fields)."""
    l1, h1, l2, h2 = r["l1"], r["h1"], r["l2"], r["h2"]
    dec1, dec2 = head_decomposition(hd, l1, h1), head_decomposition(hd, l2, h2)
    amp = path_amplification(ly, l1, l2)
    amplified = amplified_error(r["pairError_ub"], amp["path_ub"])
    within = bool(r["pairError_ub"] <= threshold)
    where = (f"rank {rank} in the induction ranking" if rank is not None else
             "not an induction-ranking candidate: " + "; ".join(failures))

    def pm(name: str) -> str:
        return f"{fmt(r[name])} ± {fmt(r[name + '_sd'])}"

    lines = [
        f"Pair L{l1}H{h1} -> L{l2}H{h2}  ({where})",
        f"Target: {target_desc}",
        "",
        f"SCORES (heuristic; mean ± sd over {n_prompts} prompt(s))",
        *_aligned([
            (f"prevTok(L{l1}H{h1})", pm("prevTok")),
            (f"indScore(L{l2}H{h2})", pm("indScore")),
            ("kComp_raw", f"{fmt(r['kCompRaw'])}   ({kcomp}; weights only)"),
            ("kComp", f"kComp_raw - 1/√{d_model} = {fmt(r['kComp'])}"),
            (f"δ(L{l2}H{h2})", pm("delta")),
            ("Effect", f"δ / (‖ln₁(X₂)‖_F · ‖u‖₂) = {pm('effect')}"),
            ("mechScore", f"kComp·indScore·prevTok = {fmt(r['mechScore'])}"),
            ("circuitScore", f"Effect·mechScore = {fmt(r['circuitScore'])}"),
        ]),
        "",
        "BOUNDS (rigorous, at the analysed prompt 0)",
        *head_lines("Head1", l1, h1, dec1, d_head),
        *head_lines("Head2", l2, h2, dec2, d_head),
        f"  ε₁ = {fmt(r['eps1_ub'])}  ε₂ = {fmt(r['eps2_ub'])}",
        f"  Pair error = (1+ε₁)(1+ε₂)-1 = {fmt(r['pairError_ub'])}   (ub of "
        "‖J₂J₁ − V₂V₁‖/(‖V₂‖‖V₁‖))",
        f"  Threshold {fmt(threshold)}: pair error within threshold: {'yes' if within else 'no'}",
        "",
        f"LAYERS L{l1}..L{l2} (rigorous per-layer constants; C_l ≥ ‖J_l − I‖₂ ≥ C_lb)",
    ]
    for j in range(l1, l2 + 1):
        lines.append(
            f"  L{j}: C_ub={fmt(ly['C_ub'].values[j])}  C_lb={fmt(ly['C_lb'].values[j])}  "
            f"attn_ub={fmt(ly['attn_ub'].values[j])}  mlp_ub={fmt(ly['mlp_ub'].values[j])}  "
            f"ln1_ub={fmt(ly['ln1_ub'].values[j])}")
    between = " · ".join(fmt(f) for f in amp["one_plus_C_between"]) or "1 (adjacent layers)"
    lines += [
        f"  Path head1 -> head2: ‖T‖₂ ≤ (1+m_L{l1}) · Π_(L{l1}<j<L{l2})(1+C_j) · ‖J_LN1(L{l2})‖"
        f" = {fmt(1.0 + amp['mlp_l1_ub'])} · {between} · {fmt(amp['ln1_l2_ub'])} = "
        f"{fmt(amp['path_ub'])}",
        f"  Amplified pair error = pair error · ‖T‖ ub = {fmt(amplified)}   (ub of "
        "‖J₂TJ₁ − V₂TV₁‖/(‖V₂‖‖V₁‖))",
        f"  After head 2 to the output: Π_(j>L{l2})(1+C_j) = {fmt(amp['suffix_after_l2_ub'])}",
    ]
    doc = {"pair": r, "rank": rank, "candidate": rank is not None,
           "not_candidate_because": failures,
           "head1": dec1, "head2": dec2, "threshold": threshold, "within_threshold": within,
           "layers": [{"layer": j, **{k: float(ly[k].values[j]) for k in
                                      ("C_ub", "C_lb", "attn_ub", "mlp_ub", "ln1_ub")}}
                      for j in range(l1, l2 + 1)],
           "amplification": {**amp, "amplified_pair_error_ub": amplified}}
    return lines, doc


def all_pairs_report(model: str, rows: list[dict], ly, n_layers: int, n_heads_total: int,
                     threshold: float) -> tuple[list[str], dict]:
    """The original's analyze report (§7.2), corrected: the induction ranking's candidates
    (not a separate filter), dimensionless errors compared with the threshold, and the
    amplification computed from rigorous per-layer constants."""
    by_err = sorted(rows, key=lambda r: (_nan_last(r["pairError_ub"]), r["rank"]))
    within = [r for r in by_err if r["pairError_ub"] <= threshold]
    deep = []
    for r in rows:
        amp = path_amplification(ly, r["l1"], r["l2"])
        deep.append({"l1": r["l1"], "h1": r["h1"], "l2": r["l2"], "h2": r["h2"],
                     "simple_error_sum": float(R.add_up(r["eps1_ub"], r["eps2_ub"])),
                     "pair_error_ub": r["pairError_ub"], "path_ub": amp["path_ub"],
                     "amplified_error_ub": amplified_error(r["pairError_ub"], amp["path_ub"]),
                     "amplification_factor_ub": amp["suffix_from_l1_ub"]})
    deep.sort(key=lambda d: (_nan_last(d["amplified_error_ub"]), d["l1"], d["h1"], d["l2"],
                             d["h2"]))
    lines = [RULE, "NFP Circuit Analysis Report", f"Model: {model}",
             f"Layers: {n_layers}, Heads: {n_heads_total}",
             f"Threshold: {fmt(threshold)} (on the dimensionless pair error, a rigorous ub)",
             RULE, ""]
    if rows:
        lines += [f"INDUCTION HEAD CANDIDATES ({len(rows)} found, {len(within)} with Combined "
                  f"Error ≤ threshold; lowest error first):", THIN]
        for r in by_err:
            ok = "yes" if r["pairError_ub"] <= threshold else "no"
            lines += [f"  L{r['l1']}H{r['h1']} → L{r['l2']}H{r['h2']}   (ranking: #{r['rank']})",
                      f"    Combined Error: {fmt(r['pairError_ub'])} (rigorous ub; within "
                      f"threshold: {ok})",
                      f"    Prev-Token Strength: {fmt(r['prevTok'])}",
                      f"    Induction Score: {fmt(r['indScore'])}",
                      f"    K-Composition: {fmt(r['kComp'])}",
                      f"    Faithfulness Ratios: ε₁={fmt(r['eps1_ub'])}, ε₂={fmt(r['eps2_ub'])}",
                      ""]
        lines += [f"DEEP CIRCUIT CANDIDATES ({len(deep)} found; lowest amplified error first):",
                  THIN]
        for d in deep:
            lines += [f"  L{d['l1']}H{d['h1']}->L{d['l2']}H{d['h2']}",
                      "    Pattern Type: induction",
                      f"    Simple Error Sum: {fmt(d['simple_error_sum'])} (ε₁+ε₂)",
                      f"    Amplified Error: {fmt(d['amplified_error_ub'])} (pair error · ‖T‖ "
                      "ub, see analyze --l1 ... for the path)",
                      f"    Amplification Factor: {fmt(d['amplification_factor_ub'])} "
                      f"(Π_(j≥L{d['l1']})(1+C_j) ub)", ""]
    else:
        lines += ["No induction head candidates (no pair passed the induction filters).", ""]
    lines.append(RULE)
    doc = {"threshold": threshold,
           "induction_candidates": [{**r, "within_threshold": bool(r["pairError_ub"] <= threshold)}
                                    for r in by_err],
           "n_within_threshold": len(within), "deep_circuits": deep}
    return lines, doc


def _aligned(pairs: list[tuple[str, str]]) -> list[str]:
    width = max(len(k) for k, _ in pairs)
    return [f"  {k.ljust(width)} = {v}" for k, v in pairs]


def _nan_last(v: float) -> float:
    return math.inf if np.isnan(v) else v
