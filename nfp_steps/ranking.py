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
    "prevTok_sd", "indScore_sd", "delta_sd", "effect_sd",
)


def _desc(v: float) -> float:
    return -v if not math.isnan(v) else math.inf


def pair_row(sc: dict[str, np.ndarray], eps_ub: np.ndarray, l1: int, h1: int, l2: int,
             h2: int) -> dict:
    """One pair's row (the keys of :data:`COLUMNS` but ``rank``), no filter applied.

    ``sc`` maps prevTok, indScore, kComp, kCompRaw, delta, effect, x_frob, z_frob (and
    optionally the ``*_sd`` spreads over the prompt batch) to arrays as in the scores store.
    """
    kc, ind, pt = (float(sc["kComp"][l1, h1, l2, h2]), float(sc["indScore"][l2, h2]),
                   float(sc["prevTok"][l1, h1]))
    mech = kc * ind * pt
    eff = float(sc["effect"][l2, h2])
    e1, e2 = float(eps_ub[l1, h1]), float(eps_ub[l2, h2])

    def sd(name: str, lay: int, h: int) -> float:
        return float(sc[f"{name}_sd"][lay, h]) if f"{name}_sd" in sc else 0.0

    return {
        "l1": l1, "h1": h1, "l2": l2, "h2": h2,
        "mechScore": mech, "circuitScore": eff * mech, "effect": eff,
        "kComp": kc, "kCompRaw": float(sc["kCompRaw"][l1, h1, l2, h2]),
        "indScore": ind, "prevTok": pt, "delta": float(sc["delta"][l2, h2]),
        "eps1_ub": e1, "eps2_ub": e2, "pairError_ub": pair_error_ub(e1, e2),
        "x2_frob": float(sc["x_frob"][l2]), "z2_frob": float(sc["z_frob"][l2]),
        "prevTok_sd": sd("prevTok", l1, h1), "indScore_sd": sd("indScore", l2, h2),
        "delta_sd": sd("delta", l2, h2), "effect_sd": sd("effect", l2, h2),
    }


def rank_key(r: dict) -> tuple:
    """The sort key: mechScore, Effect, kComp, δ (desc; NaN last), pair error (asc), indices."""
    mech = r["mechScore"]
    if any(math.isnan(r[c]) for c in ("effect", "kComp", "indScore", "prevTok")):
        mech = -math.inf
    err = r["pairError_ub"]
    return (_desc(mech), _desc(r["effect"]), _desc(r["kComp"]), _desc(r["delta"]),
            err if not math.isnan(err) else math.inf, r["l1"], r["h1"], r["l2"], r["h2"])


def rank_pairs(
    sc: dict[str, np.ndarray],
    eps_ub: np.ndarray,
    *,
    min_prev_tok: float,
    min_ind_score: float,
    threshold: float,
) -> list[dict]:
    """All candidate pairs as rows (dicts keyed by :data:`COLUMNS`), best first.

    ``sc``: the score arrays as for :func:`pair_row` (means over the prompt batch).
    """
    prev_tok, ind_score, effect = sc["prevTok"], sc["indScore"], sc["effect"]
    L, H = prev_tok.shape
    rows = []
    for l1 in range(L):
        for h1 in range(H):
            if not prev_tok[l1, h1] >= min_prev_tok:
                continue
            for l2 in range(l1 + 1, L):
                for h2 in range(H):
                    if not float(ind_score[l2, h2]) >= min_ind_score:
                        continue
                    if not float(effect[l2, h2]) > threshold:
                        continue
                    rows.append(pair_row(sc, eps_ub, l1, h1, l2, h2))
    rows.sort(key=rank_key)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def candidate_failures(r: dict, *, min_prev_tok: float, min_ind_score: float,
                       threshold: float) -> list[str]:
    """Why a pair's row is not a ranking candidate (empty: it is one)."""
    out = []
    if not r["l1"] < r["l2"]:
        out.append(f"l1={r['l1']} is not below l2={r['l2']}")
    if not r["prevTok"] >= min_prev_tok:
        out.append(f"prevTok {fmt(r['prevTok'])} < {fmt(min_prev_tok)}")
    if not r["indScore"] >= min_ind_score:
        out.append(f"indScore {fmt(r['indScore'])} < {fmt(min_ind_score)}")
    if not r["effect"] > threshold:
        out.append(f"Effect {fmt(r['effect'])} <= {fmt(threshold)}")
    return out


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
    n_prompts: int = 1,
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
        *([f"  Scores: mean over {n_prompts} prompts (prevTok, indScore, δ, Effect); "
           "Error: at the analysed prompt 0"] if n_prompts > 1 else []),
        f"Top Induction Head Pairs by mechScore (top {len(shown)} of {len(rows)})",
    ]
    lines += [pair_line(r, verbose) for r in shown]
    return "\n".join(lines) + "\n"
