"""The weights Zarr store: named dims, provenance attrs, bit-exact round trips, safe replacing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from io_helpers import FIXTURE_TEXT, assert_same, random_weights

from nfp_steps.io.loader import load_model
from nfp_steps.io.nfpt_text import read_nfpt_text
from nfp_steps.io.zarr_store import (
    dataset_to_weights,
    read_weights_zarr,
    weights_to_dataset,
    write_weights_zarr,
)
from nfp_steps.model import ModelError


@pytest.mark.parametrize("kind", ["prompt", "tables", "weights-only"])
def test_round_trip_is_bit_exact_and_keeps_attrs(tmp_path, kind):
    if kind == "weights-only":
        (tmp_path / "f.nfpt").write_text(FIXTURE_TEXT)
        w = read_nfpt_text(tmp_path / "f.nfpt")
    else:
        w = random_weights(6, n_ctx=5 if kind == "tables" else None)
        w.attrs.update(number_origin="float32", missing_sections=[], note={"a": [1, 2.5]})
    write_weights_zarr(w, tmp_path / "w.zarr")
    back = read_weights_zarr(tmp_path / "w.zarr")
    assert_same(w, back, attrs=("number_origin", "missing_sections", "source_path"))
    assert back.attrs.get("note") == w.attrs.get("note")


def test_dataset_has_named_dims_and_provenance():
    w = random_weights(7, n_ctx=6)
    w.attrs.update(source_sha256="ab" * 32, source_path="/m", source_format="hf",
                   number_origin="float32", missing_sections=[])
    ds = weights_to_dataset(w)
    assert ds["W_Q"].dims == ("layer", "head", "d_model", "d_head")
    assert ds["W_O"].dims == ("layer", "head", "d_head", "d_model")
    assert ds["W_in"].dims == ("layer", "d_model", "d_mlp")
    assert ds["W_U"].dims == ("d_model", "vocab") and ds["wpe"].dims == ("pos", "d_model")
    assert dict(ds.sizes) == {"layer": 2, "head": 2, "d_model": 4, "d_head": 2, "d_mlp": 6,
                              "vocab": 7, "pos": 6}
    assert ds.attrs["dims"]["model_dim"] == 4 and ds.attrs["eps"] == 1e-5
    for key in ("gelu_kind", "source_sha256", "source_path", "source_format", "number_origin",
                "missing_sections"):
        assert key in ds.attrs
    assert_same(w, dataset_to_weights(ds))
    prompt = weights_to_dataset(random_weights(8, n=3))
    assert prompt["tokens"].dims == ("ctx",) and prompt["embeddings"].dims == ("ctx", "d_model")


def test_store_is_zarr_v3_and_load_model_records_both_provenances(tmp_path):
    w = random_weights(9)
    w.attrs.update(source_sha256="cd" * 32, source_path="/orig.nfpt", source_format="nfpt-text")
    write_weights_zarr(w, tmp_path / "w.zarr")
    assert json.loads((tmp_path / "w.zarr" / "zarr.json").read_text())["zarr_format"] == 3
    back = load_model(tmp_path / "w.zarr")
    assert back.attrs["source_format"] == "zarr"
    assert back.attrs["source_path"] == str(tmp_path / "w.zarr")
    assert len(back.attrs["source_sha256"]) == 64 and back.attrs["source_sha256"] != "cd" * 32
    assert back.attrs["origin"] == {"sha256": "cd" * 32, "path": "/orig.nfpt",
                                    "format": "nfpt-text"}


def test_replaces_a_store_but_never_anything_else(tmp_path):
    dest = tmp_path / "w.zarr"
    write_weights_zarr(random_weights(1), dest)
    write_weights_zarr(random_weights(2), dest)
    assert_same(random_weights(2), read_weights_zarr(dest))
    for other in (tmp_path / "file.zarr", tmp_path / "dir.zarr"):
        if other.name.startswith("file"):
            other.write_text("precious")
        else:
            other.mkdir()
            (other / "keep.txt").write_text("precious")
        with pytest.raises(ModelError, match="is not a Zarr store: refusing to overwrite"):
            write_weights_zarr(random_weights(1), other)
    assert (tmp_path / "file.zarr").read_text() == "precious"
    assert (tmp_path / "dir.zarr" / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.zarr", "file.zarr", "w.zarr"]


def test_incomplete_datasets_are_refused(tmp_path):
    ds = weights_to_dataset(random_weights(3))
    with pytest.raises(ModelError, match="missing variable.*W_K"):
        dataset_to_weights(ds.drop_vars("W_K"))
    bad = ds.copy()
    bad["b_in"] = (("layer", "width"), ds["b_in"].values)
    with pytest.raises(ModelError, match=r"b_in has dims \('layer', 'width'\)"):
        dataset_to_weights(bad)
    with pytest.raises(ModelError, match="not a Zarr store"):
        read_weights_zarr(tmp_path)
    ds.attrs.pop("eps")
    with pytest.raises(ModelError, match="missing attribute 'eps'"):
        dataset_to_weights(ds)
    assert np.isfinite(ds["W_Q"].values).all()
