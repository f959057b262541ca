"""Causal check of ranked pairs by head ablation (heuristic evidence, not a bound).

Per pair, both heads are ablated together and every layer downstream is recomputed:

* zero-ablation: the heads' outputs A(ZW_V + b_V)W_O set to 0;
* mean-ablation: each head's output replaced by its mean over every position of every prompt
  of the batch (one d-vector per head);
* control: per pair head, the same-layer head outside the pair whose output has the closest
  Frobenius norm on the analysed prompt (ties → lowest index; the original's rule), zero-ablated.

Metrics: Δ = logit(target) − logit(neg) at the last position of the analysed prompt (prompt 0;
target from ``--correct`` or its induction history, neg = the best other token of the unablated
run, fixed for all ablations: the original's definition), and Δ averaged over every induction
position q of every prompt of the batch (q whose token occurred before at k ≤ q − 2; target the
token after the most recent such k, neg the best other token of that prompt's unablated run).
impact = Δ_base − Δ_ablated, relative score = impact / Δ_base (0 when Δ_base ≤ 0).

The original's three runtime checks (formats_certify_verify_history.md §3.3) are reported per
row: baseline competence Δ_base > 1e-3; control independence (a control exists in each pair
head's layer and none is a pair head); energy equivalence |‖c‖ − ‖ctrl‖| < max(1e-6, 0.05‖c‖).
Unlike the original, the measurements are reported even when a check fails (the ``checks``
column says which one, and the numbers are then weak evidence).
"""

from __future__ import annotations

import numpy as np

from nfp_steps.forward import head_outputs, run_forward
from nfp_steps.model import GPT2Weights

COLUMNS = (
    "rank", "l1", "h1", "l2", "h2", "target", "neg", "delta_base", "delta_zero", "impact_zero",
    "rel_zero", "delta_mean", "impact_mean", "rel_mean", "control", "delta_control",
    "impact_control", "rel_control", "n_positions", "avg_delta_base", "avg_impact_zero",
    "avg_impact_mean", "avg_impact_control", "competence", "control_independent",
    "energy_match", "checks",
)
STR_COLUMNS = ("control", "checks")
BOOL_COLUMNS = ("competence", "control_independent", "energy_match")

COMPETENCE_EPS = 1e-3
ENERGY_REL_TOL = 0.05
ENERGY_ABS_TOL = 1e-6


def logit_margin(logits_last: np.ndarray, target: int) -> tuple[float, int]:
    """(logit[target] − max other logit, the best other token; ties → lowest id)."""
    other = logits_last.copy()
    other[target] = -np.inf
    neg = int(np.argmax(other))
    return float(logits_last[target] - logits_last[neg]), neg


class _Prompts:
    """The batch's unablated runs and the (position, target, neg) triples Δ is measured at."""

    def __init__(self, w: GPT2Weights, batch: np.ndarray | None, target: int):
        from nfp_steps.data import induction_positions, induction_targets

        self.w = w
        self.toks = [None] if batch is None else list(batch)
        self.base = [run_forward(w, t) for t in self.toks]
        self.delta_base, self.neg = logit_margin(self.base[0].logits[-1], target)
        self.target = target
        self.sites = []  # per prompt: (positions, targets, negs)
        for t, tr in zip(self.toks, self.base, strict=True):
            if t is None:
                self.sites.append((np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)))
                continue
            pos = np.flatnonzero(induction_positions(t))
            tgt = induction_targets(t)[1][pos]
            lg = tr.logits[pos].copy()
            lg[np.arange(len(pos)), tgt] = -np.inf
            self.sites.append((pos, tgt, np.argmax(lg, axis=1)))
        self.n_positions = int(sum(len(s[0]) for s in self.sites))
        self.avg_base = self._avg([tr.logits for tr in self.base])

    def _avg(self, logits: list[np.ndarray]) -> float:
        if not self.n_positions:
            return float("nan")
        tot = 0.0
        for lg, (pos, tgt, neg) in zip(logits, self.sites, strict=True):
            tot += float((lg[pos, tgt] - lg[pos, neg]).sum())
        return tot / self.n_positions

    def outputs(self, layer: int, b: int = 0) -> np.ndarray:
        """Head outputs (H, n, d) of ``layer`` in prompt b's unablated run."""
        tr = self.base[b]
        return head_outputs(self.w, layer, tr.z1[layer], tr.attn[layer])

    def ablated(self, repl: dict[tuple[int, int], np.ndarray | None]) -> tuple[float, float]:
        """(Δ at the last position of prompt 0, Δ averaged over the induction positions) with
        each head in ``repl`` replaced by the given d-vector (None: zero)."""
        logits = []
        for t, tr in zip(self.toks, self.base, strict=True):
            n, d = tr.final.shape
            ab = {hd: np.zeros((n, d)) if v is None else np.broadcast_to(v, (n, d))
                  for hd, v in repl.items()}
            logits.append(run_forward(self.w, t, ablate=ab).logits)
        last = logits[0][-1]
        return float(last[self.target] - last[self.neg]), self._avg(logits)


def choose_controls(norms: dict[int, np.ndarray], heads: list[tuple[int, int]]
                    ) -> list[tuple[int, int] | None]:
    """Per pair head, the same-layer head outside ``heads`` with the closest output norm."""
    out = []
    for layer, h in heads:
        cands = [j for j in range(len(norms[layer])) if (layer, j) not in heads]
        if not cands:
            out.append(None)
            continue
        out.append((layer, min(cands, key=lambda j: (abs(norms[layer][j] - norms[layer][h]), j))))
    return out


def runtime_checks(delta_base: float, heads: list[tuple[int, int]],
                   controls: list[tuple[int, int] | None], norms: dict[int, np.ndarray]
                   ) -> tuple[bool, bool, bool, str]:
    """The original's three checks: (competence, independence, energy, "yes" / "no (...)")."""
    fails = []
    competence = delta_base > COMPETENCE_EPS
    if not competence:
        fails.append(f"Axiom1(baseline competence) failed: Δ_base={delta_base:.6f} ≤ "
                     f"ε={COMPETENCE_EPS:.6f}")
    missing = [f"No control head found in layer {lay} for L{lay}H{h}"
               for (lay, h), c in zip(heads, controls, strict=True) if c is None]
    independent = not missing and not any(c in heads for c in controls)
    fails += missing
    if not missing and not independent:
        fails.append("Axiom2(control independence) failed: control overlaps candidate.")
    energy = not missing and all(
        abs(norms[c[0]][c[1]] - norms[lay][h]) < max(ENERGY_ABS_TOL, ENERGY_REL_TOL * norms[lay][h])
        for (lay, h), c in zip(heads, controls, strict=True))
    if not energy:
        fails.append("Axiom3(energy equivalence) failed: no sufficiently matched control.")
    return competence, independent, energy, "yes" if not fails else f"no ({'; '.join(fails)})"


def _rel(impact: float, base: float) -> float:
    return impact / base if base > 0 else 0.0


def verify_pairs(
    w: GPT2Weights, batch: np.ndarray | None, pairs: list[tuple[int, int, int, int]], target: int
) -> list[dict]:
    """One row per pair (in the given order): base/ablated margins, control, checks.

    ``batch``: the prompts (B, n), row 0 the analysed prompt; None for a baked prompt without
    TOKENS (one prompt, no induction positions). ``target``: the analysed prompt's target token.
    """
    P = _Prompts(w, batch, target)
    layers = sorted({p[0] for p in pairs} | {p[2] for p in pairs})
    outs = {lay: P.outputs(lay) for lay in layers}
    norms = {lay: np.linalg.norm(outs[lay], axis=(1, 2)) for lay in layers}
    # mean-ablation value: each head's output averaged over every position of every prompt
    means = {lay: np.mean([P.outputs(lay, b).mean(axis=1) for b in range(len(P.toks))], axis=0)
             for lay in layers}
    base, avg_base = P.delta_base, P.avg_base
    rows = []
    for rank, (l1, h1, l2, h2) in enumerate(pairs, 1):
        heads = [(l1, h1), (l2, h2)]
        d_zero, a_zero = P.ablated({hd: None for hd in heads})
        d_mean, a_mean = P.ablated({hd: means[hd[0]][hd[1]] for hd in heads})
        controls = choose_controls(norms, heads)
        if all(c is not None for c in controls):
            d_ctrl, a_ctrl = P.ablated({c: None for c in controls})
            ctrl = " ".join(f"L{c[0]}H{c[1]}" for c in controls)
        else:
            d_ctrl, a_ctrl, ctrl = float("nan"), float("nan"), "none"
        comp, indep, energy, checks = runtime_checks(base, heads, controls, norms)
        rows.append({
            "rank": rank, "l1": l1, "h1": h1, "l2": l2, "h2": h2, "target": target,
            "neg": P.neg, "delta_base": base,
            "delta_zero": d_zero, "impact_zero": base - d_zero,
            "rel_zero": _rel(base - d_zero, base),
            "delta_mean": d_mean, "impact_mean": base - d_mean,
            "rel_mean": _rel(base - d_mean, base),
            "control": ctrl, "delta_control": d_ctrl, "impact_control": base - d_ctrl,
            "rel_control": _rel(base - d_ctrl, base), "n_positions": P.n_positions,
            "avg_delta_base": avg_base, "avg_impact_zero": avg_base - a_zero,
            "avg_impact_mean": avg_base - a_mean, "avg_impact_control": avg_base - a_ctrl,
            "competence": comp, "control_independent": indep, "energy_match": energy,
            "checks": checks,
        })
    return rows


def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def to_tsv(rows: list[dict]) -> str:
    """verify.tsv: one row per pair, every column, full precision; the three checks as 1/0,
    ``control`` and ``checks`` as text."""
    out = ["\t".join(COLUMNS)]
    for r in rows:
        out.append("\t".join(_cell(r[c]) for c in COLUMNS))
    return "\n".join(out) + "\n"
