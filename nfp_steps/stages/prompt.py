"""Stage "prompt": the analysed tokens and which positions are induction positions."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, weights


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.data import induction_positions
    from nfp_steps.prompt import make_prompt

    w = weights(inputs)
    toks = make_prompt(cfg, w)
    if toks is None:
        n = w.embeddings.shape[0]
        ds = xr.Dataset({"tokens": ("pos", np.full(n, -1, dtype=np.int64)),
                         "induction_position": ("pos", np.zeros(n, dtype=bool))})
        ds.attrs.update(has_tokens=False, kind="baked-embeddings")
    else:
        ds = xr.Dataset({"tokens": ("pos", toks),
                         "induction_position": ("pos", induction_positions(toks))})
        kind = "baked-tokens" if w.embeddings is not None else cfg["prompt"]["kind"]
        ds.attrs.update(has_tokens=True, kind=kind)
    return StageResult(ds, {})
