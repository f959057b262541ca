"""Candidate head pairs and their ranking (DESIGN §6; induction_spec §5.3–§5.6).

Candidates: l1 < l2, prevTok(l1,h1) ≥ min_prev_tok, indScore(l2,h2) ≥ min_ind_score,
Effect(l2,h2) > threshold. Order: mechScore = kComp·indScore·prevTok (desc), Effect, kComp, δ
(desc), pair error (asc), then (l1,h1,l2,h2): a stable, fully determined order (the original's
unstable qsort could reorder exact ties).
"""

from __future__ import annotations

import math

import numpy as np

from nfp_steps.bounds import pair_error_ub

COLUMNS = (
    "rank", "l1", "h1", "l2", "h2", "mechScore", "circuitScore", "effect", "kComp", "kCompRaw",
    "indScore", "prevTok", "delta", "eps1_ub", "eps2_ub", "pairError_ub", "x2_frob", "z2_frob",
)


def _desc(v: float) -> float:
    return -v if not math.isnan(v) else math.inf


def rank_pairs(
    prev_tok: np.ndarray,
    ind_score: np.ndarray,
    kcomp: np.ndarray,
    kcomp_raw: np.ndarray,
    delta: np.ndarray,
    effect: np.ndarray,
    eps_ub: np.ndarray,
    x_frob: np.ndarray,
    z_frob: np.ndarray,
    *,
    min_prev_tok: float,
    min_ind_score: float,
    threshold: float,
) -> list[dict]:
    """All candidate pairs as rows (dicts keyed by :data:`COLUMNS`), best first."""
    L, H = prev_tok.shape
    rows = []
    for l1 in range(L):
        for h1 in range(H):
            if not prev_tok[l1, h1] >= min_prev_tok:
                continue
            for l2 in range(l1 + 1, L):
                for h2 in range(H):
                    ind = float(ind_score[l2, h2])
                    if not ind >= min_ind_score:
                        continue
                    eff = float(effect[l2, h2])
                    if not eff > threshold:
                        continue
                    kc = float(kcomp[l1, h1, l2, h2])
                    pt = float(prev_tok[l1, h1])
                    mech = kc * ind * pt
                    e1, e2 = float(eps_ub[l1, h1]), float(eps_ub[l2, h2])
                    rows.append({
                        "l1": l1, "h1": h1, "l2": l2, "h2": h2,
                        "mechScore": mech, "circuitScore": eff * mech, "effect": eff,
                        "kComp": kc, "kCompRaw": float(kcomp_raw[l1, h1, l2, h2]),
                        "indScore": ind, "prevTok": pt, "delta": float(delta[l2, h2]),
                        "eps1_ub": e1, "eps2_ub": e2, "pairError_ub": pair_error_ub(e1, e2),
                        "x2_frob": float(x_frob[l2]), "z2_frob": float(z_frob[l2]),
                    })

    def key(r: dict):
        mech = r["mechScore"]
        if any(math.isnan(r[c]) for c in ("effect", "kComp", "indScore", "prevTok")):
            mech = -math.inf
        err = r["pairError_ub"]
        return (_desc(mech), _desc(r["effect"]), _desc(r["kComp"]), _desc(r["delta"]),
                err if not math.isnan(err) else math.inf, r["l1"], r["h1"], r["l2"], r["h2"])

    rows.sort(key=key)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def fmt(v) -> str:
    """The original's float style (C++ %f with six decimals; NaN/inf spelled as Lean does)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.6f}"


def to_tsv(rows: list[dict]) -> str:
    """ranking.tsv: every candidate, every column, full precision (repr floats)."""
    out = ["\t".join(COLUMNS)]
    for r in rows:
        out.append("\t".join(
            str(r[c]) if isinstance(r[c], int) else repr(float(r[c])) for c in COLUMNS
        ))
    return "\n".join(out) + "\n"


def pair_line(r: dict, verbose: bool) -> str:
    """One ``L{l1}H{h1} -> L{l2}H{h2} | ...`` line in the original's layout."""
    head = f"L{r['l1']}H{r['h1']} -> L{r['l2']}H{r['h2']}"
    if verbose:
        return (
            f"{head} | Mech: {fmt(r['mechScore'])} | Circuit: {fmt(r['circuitScore'])} | "
            f"Effect: {fmt(r['effect'])} | kComp: {fmt(r['kComp'])} | "
            f"indScore: {fmt(r['indScore'])} | prevTok: {fmt(r['prevTok'])} | "
            f"δ: {fmt(r['delta'])} | Error: {fmt(r['pairError_ub'])} | "
            f"‖X₂‖_F: {fmt(r['x2_frob'])} | ‖ln₁(X₂)‖_F: {fmt(r['z2_frob'])} "
            f"(ε₁={fmt(r['eps1_ub'])}, ε₂={fmt(r['eps2_ub'])})"
        )
    return (
        f"{head} | Mech: {fmt(r['mechScore'])} | Effect: {fmt(r['effect'])} | "
        f"kComp: {fmt(r['kComp'])} | indScore: {fmt(r['indScore'])} | "
        f"prevTok: {fmt(r['prevTok'])} | Error: {fmt(r['pairError_ub'])} | "
        f"‖X₂‖_F: {fmt(r['x2_frob'])}"
    )


def induction_report(
    rows: list[dict],
    target_desc: str,
    threshold: float,
    top: int,
    verbose: bool = False,
    warnings: list[str] | None = None,
) -> str:
    """The seed's ``induction`` report body (induction_spec §6.1), with correct numbers."""
    shown = rows[:top]
    lines = list(warnings or [])
    lines += [
        f"Target: {target_desc}",
        f"Searching for heads with Effect > {fmt(threshold)}... (heuristic)",
        "Ranking: highest mechScore (= kComp·indScore·prevTok) first",
        "  Tie-break: Effect, kComp, δ, then lowest Error",
        "  circuitScore = Effect · mechScore",
        "  Effect = δ / (‖ln₁(X₂)‖_F · ‖u‖₂)",
        "  kComp_raw = ‖W_QK² · W_OV¹‖_F / (‖W_QK²‖_F · ‖W_OV¹‖_F)",
        "  kComp = kComp_raw - 1/√modelDim",
        "  Error = (1+ε₁)(1+ε₂)-1, ε = rigorous ub of pattern term / rigorous lb of value term",
        f"Top Induction Head Pairs by mechScore (top {len(shown)} of {len(rows)})",
    ]
    lines += [pair_line(r, verbose) for r in shown]
    return "\n".join(lines) + "\n"
