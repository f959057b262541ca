"""Stage "plots": the figures of ``snakemake --report`` (SVG) in ``results/<model>/plots/``."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, tokens


def top_pair(ranking: xr.Dataset) -> tuple[int, int, int, int] | None:
    """(l1, h1, l2, h2) of the best-ranked pair, or None when no pair passed the filters."""
    if ranking.sizes.get("pair", 0) == 0:
        return None
    best = int(np.argmin(ranking["rank"].values))
    l1, h1, l2, h2 = (int(ranking[k].values[best]) for k in ("l1", "h1", "l2", "h2"))
    return l1, h1, l2, h2


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import plots as P

    layers, heads, scores = inputs["layers"], inputs["heads"], inputs["scores"]
    pair = top_pair(inputs["ranking"])
    attn = inputs["forward"]["attn"]
    a1 = a2 = None
    if pair is not None:
        l1, h1, l2, h2 = pair
        a1 = attn.values[l1, h1]
        a2 = attn.values[l2, h2]
    figures = {
        "plots/layer_bounds.svg": P.layer_bounds(layers["C_ub"].values, layers["C_lb"].values,
                                                 model),
        "plots/head_eps.svg": P.head_eps(heads["eps_ub"].values, model),
        "plots/prev_tok.svg": P.prev_tok(scores["prevTok"].values, model),
        "plots/ind_score.svg": P.ind_score(scores["indScore"].values, model),
        "plots/top_pair_attention.svg": P.top_pair_attention(a1, a2, pair, tokens(inputs),
                                                             model),
    }
    files = {name: P.to_svg(fig) for name, fig in figures.items()}
    ds = xr.Dataset({"top_pair": ("item", np.array(pair if pair else [-1, -1, -1, -1],
                                                    dtype=np.int64))})
    ds.attrs["plots"] = sorted(files)
    return StageResult(ds, files)
