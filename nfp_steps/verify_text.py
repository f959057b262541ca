"""Text of the ``--verify`` block of ``nfp induction`` / ``nfp analyze`` (kept apart from
:mod:`nfp_steps.verify`, so the verify stage's code digest does not cover report formatting)."""

from __future__ import annotations


def verify_block(rows: list[dict], n_prompts: int) -> list[str]:
    """The original's "Causal Verification (Head Ablation)" block (induction_spec §6.3), with
    the mean-ablation and batch-averaged columns added and the checks per row."""
    from nfp_steps.ranking import fmt

    out = ["Causal Verification (Head Ablation)",
           "Metric: Δ = logit(target) - logit(top non-target) at last position",
           "Impact = Δ_base - Δ_ablated   (heuristic evidence, not a bound)",
           f"Avg: Δ averaged over the induction positions of {n_prompts} prompt(s); "
           "mean-ablation uses each head's mean output over the batch", ""]
    if not rows:
        return out + ["No candidate pairs to ablate."]
    r0 = rows[0]
    out += [f"Top-{len(rows)} ablation checks (ranked by mechScore):",
            f"  target={r0['target']} | neg={r0['neg']}",
            f"  Δ_base={fmt(r0['delta_base'])}  avg Δ_base={fmt(r0['avg_delta_base'])} "
            f"over {r0['n_positions']} induction positions", "",
            "Rank | Candidate | Base Δ | Ablated Δ | Impact (Logits) | RelScore | "
            "Control Impact | Mean-abl Impact | Avg Impact | Avg Control Impact | Control | "
            "Axioms Verified?",
            "-----|-----------|--------|----------|----------------|----------|--------------|"
            "----------------|------------|--------------------|---------|----------------"]
    for r in rows:
        out.append(
            f"{r['rank']} | L{r['l1']}H{r['h1']} -> L{r['l2']}H{r['h2']} | "
            f"{fmt(r['delta_base'])} | {fmt(r['delta_zero'])} | {fmt(r['impact_zero'])} | "
            f"{fmt(r['rel_zero'])} | {fmt(r['impact_control'])} | {fmt(r['impact_mean'])} | "
            f"{fmt(r['avg_impact_zero'])} | {fmt(r['avg_impact_control'])} | {r['control']} | "
            f"{r['checks']}")
    return out
