"""Stage "verify": ablation evidence (zero/mean ablation, same-layer control) for the top pairs."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, table_rows, tokens, weights


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.verify import COLUMNS, to_tsv, verify_pairs

    w = weights(inputs)
    rows = table_rows(inputs["ranking"])[: cfg["verify"]["top"]]
    pairs = [(r["l1"], r["h1"], r["l2"], r["h2"]) for r in rows]
    toks = tokens(inputs)
    # the same target as the scores and ranking (induction.correct, or the prompt's induction
    # history); Δ compares it with the best other token, as the original's verification does
    target = int(inputs["scores"].attrs["target_correct"])
    vrows = verify_pairs(w, toks, pairs, target) if pairs else []
    data = {}
    for c in COLUMNS:
        vals = [r[c] for r in vrows]
        data[c] = ("pair", np.array(vals, dtype=str if c == "control" else
                                    (np.int64 if isinstance(vals[0] if vals else 0, int)
                                     else float)))
    return StageResult(xr.Dataset(data), {"verify.tsv": to_tsv(vrows)})
