"""Results archives: what goes in, and that --verify refuses every kind of tampering."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nfp_steps import cli
from nfp_steps.archive import (
    ArchiveError,
    ArchiveMismatch,
    ArchiveUnreadable,
    create_archive,
    verify_archive,
)
from nfp_steps.stage_specs import StageResult
from nfp_steps.storage import read_manifest, write_stage


@pytest.fixture
def results(tmp_path) -> Path:
    """A small results/<model> folder: two stages with stores, report files, a benchmark."""
    folder = tmp_path / "results" / "toy"
    heads = xr.Dataset({"eps_ub": (("layer", "head"), np.arange(6.0).reshape(2, 3))})
    write_stage(folder, "heads", StageResult(heads, {"heads.tsv": "layer\thead\n0\t0\n"}),
                {"model": "toy", "config": {"bounds": {"heads": {"softmax": "rows"}}},
                 "code_digest": "c1"})
    plots = xr.Dataset({"top_pair": ("item", np.array([0, 1, 1, 2]))})
    write_stage(folder, "plots", StageResult(plots, {"plots/a.svg": "<svg/>"}),
                {"model": "toy", "config": {}, "code_digest": "c2"})
    (folder / "benchmarks").mkdir()
    (folder / "benchmarks" / "heads.tsv").write_text("s\n1.0\n")
    (folder / ".heads.zarr.tmp-1").mkdir()  # a killed job's leftover: never archived
    logs = tmp_path / "logs" / "toy"
    logs.mkdir(parents=True)
    (logs / "heads.log").write_text("[toy/heads] done\n")
    (tmp_path / "config.yaml").write_text("models:\n  toy: models/toy\n")
    return folder


def make(results: Path, name: str = "a.tar.gz") -> Path:
    out = results.parent.parent / name
    create_archive(results, out, config=results.parent.parent / "config.yaml",
                   logs=results.parent.parent / "logs" / "toy")
    return out


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def rewrite(src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None],
            extra: dict[str, bytes] | None = None) -> Path:
    """A copy of an archive with members edited (``edit`` returns None to drop one)."""
    with tarfile.open(dst, "w:gz") as tar:
        for name, data in [*members(src).items(), *(extra or {}).items()]:
            new = edit(name, data)
            if new is not None:
                info = tarfile.TarInfo(name)
                info.size = len(new)
                tar.addfile(info, io.BytesIO(new))
    return dst


def test_archive_holds_results_logs_config_versions_code_and_hashes(results):
    path = make(results)
    files = members(path)
    names = set(files)
    assert "toy/results/heads.tsv" in names and "toy/results/plots/a.svg" in names
    assert "toy/results/heads.manifest.json" in names
    assert any(n.startswith("toy/results/heads.zarr/") for n in names)
    assert "toy/results/benchmarks/heads.tsv" in names and "toy/logs/heads.log" in names
    assert not any("/." in n for n in names)  # no hidden leftovers
    assert files["toy/config.yaml"] == (results.parent.parent / "config.yaml").read_bytes()
    used = json.loads(files["toy/config.used.json"])
    assert used["heads"] == {"bounds": {"heads": {"softmax": "rows"}}}
    versions = json.loads(files["toy/versions.json"])
    assert any(p.startswith("numpy==") for p in versions["packages"])
    code = json.loads(files["toy/code.json"])
    assert code["nfp_version"] and code["stage_code_digests"] == {"heads": "c1", "plots": "c2"}
    manifest = json.loads(files["toy/MANIFEST.json"])
    assert set(manifest["files"]) == {n.removeprefix("toy/") for n in names} - {"MANIFEST.json"}
    heads = read_manifest(results, "heads")["arrays"]
    assert manifest["arrays"]["heads"] == {k: v["sha256"] for k, v in heads.items()}
    assert verify_archive(path)["model"] == "toy"


def test_cli_archive_and_verify(results, capsys, monkeypatch):
    root = results.parent.parent
    monkeypatch.chdir(root)
    assert cli.main(["archive", "results/toy", "--output", "x.tar.gz"]) == 0
    assert "config: config.yaml" in capsys.readouterr().out
    assert "toy/logs/heads.log" in members(root / "x.tar.gz")
    assert cli.main(["archive", "--verify", "x.tar.gz"]) == 0
    assert capsys.readouterr().out.startswith("OK: x.tar.gz: model toy")
    assert cli.main(["archive", "results/toy", "--output", "x.tar.gz"]) == 1
    assert "x.tar.gz exists; use --force" in capsys.readouterr().err
    assert cli.main(["archive", "results/toy", "--output", "x.tar.gz", "--force"]) == 0
    assert cli.main(["archive", "results/toy"]) == 1
    assert "needs RESULTS and --output" in capsys.readouterr().err


def test_only_the_config_the_results_were_made_with_goes_in(results, capsys, monkeypatch):
    root = results.parent.parent
    other = root / "other.yaml"
    other.write_text("models:\n  toy: models/toy\nbounds:\n  heads:\n    softmax: half\n")
    with pytest.raises(ArchiveError, match=r"other.yaml is not the config these results were "
                                           r"made with \(stage 'heads' ran with"):
        create_archive(results, root / "x.tar.gz", config=other)
    monkeypatch.chdir(root)
    assert cli.main(["archive", "results/toy", "-o", "x.tar.gz", "--config", "other.yaml"]) == 1
    assert "is not the config these results were made with" in capsys.readouterr().err
    # the implicit ./config.yaml is left out, with a note, when it does not match
    other.replace(root / "config.yaml")
    assert cli.main(["archive", "results/toy", "-o", "x.tar.gz"]) == 0
    captured = capsys.readouterr()
    assert "note: config.yaml not included" in captured.err and "config: none" in captured.out
    assert "toy/config.yaml" not in members(root / "x.tar.gz")
    assert "toy/config.used.json" in members(root / "x.tar.gz")


@pytest.mark.parametrize("member", ["toy/results/heads.tsv", "toy/config.yaml",
                                    "toy/results/heads.manifest.json"])
def test_a_tampered_member_is_refused_by_name(results, capsys, member):
    good = make(results)
    bad = rewrite(good, good.with_name("bad.tar.gz"),
                  lambda n, d: d + b"\n" if n == member else d)
    with pytest.raises(ArchiveMismatch, match=f"{member} does not match its sha256"):
        verify_archive(bad)
    assert cli.main(["archive", "--verify", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and member in err and err.count("\n") == 1


def test_a_tampered_array_is_refused_even_with_a_consistent_member_list(results):
    """Edit an array chunk and fix up MANIFEST.json's file hash: the array hash still fails."""
    import hashlib

    good = make(results)
    files = members(good)
    chunk = next(n for n in files if n.startswith("toy/results/heads.zarr/eps_ub/c/"))
    edited = bytearray(files[chunk])
    edited[-1] ^= 0xFF
    manifest = json.loads(files["toy/MANIFEST.json"])
    manifest["files"][chunk.removeprefix("toy/")]["sha256"] = hashlib.sha256(edited).hexdigest()

    def edit(name: str, data: bytes) -> bytes:
        if name == chunk:
            return bytes(edited)
        return json.dumps(manifest).encode() if name == "toy/MANIFEST.json" else data

    bad = rewrite(good, good.with_name("bad.tar.gz"), edit)
    with pytest.raises(ArchiveMismatch, match="stage 'heads'.*eps_ub|stage 'heads'.*store"):
        verify_archive(bad)


def test_extra_and_missing_members_are_refused(results):
    good = make(results)
    extra = rewrite(good, good.with_name("extra.tar.gz"), lambda n, d: d,
                    extra={"toy/results/evil.txt": b"x"})
    with pytest.raises(ArchiveMismatch, match="toy/results/evil.txt is not in MANIFEST.json"):
        verify_archive(extra)
    dropped = rewrite(good, good.with_name("dropped.tar.gz"),
                      lambda n, d: None if n == "toy/results/plots/a.svg" else d)
    with pytest.raises(ArchiveMismatch, match="toy/results/plots/a.svg is listed"):
        verify_archive(dropped)


def test_unreadable_archives_exit_2(results, tmp_path, capsys):
    good = make(results)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    not_gz = tmp_path / "text.tar.gz"
    not_gz.write_text("hello")
    plain = rewrite(good, tmp_path / "plain.tar.gz",
                    lambda n, d: None if n.endswith("MANIFEST.json") else d)
    for path in (truncated, not_gz, plain, tmp_path / "missing.tar.gz"):
        with pytest.raises(ArchiveUnreadable):
            verify_archive(path)
        assert cli.main(["archive", "--verify", str(path)]) == 2
        assert str(path) in capsys.readouterr().err


def test_an_edited_store_is_not_archived(results):
    chunk = next((results / "heads.zarr" / "eps_ub" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="not archived: stage 'heads'"):
        make(results)
    assert not (results.parent.parent / "a.tar.gz").exists()


def test_a_folder_without_manifests_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchiveError, match="no stage manifest"):
        create_archive(tmp_path / "empty", tmp_path / "x.tar.gz")


def test_cli_archive_json_matches_text(results, capsys, monkeypatch):
    monkeypatch.chdir(results.parent.parent)
    assert cli.main(["archive", "results/toy", "--output", "x.tar.gz", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "archive" and doc["archive"] == "x.tar.gz" and doc["model"] == "toy"
    assert cli.main(["archive", "--verify", "x.tar.gz", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "ok" and doc["n_files"] == len(verify_archive("x.tar.gz")["files"])
    assert cli.main(["archive", "--verify", "x.tar.gz"]) == 0
    assert f"{doc['n_files']} files and {doc['n_arrays']} arrays" in capsys.readouterr().out
