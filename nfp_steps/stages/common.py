"""What every stage module shares: the input mapping type and readers of upstream stores."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.model import GPT2Weights

Inputs = dict[str, xr.Dataset]


def weights(inputs: Inputs) -> GPT2Weights:
    """The model weights from the export store."""
    from nfp_steps.io.zarr_store import dataset_to_weights

    return dataset_to_weights(inputs["export"])


def tokens(inputs: Inputs) -> np.ndarray | None:
    """The prompt tokens, or None for a baked-embeddings prompt without TOKENS."""
    ds = inputs["prompt"]
    return ds["tokens"].values.astype(np.int64) if bool(ds.attrs["has_tokens"]) else None


def batch_tokens(inputs: Inputs) -> np.ndarray | None:
    """The scoring batch (B, n) (row 0 = the analysed prompt) that the scores stage drew, or
    None without TOKENS."""
    if not bool(inputs["prompt"].attrs["has_tokens"]):
        return None
    sc = inputs.get("scores")
    if sc is not None and "batch_tokens" in sc:
        return sc["batch_tokens"].values.astype(np.int64)
    return inputs["prompt"]["tokens"].values.astype(np.int64)[None, :]


def table_rows(ds: xr.Dataset) -> list[dict]:
    """One dict per pair, Python scalars (strings come back from Zarr as ``str`` already)."""
    cols = {c: ds[c].values for c in ds.data_vars}
    return [{c: (v[i].item() if isinstance(v[i], np.generic) else v[i]) for c, v in cols.items()}
            for i in range(ds.sizes.get("pair", 0))]

