"""Stage "prompt": the analysed tokens, their induction positions, and the scoring batch."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, weights


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.data import induction_positions
    from nfp_steps.prompt import make_prompt_batch

    w = weights(inputs)
    batch = make_prompt_batch(cfg, w)
    toks = None if batch is None else batch[0]
    if toks is None:
        n = w.embeddings.shape[0]
        ds = xr.Dataset({"tokens": ("pos", np.full(n, -1, dtype=np.int64)),
                         "induction_position": ("pos", np.zeros(n, dtype=bool))})
        ds.attrs.update(has_tokens=False, kind="baked-embeddings")
    else:
        # tokens: the analysed prompt (row 0 of the scoring batch, the bound stages' prompt)
        ds = xr.Dataset({"tokens": ("pos", toks),
                         "induction_position": ("pos", induction_positions(toks)),
                         "batch_tokens": (("prompt", "pos"), batch)})
        kind = "baked-tokens" if w.embeddings is not None else cfg["prompt"]["kind"]
        ds.attrs.update(has_tokens=True, kind=kind)
    return StageResult(ds, {})
