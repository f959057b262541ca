"""Causal check of ranked pairs by head ablation (heuristic evidence, not a bound).

Δ = logit(target) − logit(best non-target) at the last position; impact = Δ_base − Δ_ablated
for zero-ablation and mean-ablation (each head's output replaced by its mean over positions)
of both heads of a pair, and for a control: per candidate head, the same-layer head (not in
the pair) whose output norm is closest.
"""

from __future__ import annotations

import numpy as np

from nfp_steps.forward import head_outputs, run_forward
from nfp_steps.model import GPT2Weights

COLUMNS = (
    "rank", "l1", "h1", "l2", "h2", "target", "neg", "delta_base", "delta_zero", "impact_zero",
    "rel_zero", "delta_mean", "impact_mean", "control", "delta_control", "impact_control",
)


def logit_margin(logits_last: np.ndarray, target: int) -> tuple[float, int]:
    """(logit[target] − max other logit, the best other token; ties → lowest id)."""
    other = logits_last.copy()
    other[target] = -np.inf
    neg = int(np.argmax(other))
    return float(logits_last[target] - logits_last[neg]), neg


def _margin(w, tokens, target, neg, ablate) -> float:
    lg = run_forward(w, tokens, ablate=ablate).logits[-1]
    return float(lg[target] - lg[neg])


def verify_pairs(
    w: GPT2Weights, tokens: np.ndarray | None, pairs: list[tuple[int, int, int, int]], target: int
) -> list[dict]:
    """One row per pair (in the given order) with base/ablated margins and the control."""
    base = run_forward(w, tokens)
    delta_base, neg = logit_margin(base.logits[-1], target)
    outs = {
        layer: head_outputs(w, layer, base.z1[layer], base.attn[layer])
        for layer in {p[0] for p in pairs} | {p[2] for p in pairs}
    }
    rows = []
    for rank, (l1, h1, l2, h2) in enumerate(pairs, 1):
        heads = [(l1, h1), (l2, h2)]
        zero = {hd: np.zeros_like(outs[hd[0]][hd[1]]) for hd in heads}
        mean = {
            hd: np.broadcast_to(outs[hd[0]][hd[1]].mean(axis=0), outs[hd[0]][hd[1]].shape)
            for hd in heads
        }
        controls = []
        for layer, h in heads:
            norms = np.linalg.norm(outs[layer], axis=(1, 2))
            cands = [j for j in range(w.n_heads) if (layer, j) not in heads]
            if cands:
                j = min(cands, key=lambda j: (abs(norms[j] - norms[h]), j))
                controls.append((layer, j))
        d_zero = _margin(w, tokens, target, neg, zero)
        d_mean = _margin(w, tokens, target, neg, mean)
        if len(controls) == 2 and controls[0] != controls[1]:
            czero = {c: np.zeros_like(outs[c[0]][c[1]]) for c in controls}
            d_ctrl = _margin(w, tokens, target, neg, czero)
            ctrl = " ".join(f"L{c[0]}H{c[1]}" for c in controls)
        else:
            d_ctrl, ctrl = float("nan"), "none"
        rows.append({
            "rank": rank, "l1": l1, "h1": h1, "l2": l2, "h2": h2, "target": target, "neg": neg,
            "delta_base": delta_base, "delta_zero": d_zero, "impact_zero": delta_base - d_zero,
            "rel_zero": (delta_base - d_zero) / delta_base if delta_base > 0 else 0.0,
            "delta_mean": d_mean, "impact_mean": delta_base - d_mean, "control": ctrl,
            "delta_control": d_ctrl, "impact_control": delta_base - d_ctrl,
        })
    return rows


def to_tsv(rows: list[dict]) -> str:
    out = ["\t".join(COLUMNS)]
    for r in rows:
        out.append("\t".join(
            repr(r[c]) if isinstance(r[c], float) else str(r[c]) for c in COLUMNS
        ))
    return "\n".join(out) + "\n"
