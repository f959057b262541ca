"""Run summary text (plots and the Snakemake HTML report come with the report issue)."""

from __future__ import annotations

import numpy as np

from nfp_steps.ranking import fmt


def summary_text(model: str, ranking_rows: list[dict], c_ub: np.ndarray, verify_rows: list[dict],
                 total_ub: float, top: int = 10) -> str:
    """The one-page summary: the top pair, the ``top`` best pairs, layer constants, ablation."""
    lines = [f"NFP summary for {model}", ""]
    if ranking_rows:
        r = ranking_rows[0]
        lines.append(
            f"Top pair: L{r['l1']}H{r['h1']} -> L{r['l2']}H{r['h2']} | Mech: {fmt(r['mechScore'])}"
            f" | prevTok: {fmt(r['prevTok'])} | indScore: {fmt(r['indScore'])}"
            f" | Error (ub): {fmt(r['pairError_ub'])}"
        )
    else:
        lines.append("Top pair: none (no candidate passed the filters)")
    lines.append(f"Candidate pairs: {len(ranking_rows)}")
    shown = ranking_rows[:top]
    if shown:
        lines.append(f"Top {len(shown)} pairs (heuristic mechScore; Error is a rigorous ub):")
        for i, r in enumerate(shown, 1):
            lines.append(f"  {i}. L{r['l1']}H{r['h1']} -> L{r['l2']}H{r['h2']}  "
                         f"Mech={fmt(r['mechScore'])}  Error(ub)={fmt(r['pairError_ub'])}")
    if len(c_ub):
        worst = int(np.argmax(c_ub))
        lines.append(f"Largest layer constant: L{worst} C_ub={fmt(c_ub[worst])}")
    lines.append(f"Total amplification ub: {fmt(total_ub)}")
    if verify_rows:
        v = verify_rows[0]
        lines.append(
            f"Top pair ablation: Δ_base={fmt(v['delta_base'])} zero-ablated impact="
            f"{fmt(v['impact_zero'])} control impact={fmt(v['impact_control'])}"
        )
    return "\n".join(lines) + "\n"
