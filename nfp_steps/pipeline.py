"""Run the DAG's stage functions in memory (the CLI's path; Snakemake runs them one per job).

The stage functions live in :mod:`nfp_steps.stages` (one module per stage).
"""

from __future__ import annotations

from nfp_steps.run_stage import stage_function
from nfp_steps.stage_specs import STAGES, StageResult


def run_in_memory(cfg: dict, model: str, until: str = "ranking",
                  done: dict[str, StageResult] | None = None) -> dict[str, StageResult]:
    """Run the stages up to ``until`` (inclusive, with their upstream) without touching disk.

    ``done``: results already computed with the same config (reused, not recomputed).
    """
    needed: set[str] = set()

    def need(name: str) -> None:
        if name not in needed:
            needed.add(name)
            for up in STAGES[name].inputs:
                need(up)

    need(until)
    out: dict[str, StageResult] = dict(done or {})
    for name, spec in STAGES.items():
        if name in needed and name not in out:
            out[name] = stage_function(spec)({k: out[k].dataset for k in spec.inputs}, cfg, model)
    return out
