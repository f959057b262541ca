"""Stage "forward": the exact float64 forward pass at the prompt (every intermediate kept)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, tokens, weights


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.forward import run_forward

    w = weights(inputs)
    t = run_forward(w, tokens(inputs))
    logits = t.logits[-1:] if cfg["forward"]["logits"] == "last" else t.logits
    n = t.x.shape[1]
    ds = xr.Dataset({
        "x": (("layer_io", "pos", "d_model"), t.x),
        "z1": (("layer", "pos", "d_model"), t.z1),
        "y": (("layer", "pos", "d_model"), t.y),
        "z2": (("layer", "pos", "d_model"), t.z2),
        "pre": (("layer", "pos", "d_mlp"), t.pre),
        "attn": (("layer", "head", "query", "key"), t.attn),
        "final": (("pos", "d_model"), t.final),
        "logits": (("logit_pos", "vocab"), logits),
        "logit_positions": ("logit_pos", np.arange(n - len(logits), n)),
    })
    return StageResult(ds, {})
