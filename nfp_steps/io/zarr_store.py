"""The weights store of the DAG's export stage: :class:`GPT2Weights` <-> ``xarray.Dataset``/Zarr v3.

Variables keep the :class:`GPT2Weights` field names, with named dims ``layer, head, d_model,
d_head, d_mlp, vocab, pos`` (rows of wpe) and ``ctx`` (the baked prompt: embeddings, tokens).
Dataset attrs: ``dims`` (the header fields), ``eps``, ``gelu_kind``, ``source_sha256``,
``source_path``, ``source_format``, ``number_origin``, ``missing_sections``, and every other
JSON-like entry of ``GPT2Weights.attrs`` under its own name. Values are float64 (tokens int64),
so round trips are bit-exact.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import xarray as xr

from nfp_steps.model import GPT2Weights, ModelError

DIMS = {
    "W_Q": ("layer", "head", "d_model", "d_head"),
    "b_Q": ("layer", "head", "d_head"),
    "W_K": ("layer", "head", "d_model", "d_head"),
    "b_K": ("layer", "head", "d_head"),
    "W_V": ("layer", "head", "d_model", "d_head"),
    "b_V": ("layer", "head", "d_head"),
    "W_O": ("layer", "head", "d_head", "d_model"),
    "b_O": ("layer", "d_model"),
    "ln1_g": ("layer", "d_model"),
    "ln1_b": ("layer", "d_model"),
    "ln2_g": ("layer", "d_model"),
    "ln2_b": ("layer", "d_model"),
    "W_in": ("layer", "d_model", "d_mlp"),
    "b_in": ("layer", "d_mlp"),
    "W_out": ("layer", "d_mlp", "d_model"),
    "b_out": ("layer", "d_model"),
    "lnf_g": ("d_model",),
    "lnf_b": ("d_model",),
    "W_U": ("d_model", "vocab"),
    "wte": ("vocab", "d_model"),
    "wpe": ("pos", "d_model"),
    "embeddings": ("ctx", "d_model"),
    "tokens": ("ctx",),
}
OPTIONAL = ("wte", "wpe", "embeddings", "tokens")
_SCALARS = ("eps", "gelu_kind", "dims")


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def weights_to_dataset(w: GPT2Weights) -> xr.Dataset:
    """The weights as a Dataset with named dims and provenance attrs (no copies of the data)."""
    w.validate("model")
    data = {name: (dims, getattr(w, name)) for name, dims in DIMS.items()
            if getattr(w, name) is not None}
    ds = xr.Dataset(data)
    attrs = {k: _jsonable(v) for k, v in w.attrs.items() if k not in _SCALARS}
    attrs.update(dims=w.dims(), eps=float(w.eps), gelu_kind=w.gelu_kind,
                 missing_sections=list(attrs.get("missing_sections", [])))
    for key in ("source_sha256", "source_path", "source_format", "number_origin"):
        attrs.setdefault(key, None)
    try:
        json.dumps(attrs)
    except TypeError as exc:
        raise ModelError(f"model attrs are not JSON-like: {exc}") from None
    ds.attrs = attrs
    return ds


def dataset_to_weights(ds: xr.Dataset) -> GPT2Weights:
    """Inverse of :func:`weights_to_dataset` (validates; raises ModelError if incomplete)."""
    missing = [k for k in DIMS if k not in OPTIONAL and k not in ds.variables]
    if missing:
        raise ModelError(f"weights store: missing variable(s) {', '.join(missing)}")
    for name in ("eps", "gelu_kind"):
        if name not in ds.attrs:
            raise ModelError(f"weights store: missing attribute {name!r}")
    arrays = {}
    for name, dims in DIMS.items():
        if name not in ds.variables:
            arrays[name] = None
            continue
        var = ds[name]
        if tuple(var.dims) != dims:
            raise ModelError(f"weights store: {name} has dims {tuple(var.dims)}, expected {dims}")
        arrays[name] = np.array(var.values, dtype=np.int64 if name == "tokens" else None)
    attrs = {k: v for k, v in ds.attrs.items() if k not in _SCALARS}
    attrs["missing_sections"] = list(attrs.get("missing_sections", []))
    w = GPT2Weights(**arrays, eps=float(ds.attrs["eps"]), gelu_kind=str(ds.attrs["gelu_kind"]),
                    attrs=attrs)
    return w.validate("weights store")


def is_store(path: str | os.PathLike) -> bool:
    """A Zarr v3 store is a folder with ``zarr.json``."""
    return os.path.isfile(os.path.join(os.fspath(path), "zarr.json"))


def write_weights_zarr(w: GPT2Weights, path: str | os.PathLike) -> None:
    """Write the weights as a Zarr v3 store: temp folder next to ``path``, then rename.

    An existing ``path`` is replaced only if it is a Zarr store; anything else is refused.
    """
    from nfp_steps.io.hf import replace_dir

    dest = os.path.abspath(os.fspath(path))
    if os.path.exists(dest) and not is_store(dest):
        raise ModelError(f"{dest} exists and is not a Zarr store: refusing to overwrite it")
    ds = weights_to_dataset(w)
    tmp = f"{dest}.tmp-{os.getpid()}"
    try:
        ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_weights_zarr(path: str | os.PathLike) -> GPT2Weights:
    """Read a store written by :func:`write_weights_zarr` (or the export stage)."""
    p = os.fspath(path)
    if not is_store(p):
        raise ModelError(f"{p}: not a Zarr store (no zarr.json)")
    try:
        ds = xr.open_zarr(p, consolidated=False, chunks=None, zarr_format=3)
    except Exception as exc:  # zarr/xarray raise many types for a damaged store
        raise ModelError(f"{p}: cannot open as a Zarr v3 store: {exc}") from None
    with ds:
        return dataset_to_weights(ds.load())
