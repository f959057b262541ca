"""Stage "ranking": candidate head pairs ranked; ranking.tsv and the original's induction.txt."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs


def score_arrays(inputs: Inputs) -> dict[str, np.ndarray]:
    """The scores store's arrays that rows are built from (means, spreads, kComp, norms)."""
    sc = inputs["scores"]
    return {k: sc[k].values for k in sc.data_vars if not k.endswith("_batch")}


def ranking_rows(inputs: Inputs, cfg: dict) -> list[dict]:
    """Every candidate pair, best first (:func:`nfp_steps.ranking.rank_pairs`)."""
    from nfp_steps.ranking import rank_pairs

    rk = cfg["ranking"]
    return rank_pairs(
        score_arrays(inputs), inputs["heads"]["eps_ub"].values,
        min_prev_tok=rk["min_prev_tok"], min_ind_score=rk["min_ind_score"],
        threshold=rk["threshold"],
    )


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.ranking import COLUMNS, induction_report, to_tsv

    rows = ranking_rows(inputs, cfg)
    sc = inputs["scores"]
    ds = xr.Dataset({
        c: ("pair", np.array([r[c] for r in rows],
                             dtype=np.int64 if c in ("rank", "l1", "h1", "l2", "h2") else float))
        for c in COLUMNS
    })
    text = induction_report(rows, sc.attrs["target_description"], cfg["ranking"]["threshold"],
                            cfg["ranking"]["top"], verbose=True,
                            warnings=json.loads(sc.attrs["warnings"]),
                            n_prompts=int(sc.attrs.get("n_prompts", 1)))
    return StageResult(ds, {"ranking.tsv": to_tsv(rows), "induction.txt": text})
