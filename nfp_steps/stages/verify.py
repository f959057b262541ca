"""Stage "verify": ablation evidence (zero/mean ablation, same-layer control, the original's
runtime checks) for the top pairs, at the last position and averaged over the prompt batch."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, batch_tokens, table_rows, weights


def verify_rows(inputs: Inputs, top: int) -> list[dict]:
    """The verify table of the ranking's first ``top`` pairs ([] when the target is only the
    fallback logit_diff(0-1) of a model without TOKENS: no target token can be inferred)."""
    from nfp_steps.verify import verify_pairs

    if inputs["scores"].attrs.get("target_source") == "fallback":
        return []
    rows = table_rows(inputs["ranking"])[:top]
    pairs = [(r["l1"], r["h1"], r["l2"], r["h2"]) for r in rows]
    # the same target as the scores and ranking (induction.correct, or the prompt's induction
    # history); Δ compares it with the best other token, as the original's verification does
    target = int(inputs["scores"].attrs["target_correct"])
    return verify_pairs(weights(inputs), batch_tokens(inputs), pairs, target) if pairs else []


def rows_dataset(vrows: list[dict]) -> xr.Dataset:
    """The verify rows as a Dataset over ``pair`` (strings, booleans, ints, floats)."""
    from nfp_steps.verify import BOOL_COLUMNS, COLUMNS, STR_COLUMNS

    data = {}
    for c in COLUMNS:
        vals = [r[c] for r in vrows]
        if c in STR_COLUMNS:
            dtype = str
        elif c in BOOL_COLUMNS:
            dtype = bool
        elif c in ("rank", "l1", "h1", "l2", "h2", "target", "neg", "n_positions"):
            dtype = np.int64
        else:
            dtype = float
        data[c] = ("pair", np.array(vals, dtype=dtype))
    return xr.Dataset(data)


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.verify import to_tsv

    vrows = verify_rows(inputs, cfg["verify"]["top"])
    ds = rows_dataset(vrows)
    ds.attrs["n_prompts"] = int(inputs["scores"].attrs.get("n_prompts", 1))
    if inputs["scores"].attrs.get("target_source") == "fallback":
        ds.attrs["note"] = ("no target token: the model has no TOKENS and induction.correct is "
                            "unset, so nothing was ablated")
    return StageResult(ds, {"verify.tsv": to_tsv(vrows)})
