"""Stage stores: exact round trip, manifests, tamper detection and crash safety."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr
import zarr

from nfp_steps import storage
from nfp_steps.stage_specs import StageResult
from nfp_steps.storage import (
    StorageError,
    array_sha256,
    manifest_name,
    read_manifest,
    read_stage,
    write_stage,
)


def sample() -> xr.Dataset:
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {
            "w": (("layer", "d"), rng.standard_normal((3, 5))),
            "edge": ("k", np.array([-0.0, 0.0, np.inf, -np.inf, np.nan, 5e-324])),
            "zeros32": (("layer", "d"), np.zeros((3, 5), dtype=np.float32)),
            "count": ("layer", np.array([0, 7, 0], dtype=np.int64)),
            "flag": ("layer", np.array([True, False, False])),
            "label": ("layer", np.array(["a", "", "héllo"])),
            "objs": ("layer", np.array(["x", "yy", "z"], dtype=object)),
            "no_strings": ("empty", np.array([], dtype=str)),
            "scalar": ((), 2.5),
        },
        coords={"layer": [0, 1, 2], "name": ("layer", ["x", "y", "z"])},
        attrs={"eps": 1e-5, "shape": (3, 5), "n": np.int64(4), "units": "days since 2000-01-01"},
    )


def write(tmp_path, ds=None, files=None, stage="heads", meta=None):
    result = StageResult(sample() if ds is None else ds, files or {"heads.tsv": "a\tb\n1\t2\n"})
    return write_stage(tmp_path, stage, result, meta or {"model": "m", "code_digest": "c0de"})


def assert_bitwise_equal(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        x, y = a[name].values, b[name].values
        assert x.shape == y.shape, name
        if x.dtype.kind in "fcbiu":
            assert x.dtype == y.dtype, name
            assert x.tobytes() == y.tobytes(), name  # bit for bit: -0.0, subnormals, NaN
        else:
            assert [str(v) for v in x.ravel()] == [str(v) for v in y.ravel()], name


def test_round_trip_is_exact(tmp_path):
    ds = sample()
    manifest = write(tmp_path, ds)
    back = read_stage(tmp_path, "heads")
    assert_bitwise_equal(ds, back)
    assert back.attrs["eps"] == 1e-5
    assert back.attrs["units"] == "days since 2000-01-01"  # no CF decoding on the way back
    assert back["count"].dtype == np.int64  # ...so no time or fill-value decoding of ints
    assert (tmp_path / "heads.tsv").read_text() == "a\tb\n1\t2\n"
    on_disk = json.loads((tmp_path / manifest_name("heads")).read_text())
    assert on_disk == manifest
    assert on_disk["model"] == "m" and on_disk["code_digest"] == "c0de"
    arr = on_disk["arrays"]["w"]
    assert arr["dims"] == ["layer", "d"] and arr["shape"] == [3, 5] and arr["dtype"] == "float64"
    assert arr["sha256"] == array_sha256(ds["w"].values)
    assert on_disk["arrays"]["label"]["dtype"] == "str"
    assert on_disk["arrays"]["name"]["coord"] is True
    assert on_disk["files"]["heads.tsv"]["bytes"] == len("a\tb\n1\t2\n")
    assert "write_s" in on_disk["timing"] and on_disk["nfp_version"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "heads.manifest.json", "heads.tsv", "heads.zarr"]


def test_array_sha256_is_byte_exact_and_dtype_aware():
    a = np.array([1.0, 2.0])
    assert array_sha256(a) == array_sha256(a.astype(">f8"))  # hashed little-endian
    assert array_sha256(a) == array_sha256(np.asfortranarray(a))
    assert array_sha256(a) != array_sha256(np.array([1.0, np.nextafter(2.0, 3.0)]))
    assert array_sha256(np.array([0.0])) != array_sha256(np.array([-0.0]))
    neg_nan = np.array([np.nan]).view(np.uint64) | np.uint64(1 << 63)
    assert array_sha256(neg_nan.view(np.float64)) == array_sha256(np.array([np.nan]))
    assert array_sha256(np.array(["ab", "c"])) == array_sha256(np.array(["ab", "c"], dtype=object))
    assert array_sha256(np.array(["ab", "c"])) != array_sha256(np.array(["a", "bc"]))
    with pytest.raises(StorageError, match="unsupported dtype"):
        array_sha256(np.array(["2000-01-01"], dtype="datetime64[D]"))


def test_rewrite_replaces_the_old_store(tmp_path):
    write(tmp_path)
    new = xr.Dataset({"only": ("x", np.arange(3))})
    write(tmp_path, new)
    back = read_stage(tmp_path, "heads")
    assert list(back.data_vars) == ["only"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_tampered_array_is_detected(tmp_path):
    write(tmp_path)
    z = zarr.open_array(str(tmp_path / "heads.zarr" / "w"), mode="r+")
    z[1, 2] = z[1, 2] + 1e-12
    with pytest.raises(StorageError) as info:
        read_stage(tmp_path, "heads")
    msg = str(info.value)
    assert "'heads'" in msg and "'w'" in msg and "edited or incomplete; rerun the stage" in msg
    read_stage(tmp_path, "heads", verify=False)  # structure still matches


def test_tampered_attrs_and_missing_array_are_detected(tmp_path):
    write(tmp_path)
    group = zarr.open_group(str(tmp_path / "heads.zarr"), mode="r+")
    group.attrs["eps"] = 1e-6
    with pytest.raises(StorageError, match="attrs do not match.*rerun the stage"):
        read_stage(tmp_path, "heads")
    write(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "heads.zarr" / "count")
    with pytest.raises(StorageError, match="'count' is missing from the store.*rerun the stage"):
        read_stage(tmp_path, "heads")


def test_missing_or_foreign_manifest(tmp_path):
    with pytest.raises(StorageError, match="'heads': no manifest .*edited or incomplete"):
        read_stage(tmp_path, "heads")
    write(tmp_path)
    (tmp_path / manifest_name("heads")).write_text("{not json")
    with pytest.raises(StorageError, match="unreadable manifest"):
        read_stage(tmp_path, "heads")
    (tmp_path / manifest_name("heads")).write_text('{"format": "other"}')
    with pytest.raises(StorageError, match="not an NFP stage manifest"):
        read_manifest(tmp_path, "heads")


def test_store_deleted_behind_the_manifest(tmp_path):
    write(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "heads.zarr")
    with pytest.raises(StorageError, match="store .* is missing: edited or incomplete"):
        read_stage(tmp_path, "heads")


def test_crash_while_writing_the_store_leaves_no_manifest(tmp_path, monkeypatch):
    write(tmp_path)  # a complete earlier run
    assert (tmp_path / manifest_name("heads")).exists()
    real_to_zarr = xr.Dataset.to_zarr

    def crash(self, store, **kwargs):
        kwargs["encoding"] = {"w": kwargs["encoding"]["w"]}
        real_to_zarr(self[["w"]], store, **kwargs)  # part of the data reaches the disk
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(xr.Dataset, "to_zarr", crash)
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path)
    assert not (tmp_path / manifest_name("heads")).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(StorageError, match="no manifest"):
        read_stage(tmp_path, "heads")


def test_crash_while_writing_report_files_leaves_no_manifest(tmp_path, monkeypatch):
    real = storage._atomic_write_bytes

    def flaky(path, data):
        if path.name == "heads.tsv":
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(storage, "_atomic_write_bytes", flaky)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path)
    assert not (tmp_path / manifest_name("heads")).exists()


def test_stale_temp_store_from_a_killed_job_is_removed(tmp_path):
    stale = tmp_path / ".heads.zarr.tmp-99999"
    stale.mkdir()
    (stale / "junk").write_text("x")
    write(tmp_path)
    assert not stale.exists()
    read_stage(tmp_path, "heads")


def test_bad_results_are_refused(tmp_path):
    with pytest.raises(StorageError, match="not an xarray Dataset"):
        write_stage(tmp_path, "heads", StageResult({"w": 1}, {}), {})
    with pytest.raises(StorageError, match="collides"):
        write(tmp_path, files={"heads.manifest.json": "x"})
    for bad_name in ("../evil.txt", "/abs.txt", "a/b/c.txt", "plots/.hidden", "plots/", ""):
        with pytest.raises(StorageError, match="bad report file name"):
            write(tmp_path, files={bad_name: "x"})
    mixed = xr.Dataset({"m": ("x", np.array(["a", None], dtype=object))})
    with pytest.raises(StorageError, match="array 'm': object array with non-string elements"):
        write(tmp_path, mixed)
    bad = xr.Dataset({"t": ("x", np.array(["2000-01-01"], dtype="datetime64[ns]"))})
    with pytest.raises(StorageError, match="array 't': unsupported dtype"):
        write(tmp_path, bad)
    assert not (tmp_path / manifest_name("heads")).exists()


def test_report_file_in_one_sub_folder(tmp_path):
    manifest = write(tmp_path, files={"plots/a.svg": "<svg/>"})
    assert (tmp_path / "plots" / "a.svg").read_text() == "<svg/>"
    assert manifest["files"]["plots/a.svg"]["bytes"] == 6


def test_encoding_from_a_loaded_input_does_not_leak(tmp_path):
    write(tmp_path)
    loaded = read_stage(tmp_path, "heads")
    assert any(v.encoding for v in loaded.variables.values())
    out = os.path.join(tmp_path, "again")
    write(out, loaded.isel(layer=slice(0, 2)))  # stale chunk encodings would clash
    assert_bitwise_equal(loaded.isel(layer=slice(0, 2)), read_stage(out, "heads"))
