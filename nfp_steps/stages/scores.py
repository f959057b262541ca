"""Stage "scores": heuristic induction scores (prevTok, indScore, kComp, δ, Effect)."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, tokens, weights


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import scores as S

    w = weights(inputs)
    fw = inputs["forward"]
    attn, z1, x = fw["attn"].values, fw["z1"].values, fw["x"].values
    toks = tokens(inputs)
    ind = cfg["induction"]
    target, warnings = S.resolve_target(toks, w.vocab_size, ind["correct"], ind["incorrect"])
    u = w.W_U[:, target.correct] - w.W_U[:, target.incorrect]
    delta, effect = S.direct_effects(w, z1, attn, u)
    raw, kc = S.kcomp_scores(w)
    ind_score = (S.induction_scores(attn, toks) if toks is not None
                 else np.ones((w.n_layers, w.n_heads)))
    ds = xr.Dataset({
        "prevTok": (("layer", "head"), S.prev_token_scores(attn)),
        "indScore": (("layer", "head"), ind_score),
        "kCompRaw": (("layer1", "head1", "layer2", "head2"), raw),
        "kComp": (("layer1", "head1", "layer2", "head2"), kc),
        "delta": (("layer", "head"), delta),
        "effect": (("layer", "head"), effect),
        "x_frob": ("layer", np.linalg.norm(x[:-1], axis=(1, 2))),
        "z_frob": ("layer", np.linalg.norm(z1, axis=(1, 2))),
        "u": ("d_model", u),
    })
    ds.attrs.update(target_correct=target.correct, target_incorrect=target.incorrect,
                    target_description=target.description, warnings=json.dumps(warnings))
    return StageResult(ds, {})
