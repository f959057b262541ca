"""The workflow as users run it: the .test config end to end, two models, concurrent working
copies, interrupted runs (SIGKILL and SIGTERM in the middle of a stage), hand-edited manifests.

One module-scoped fixture runs two working copies at the same time: A on ``.test/config.yaml``
(the shipped model) and B on a ``.nfpt`` export of it (a different model). Later tests reuse A.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nfp_steps.run_stage import downstream
from nfp_steps.stage_specs import STAGES
from nfp_steps.storage import manifest_name, read_manifest, read_stage

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config.yaml"
NFPT = "toy-nfpt"  # B's model: the shipped model exported to .nfpt with a baked 24-token prompt
# Every run uses the same core count: a stage's threads (min(rule threads, cores)) change the
# BLAS summation order, and with it the last bits of e.g. the certified lower bounds C_lb.
CORES = ("--cores", "2")


def make_copy(path: Path, config: dict) -> Path:
    """A working copy of the workflow (Snakefile, workflow/, models/) with ``config``."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", path / "Snakefile")
    shutil.copytree(REPO / "workflow", path / "workflow")
    shutil.copytree(REPO / "models", path / "models")
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_cmd(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--directory", str(work), *args]


def snakemake(work: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(snakemake_cmd(work, *args), cwd=work, capture_output=True, text=True,
                          timeout=900)
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def array_hashes(folder: Path) -> dict[str, dict[str, str]]:
    """{stage: {array: sha256}} of every stage, each store re-hashed against its manifest."""
    out = {}
    for stage in STAGES:
        read_stage(folder, stage)  # raises if any array does not match its manifest
        out[stage] = {k: v["sha256"] for k, v in read_manifest(folder, stage)["arrays"].items()}
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    if not (REPO / "models" / "nfp-toy").is_dir():
        pytest.skip("the shipped model models/nfp-toy is missing")
    root = tmp_path_factory.mktemp("runs")
    test_cfg = yaml.safe_load(TEST_CONFIG.read_text())
    a = make_copy(root / "a", test_cfg)
    b = make_copy(root / "b", {**test_cfg, "models": {NFPT: f"models/{NFPT}.nfpt"}})
    export = subprocess.run(
        [sys.executable, "-m", "nfp_steps.cli", "export", "models/nfp-toy", "--output",
         f"models/{NFPT}.nfpt", "--seq-len", "24", "--seed", "3"],
        cwd=b, capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr
    procs = [subprocess.Popen(snakemake_cmd(w, *CORES), cwd=w, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for w in (a, b)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for proc, text in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, text[-5000:]
    return a, b


@pytest.mark.parametrize(("override", "message"), [
    ("verify={top: many}", "verify.top: 'many' is not of type 'integer'"),
    ("prompt={seq_len: 1}", "prompt.seq_len: 1 is less than the minimum of 2"),
    ("plots={dpi: 3}", "plots: unknown key"),
])
def test_a_bad_config_stops_before_any_job_naming_the_key(tmp_path, override, message):
    work = make_copy(tmp_path / "w", yaml.safe_load(TEST_CONFIG.read_text()))
    proc = snakemake(work, *CORES, "--config", override, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in text, text[-3000:]
    assert not (work / "results").exists() and not (work / "logs").exists()


def test_test_config_runs_the_whole_dag(runs):
    a, _ = runs
    out = a / "results" / "nfp-toy"
    array_hashes(out)  # every stage's store is there and matches its manifest
    for name, spec in STAGES.items():
        for f in spec.files:
            assert (out / f).stat().st_size > 0, f
        assert (a / "logs" / "nfp-toy" / f"{name}.log").is_file(), name
        header, row = (out / "benchmarks" / f"{name}.tsv").read_text().splitlines()
        assert header.split("\t")[:3] == ["s", "h:m:s", "max_rss"] and float(row.split()[2]) > 0
    assert "[progress] heads: 8/8 (100%)" in (a / "logs" / "nfp-toy" / "heads.log").read_text()
    header, *rows = (a / "results" / "summary.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows] == ["nfp-toy"]
    # the certificate stage ran the independent checker on what it wrote
    assert rows[0].split("\t")[header.split("\t").index("certificate_status")] == "verified"


def test_concurrent_copies_then_two_models_in_one_run_and_the_report(runs):
    """B ran at the same time as A, on another model: A then adds B's model and must compute
    exactly B's arrays; the summary compares both models and the report holds both's plots."""
    a, b = runs
    assert sorted(p.name for p in (a / "results").iterdir() if p.is_dir()) == ["nfp-toy"]
    assert sorted(p.name for p in (b / "results").iterdir() if p.is_dir()) == [NFPT]
    shutil.copy(b / "models" / f"{NFPT}.nfpt", a / "models" / f"{NFPT}.nfpt")
    cfg = yaml.safe_load((a / "config.yaml").read_text())
    cfg["models"][NFPT] = f"models/{NFPT}.nfpt"
    (a / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = snakemake(a, *CORES)
    assert "[nfp-toy/" not in run.stdout + run.stderr  # no job of the first model ran
    assert array_hashes(a / "results" / NFPT) == array_hashes(b / "results" / NFPT)

    header, *rows = (a / "results" / "summary.tsv").read_text().splitlines()
    cols = header.split("\t")
    table = {r.split("\t")[0]: dict(zip(cols, r.split("\t"), strict=True)) for r in rows}
    assert set(table) == {"nfp-toy", NFPT}
    for row in table.values():
        assert row["top_pair"].startswith("L") and float(row["eps1_ub"]) > 0
        assert float(row["worst_slack"]) >= 1

    snakemake(a, "--report", "report.html")
    html = (a / "report.html").read_text(errors="replace")
    for model in ("nfp-toy", NFPT):
        for plot in STAGES["plots"].files:
            assert f"results/{model}/{plot}" in html, (model, plot)
    assert "per-layer bounds on" in html.lower()  # a caption made it in


def wait_for(path: Path, text: str, proc: subprocess.Popen) -> None:
    """Poll until ``path`` contains ``text`` (the stage is running); fail if the run ends."""
    while not (path.is_file() and text in path.read_text()):
        if proc.poll() is not None:
            pytest.fail(f"the run ended ({proc.returncode}) before {path} showed {text!r}")
        time.sleep(0.02)


@pytest.mark.parametrize(("stage", "sig"), [("heads", signal.SIGKILL),
                                            ("layers", signal.SIGTERM)])
def test_a_killed_run_reruns_to_identical_results(runs, stage, sig):
    """Kill a run while ``stage`` computes, Snakemake and its job together (SIGKILL: a lost
    node, the OOM killer; SIGTERM: what SLURM and timeouts send the whole job): nothing is left
    looking complete, and a rerun gives bit-identical arrays. (SIGTERM to Snakemake alone lets
    the running job finish first, so it interrupts nothing.)"""
    a, _ = runs
    out = a / "results" / "nfp-toy"
    before = array_hashes(out)
    log = a / "logs" / "nfp-toy" / f"{stage}.log"
    log.unlink()
    proc = subprocess.Popen(
        snakemake_cmd(a, *CORES, "--forcerun", f"results/nfp-toy/{manifest_name(stage)}"),
        cwd=a, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(log, f"computing {stage}", proc)
    finally:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=300)
    assert proc.returncode != 0
    # the interrupted stage and everything downstream have no manifest; what has one is intact
    for name in STAGES:
        path = out / manifest_name(name)
        if name in downstream(stage):
            assert not path.exists(), name
        else:
            read_stage(out, name)

    rerun = snakemake(a, *CORES, check=False)
    text = rerun.stdout + rerun.stderr
    if rerun.returncode != 0 and "--unlock" in text:  # SIGKILL leaves Snakemake's lock behind
        snakemake(a, "--unlock")
        rerun = snakemake(a, *CORES, check=False)
        text = rerun.stdout + rerun.stderr
    if rerun.returncode != 0 and "--rerun-incomplete" in text:
        rerun = snakemake(a, *CORES, "--rerun-incomplete", check=False)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-5000:]
    assert array_hashes(out) == before
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]


def test_archive_target_bundles_a_verifiable_archive(runs):
    from nfp_steps.archive import verify_archive

    a, _ = runs
    snakemake(a, *CORES, "archives/nfp-toy.tar.gz")
    manifest = verify_archive(a / "archives" / "nfp-toy.tar.gz")
    assert manifest["model"] == "nfp-toy" and set(manifest["stages"]) == set(STAGES)
    assert {"config.yaml", "config.used.json", "versions.json", "code.json",
            "logs/heads.log", "results/plots/head_eps.svg"} <= set(manifest["files"])


def test_a_hand_edited_manifest_stops_the_stage_reading_it(runs, tmp_path):
    a, _ = runs
    work = tmp_path / "copy"
    shutil.copytree(a, work, symlinks=True)
    path = work / "results" / "nfp-toy" / manifest_name("heads")
    manifest = json.loads(path.read_text())
    manifest["arrays"]["eps_ub"]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest, indent=2))  # newer than layers': layers reruns
    proc = snakemake(work, *CORES, check=False)
    assert proc.returncode != 0
    message = ("Error: stage 'heads': array 'eps_ub' does not match its sha256 in the manifest: "
               "edited or incomplete; rerun the stage")
    assert message in (work / "logs" / "nfp-toy" / "layers.log").read_text()
    assert message in proc.stdout + proc.stderr
    assert not (work / "results" / "nfp-toy" / manifest_name("layers")).exists()
