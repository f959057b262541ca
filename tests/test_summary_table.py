"""results/summary.tsv: one row per model from its stores; captions for every report file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nfp_steps import summary_table
from nfp_steps.stage_specs import STAGES, StageResult
from nfp_steps.storage import write_stage
from nfp_steps.summary_table import COLUMNS, summary_tsv

REPO = Path(__file__).resolve().parents[1]


def write_model(results: Path, model: str, pairs: list[tuple[int, int, int, int]],
                slack: list[float], status: str | None) -> None:
    """The five stores summary.tsv reads, small and hand-made (2 layers x 3 heads)."""
    folder = results / model
    n = len(pairs)
    ranking = xr.Dataset({
        "rank": ("pair", np.arange(n, 0, -1, dtype=np.int64)),  # the last pair ranks first
        **{k: ("pair", np.array([p[i] for p in pairs], dtype=np.int64))
           for i, k in enumerate(("l1", "h1", "l2", "h2"))}})
    grid = np.arange(6.0).reshape(2, 3)
    scores = xr.Dataset({"prevTok": (("layer", "head"), grid / 10),
                         "indScore": (("layer", "head"), grid / 20)})
    heads = xr.Dataset({"eps_ub": (("layer", "head"), grid + 1)})
    layers = xr.Dataset({"slack": ("layer", np.array(slack)),
                         "C_ub": ("layer", np.array([10.0, 20.0])),
                         "C_lb": ("layer", np.array([1.0, 2.0]))})
    cert = xr.Dataset({"total_ub": ((), 231.0)})
    if status is not None:
        cert.attrs["check_status"] = status
    for name, ds in (("ranking", ranking), ("scores", scores), ("heads", heads),
                     ("layers", layers), ("certificate", cert)):
        write_stage(folder, name, StageResult(ds, {}), {"model": model})


def rows(text: str) -> dict[str, dict[str, str]]:
    header, *lines = text.splitlines()
    assert header.split("\t") == list(COLUMNS)
    return {r["model"]: r for r in (dict(zip(COLUMNS, line.split("\t"), strict=True))
                                    for line in lines)}


def test_one_row_per_model_with_the_top_pair_and_the_worst_layer(tmp_path):
    write_model(tmp_path, "a", [(0, 0, 1, 1), (0, 2, 1, 0)], [3.0, 7.5], "verified")
    write_model(tmp_path, "b", [], [np.nan, 2.0], "refuted: layer 1\tC_ub too small\n")
    write_model(tmp_path, "c", [(0, 1, 1, 2)], [1.5, 1.25], None)
    table = rows(summary_tsv(tmp_path, ["a", "b", "c"]))
    a = table["a"]
    assert a["top_pair"] == "L0H2->L1H0"  # rank 1 is the second pair
    assert (a["prevTok"], a["indScore"]) == (repr(0.2), repr(0.15))  # prevTok[0,2], ind[1,0]
    assert (a["eps1_ub"], a["eps2_ub"]) == ("3.0", "4.0")
    assert (a["worst_layer"], a["worst_slack"], a["worst_C_ub"]) == ("1", "7.5", "20.0")
    assert a["total_ub"] == "231.0" and a["certificate_status"] == "verified"
    b = table["b"]
    assert b["top_pair"] == b["prevTok"] == "-" and b["n_pairs"] == "0"
    assert (b["worst_layer"], b["worst_slack"]) == ("0", "nan")  # no usable lb is the worst
    assert b["certificate_status"] == "refuted: layer 1 C_ub too small"
    assert table["c"]["certificate_status"] == "not checked"
    assert list(table) == ["a", "b", "c"]


def test_cli_writes_the_table_and_names_a_damaged_store(tmp_path, capsys):
    write_model(tmp_path, "a", [(0, 0, 1, 1)], [3.0, 2.0], None)
    out = tmp_path / "summary.tsv"
    assert summary_table.main(["a", "--results", str(tmp_path), "--output", str(out)]) == 0
    assert set(rows(out.read_text())) == {"a"}
    (tmp_path / "a" / "layers.manifest.json").unlink()
    assert summary_table.main(["a", "--results", str(tmp_path), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: summary.tsv: stage 'layers': no manifest")


@pytest.mark.parametrize("name", sorted({f for s in STAGES.values() for f in s.files}
                                        | {"summary.tsv"}))
def test_every_report_file_has_a_caption(name):
    caption = REPO / "workflow" / "report" / f"{Path(name).name}.rst"
    assert caption.is_file() and caption.read_text().strip(), f"add {caption}"
