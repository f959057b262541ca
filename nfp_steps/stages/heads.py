"""Stage "heads": rigorous per-head bounds (value and pattern terms, ε) at the prompt."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, weights

HEAD_TSV = ("eps_ub", "value_lb", "value_ub", "pattern_ub", "attn_norm_lb", "attn_norm_ub",
            "qk_lb", "qk_ub", "vo_lb", "vo_ub", "z_norm_ub")


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import bounds as B

    w = weights(inputs)
    z1 = inputs["forward"]["z1"].values
    res: dict[str, np.ndarray] = {}
    for layer in range(w.n_layers):
        for h in range(w.n_heads):
            hb = B.head_bounds(
                z1[layer], w.W_Q[layer, h], w.b_Q[layer, h], w.W_K[layer, h], w.b_K[layer, h],
                w.W_V[layer, h], w.W_O[layer, h], softmax=cfg["bounds"]["heads"]["softmax"],
            )
            for k, v in hb.items():
                res.setdefault(k, np.zeros((w.n_layers, w.n_heads)))[layer, h] = v
    ds = xr.Dataset({k: (("layer", "head"), v) for k, v in res.items()})
    lines = ["layer\thead\t" + "\t".join(HEAD_TSV)]
    for layer in range(w.n_layers):
        for h in range(w.n_heads):
            lines.append(f"{layer}\t{h}\t" + "\t".join(repr(float(res[k][layer, h]))
                                                       for k in HEAD_TSV))
    return StageResult(ds, {"heads.tsv": "\n".join(lines) + "\n"})
