"""Adaptive scheduler: tighten the per-layer upper bounds where the ub/lb slack is worst.

Each layer's C_l = a + m + a·m is built from factors, each with tiers of increasingly tight (and
costly) rigorous upper bounds: a = ln1 · heads, m = ln2 · w_in · gelu · w_out. Every tier of every
factor is a valid bound, so any choice of tiers gives a valid C_l; the scheduler only chooses.

Algorithm (deterministic): all factors start at tier 0. While upgrades remain, take the layer
with the largest slack ub/lb (ties: larger ub, then lower index) among layers that are not
stalled and have a factor in scope with a higher tier; stop if its slack ≤ target_slack. Its
candidate upgrade is the in-scope factor whose next tier lowers C_l the most (ties: factor
order). If the relative improvement is below min_rel_improve the layer is marked stalled (the
attempt counts against the budget, as in the original); otherwise the tier is raised and ub
becomes min(old, new) — an ub never rises. Scope "layernorm" allows only the LayerNorm factors
(ln1, ln2); "all" allows every factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from nfp_steps import rigor as R

FACTORS = ("ln1", "heads", "ln2", "w_in", "gelu", "w_out")
SCOPES = {"layernorm": ("ln1", "ln2"), "all": FACTORS}


def layer_parts(v: dict[str, float]) -> tuple[float, float, float]:
    """(a, m, C): a = ln1·heads, m = ln2·w_in·gelu·w_out, C = a + m + a·m, all rounded up."""
    from nfp_steps.bounds import layer_constant

    a = float(R.mul_up(v["ln1"], v["heads"]))
    m = float(R.mul_up(R.mul_up(v["ln2"], v["w_in"]), R.mul_up(v["gelu"], v["w_out"])))
    return a, m, layer_constant(a, m)


def layer_ub(v: dict[str, float]) -> float:
    """C_l for the factor values ``v`` (see :func:`layer_parts`)."""
    return layer_parts(v)[2]


def slack(ub: float, lb: float) -> float:
    return ub / lb if lb > 0 and math.isfinite(lb) and math.isfinite(ub) else math.inf


@dataclass
class Step:
    it: int
    layer: int
    factor: str
    tier_from: int
    tier_to: int
    ub_before: float
    ub_after: float
    lb: float
    applied: bool

    def line(self, fmt=lambda v: f"{v:.6f}") -> str:
        s0, s1 = slack(self.ub_before, self.lb), slack(self.ub_after, self.lb)
        what = "" if self.applied else "  (stalled: improvement below minRelImprove)"
        return (f"  it={self.it}  L{self.layer}: {self.factor} tier {self.tier_from}->"
                f"{self.tier_to}  ub {fmt(self.ub_before)}->{fmt(self.ub_after)}  "
                f"lb≈{fmt(self.lb)}  slack {fmt(s0)}->{fmt(s1)}{what}")


@dataclass
class Result:
    ub: list[float]
    lb: list[float]
    tiers: list[dict[str, int]]
    steps: list[Step] = field(default_factory=list)
    stop: str = ""  # "target", "budget" or "stalled"


def run(
    tiers: list[dict[str, list[float]]],
    lb: list[float],
    *,
    target_slack: float = 8.0,
    max_upgrades: int = 200,
    min_rel_improve: float = 0.01,
    scope: str = "layernorm",
) -> Result:
    """``tiers[l][factor]``: that factor's ub at tiers 0, 1, … (each valid); ``lb[l]``: certified
    lower bounds. Returns the chosen tiers, the ub per layer, the step log and the stop reason."""
    if scope not in SCOPES:
        raise ValueError(f"adaptiveScope must be one of {', '.join(SCOPES)}, got {scope!r}")
    allowed = SCOPES[scope]
    L = len(tiers)
    cur = [{f: 0 for f in FACTORS} for _ in range(L)]

    def values(layer: int, t: dict[str, int]) -> dict[str, float]:
        return {f: tiers[layer][f][t[f]] for f in FACTORS}

    ub = [layer_ub(values(i, cur[i])) for i in range(L)]
    stalled = [False] * L
    res = Result(ub, list(lb), cur)
    used = 0
    while True:
        if used >= max_upgrades:
            res.stop = "budget"
            break
        cands = [i for i in range(L) if not stalled[i]
                 and any(cur[i][f] + 1 < len(tiers[i][f]) for f in allowed)]
        if not cands:
            res.stop = "stalled"
            break
        worst = max(cands, key=lambda i: (slack(ub[i], lb[i]), ub[i], -i))
        if slack(ub[worst], lb[worst]) <= target_slack:
            res.stop = "target"
            break
        best = None
        for f in allowed:
            if cur[worst][f] + 1 < len(tiers[worst][f]):
                t = dict(cur[worst], **{f: cur[worst][f] + 1})
                new = layer_ub(values(worst, t))
                if best is None or new < best[1]:
                    best = (f, new)
        f, new = best
        old = ub[worst]
        rel = (old - new) / old if old > 0 and math.isfinite(old) else (1.0 if new < old else 0.0)
        used += 1
        step = Step(used, worst, f, cur[worst][f], cur[worst][f] + 1, old, min(old, new),
                    lb[worst], rel >= min_rel_improve)
        if step.applied:
            cur[worst][f] += 1
            ub[worst] = min(old, new)
        else:
            stalled[worst] = True
            step.ub_after = old
        res.steps.append(step)
    return res
