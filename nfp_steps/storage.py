"""Stage stores on disk: ``{stage}.zarr`` (xarray, Zarr v3) plus a hashed manifest beside it.

The manifest ``{stage}.manifest.json`` is written last and is what Snakemake declares as the
stage's output, so a store is only ever trusted when its manifest exists and every array still
hashes to the manifest's sha256. (It is not ``{stage}.json`` because the certificate stage's
user-facing output is ``certificate.json``.) Writes go to a temporary path in the same folder
and are renamed into place: an interrupted job leaves no manifest, hence nothing that looks valid.

numpy/xarray are imported inside the functions so the Snakefile can import the path helpers
without paying for them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MANIFEST_FORMAT = "nfp-stage-manifest/1"
MANIFEST_SUFFIX = ".manifest.json"
# Manifest keys that write_stage fills itself; a caller's meta cannot override them.
_RESERVED = frozenset({"format", "stage", "store", "arrays", "attrs_sha256", "files"})


class StorageError(RuntimeError):
    """A stage store is missing, incomplete or edited, or cannot be written exactly."""


# ---- names ----------------------------------------------------------------------------------
def manifest_name(stage: str) -> str:
    """File name of a stage's manifest (the Snakemake output of the stage's rule)."""
    return f"{stage}{MANIFEST_SUFFIX}"


def store_name(stage: str) -> str:
    """Folder name of a stage's Zarr store."""
    return f"{stage}.zarr"


# ---- hashing --------------------------------------------------------------------------------
def _dtype_label(arr: Any) -> str:
    kind = arr.dtype.kind
    if kind in "UOT":
        return "str"
    if kind in "biufc":
        return arr.dtype.newbyteorder("=").name if kind != "b" else "bool"
    raise StorageError(
        f"unsupported dtype {arr.dtype} (use bool, int, uint, float, complex or str)"
    )


def array_sha256(arr: Any) -> str:
    """sha256 of an array's values: C order, little-endian; NaNs canonical; strings as UTF-8.

    Strings hash as a length-prefixed UTF-8 sequence, so fixed-width, object and numpy
    ``StringDType`` arrays of the same strings hash alike (Zarr returns the latter).
    """
    import numpy as np

    a = np.asarray(arr)
    h = hashlib.sha256()
    if a.dtype.kind in "UOT":
        for item in a.ravel(order="C"):
            if not isinstance(item, str):
                raise StorageError(f"string array holds a non-string element {item!r}")
            data = item.encode("utf-8")
            h.update(struct.pack("<Q", len(data)))
            h.update(data)
        return h.hexdigest()
    _dtype_label(a)
    if a.dtype.kind in "fc" and np.isnan(a).any():
        a = np.where(np.isnan(a), np.array(np.nan, dtype=a.dtype), a)  # one NaN bit pattern
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    """Attrs as they come back from Zarr's JSON: numpy scalars/arrays to Python, tuples to lists."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _attrs_sha256(attrs: Mapping) -> str:
    from nfp_steps.config import digest

    try:
        return digest(_jsonable(dict(attrs)))
    except TypeError as exc:
        raise StorageError(f"attrs are not JSON-like: {exc}") from None


def describe(ds: Any, hashes: bool = True) -> dict:
    """Per-variable (data and coords) dims, shape, dtype, sha256 and attrs digest of a Dataset.

    Without ``hashes`` the two digests are ``None`` (a cheap structural description).
    """
    arrays = {}
    for name in sorted(ds.variables, key=str):
        var = ds.variables[name]
        values = var.values
        try:
            label = _dtype_label(values)
            sha = array_sha256(values) if hashes else None
        except StorageError as exc:
            raise StorageError(f"array {name!r}: {exc}") from None
        arrays[str(name)] = {
            "dims": [str(d) for d in var.dims],
            "shape": [int(n) for n in values.shape],
            "dtype": label,
            "coord": name in ds.coords,
            "sha256": sha,
            "attrs_sha256": _attrs_sha256(var.attrs) if hashes else None,
        }
    return arrays


# ---- writing --------------------------------------------------------------------------------
def _prepared(ds: Any) -> Any:
    """A shallow copy fit for an exact write: no inherited encoding, strings variable-length.

    Fixed-width UTF-32 has no stable Zarr v3 spec, and an empty object array comes back as
    float64; numpy's ``StringDType`` round-trips both, so every string array is converted to it.
    """
    from numpy.dtypes import StringDType

    out = ds.copy(deep=False)
    for name, var in list(out.variables.items()):
        var.encoding = {}
        kind = var.dtype.kind
        if kind == "O" and not all(isinstance(v, str) for v in var.values.ravel()):
            raise StorageError(f"array {name!r}: object array with non-string elements")
        if kind in "UO":
            out[name] = var.astype(StringDType())
            out.variables[name].encoding = {}
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _open(path: Path) -> Any:
    import xarray as xr

    # The bytes on disk are the values: no CF masking/scaling, no time decoding (only the
    # "coordinates" attribute is decoded, to restore non-index coordinates).
    return xr.open_dataset(
        path, engine="zarr", consolidated=False, chunks=None, mask_and_scale=False,
        decode_times=False, decode_timedelta=False, decode_coords=True,
    ).load()


def _check_file_names(stage: str, files: Mapping[str, str]) -> None:
    for name in files:
        # a plain name, or one sub-folder level (``plots/heads.svg``); no hidden parts
        parts = name.split("/")
        if (not name or "\\" in name or len(parts) > 2
                or any(not part or part.startswith(".") for part in parts)):
            raise StorageError(f"stage {stage!r}: bad report file name {name!r}")
        if name in (manifest_name(stage), store_name(stage)):
            raise StorageError(f"stage {stage!r}: report file {name!r} collides with the store")


def write_stage(results_dir: str | os.PathLike, stage: str, result: Any, meta: Mapping) -> dict:
    """Write a stage's store, its report files and (last) its manifest; return the manifest.

    ``result`` is a :class:`nfp_steps.stage_specs.StageResult`; ``meta`` holds provenance to
    record (model, code and config digests, timing, ...). Any old manifest is removed first, the
    store is written to a temporary folder, re-read and checked bit for bit, then renamed over
    the old store. Raises :class:`StorageError` if the data do not round-trip exactly.
    """
    import xarray as xr

    from nfp_steps import __version__

    t0 = time.perf_counter()
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / manifest_name(stage)
    manifest_path.unlink(missing_ok=True)  # from here on the old store is no longer "valid"

    ds = result.dataset
    if not isinstance(ds, xr.Dataset):
        raise StorageError(f"stage {stage!r} returned {type(ds).__name__}, not an xarray Dataset")
    files = dict(result.files)
    _check_file_names(stage, files)
    ds = _prepared(ds)
    arrays = describe(ds)
    attrs_sha = _attrs_sha256(ds.attrs)

    final = folder / store_name(stage)
    for stale in folder.glob(f".{store_name(stage)}.*"):
        _remove(stale)  # leftovers of an interrupted earlier write of this stage
    tmp = folder / f".{store_name(stage)}.tmp-{os.getpid()}"
    old = folder / f".{store_name(stage)}.old-{os.getpid()}"
    try:
        encoding = {name: {"_FillValue": None} for name in ds.variables}
        ds.to_zarr(
            tmp, mode="w", zarr_format=3, consolidated=False, write_empty_chunks=True,
            encoding=encoding,
        )
        back = _open(tmp)
        _compare(stage, describe(back), arrays, _attrs_sha256(back.attrs), attrs_sha,
                 what="does not round-trip exactly through Zarr")
        if final.exists() or final.is_symlink():
            os.replace(final, old)
        os.replace(tmp, final)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                _remove(leftover)

    file_info = {}
    for name in sorted(files):
        data = files[name].encode("utf-8")
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(folder / name, data)
        file_info[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    manifest = {
        "format": MANIFEST_FORMAT,
        "stage": stage,
        "store": store_name(stage),
        "nfp_version": __version__,
        "versions": _versions(),
        **{k: v for k, v in meta.items() if k not in _RESERVED},
        "arrays": arrays,
        "attrs_sha256": attrs_sha,
        "files": file_info,
    }
    timing = dict(manifest.get("timing", {}))
    timing["write_s"] = round(time.perf_counter() - t0, 6)
    manifest["timing"] = timing
    text = json.dumps(_jsonable(manifest), indent=2, sort_keys=False, allow_nan=False) + "\n"
    _atomic_write_bytes(manifest_path, text.encode("utf-8"))
    return manifest


def _versions() -> dict:
    import platform

    import numpy as np
    import xarray as xr
    import zarr

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "xarray": xr.__version__,
        "zarr": zarr.__version__,
    }


# ---- reading --------------------------------------------------------------------------------
def read_manifest(results_dir: str | os.PathLike, stage: str) -> dict:
    """A stage's manifest; :class:`StorageError` if it is missing or unreadable."""
    path = Path(results_dir) / manifest_name(stage)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StorageError(
            f"stage {stage!r}: no manifest {path}: the store is edited or incomplete; "
            "rerun the stage"
        ) from None
    except (OSError, ValueError) as exc:
        raise StorageError(
            f"stage {stage!r}: unreadable manifest {path} ({exc}): edited or incomplete; "
            "rerun the stage"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise StorageError(
            f"stage {stage!r}: {path} is not an NFP stage manifest ({MANIFEST_FORMAT}): edited or "
            "incomplete; rerun the stage"
        )
    return manifest


def _compare(
    stage: str, found: dict, expected: dict, found_attrs: str, expected_attrs: str, *,
    what: str, hashes: bool = True,
) -> None:
    def fail(name: str, detail: str) -> None:
        raise StorageError(f"stage {stage!r}: array {name!r} {detail}: {what}")

    for name in sorted(set(expected) | set(found)):
        if name not in found:
            fail(name, "is missing from the store")
        if name not in expected:
            fail(name, "is in the store but not in the manifest")
        f, e = found[name], expected[name]
        for key in ("dims", "shape", "dtype"):
            if f[key] != e.get(key):
                fail(name, f"has {key} {f[key]}, manifest says {e.get(key)}")
        if hashes and (f["sha256"], f["attrs_sha256"]) != (e.get("sha256"), e.get("attrs_sha256")):
            fail(name, "does not match its sha256 in the manifest")
    if hashes and found_attrs != expected_attrs:
        raise StorageError(f"stage {stage!r}: the store's attrs do not match the manifest: {what}")


def read_stage(results_dir: str | os.PathLike, stage: str, verify: bool = True) -> Any:
    """Load a stage's store into memory, checked against its manifest.

    With ``verify`` (the default) every array is re-hashed; without it only names, dims, shapes
    and dtypes are checked. Raises :class:`StorageError` naming the stage and the array.
    """
    folder = Path(results_dir)
    manifest = read_manifest(folder, stage)
    path = folder / manifest.get("store", store_name(stage))
    if not path.is_dir():
        raise StorageError(
            f"stage {stage!r}: store {path} is missing: edited or incomplete; rerun the stage"
        )
    try:
        ds = _open(path)
    except Exception as exc:  # zarr/xarray raise many types for a damaged store
        raise StorageError(
            f"stage {stage!r}: cannot read store {path} ({type(exc).__name__}: {exc}): "
            "edited or incomplete; rerun the stage"
        ) from None
    try:
        found = describe(ds, hashes=verify)
    except StorageError as exc:
        raise StorageError(
            f"stage {stage!r}: {exc}: edited or incomplete; rerun the stage"
        ) from None
    attrs_sha = _attrs_sha256(ds.attrs) if verify else ""
    _compare(stage, found, manifest.get("arrays", {}), attrs_sha,
             manifest.get("attrs_sha256", ""), what="edited or incomplete; rerun the stage",
             hashes=verify)
    return ds
