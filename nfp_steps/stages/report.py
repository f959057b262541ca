"""Stage "report": the one-page summary."""

from __future__ import annotations

import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, table_rows


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.report import summary_text

    rows = table_rows(inputs["ranking"])
    vrows = table_rows(inputs["verify"])
    c = inputs["layers"]["C_ub"].values
    total = float(inputs["certificate"]["total_ub"].values)
    text = summary_text(model, rows, c, vrows, total, top=cfg["report"]["top"])
    ds = xr.Dataset({"n_pairs": ((), len(rows))})
    return StageResult(ds, {"summary.txt": text})
