"""The stage runner and the Snakemake workflow: wiring, outputs, no-op reruns, partial reruns.

The end-to-end tests copy Snakefile, workflow/, config.yaml and models/ into a temporary folder
and run the real workflow once on a short prompt (module-scoped fixture); reruns are checked
with dry runs (``snakemake -n``), whose expected job sets are computed from STAGES.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from nfp_steps import run_stage
from nfp_steps.config import config_slice, digest, load_config
from nfp_steps.run_stage import downstream
from nfp_steps.stage_specs import STAGES, StageResult
from nfp_steps.storage import manifest_name, read_manifest, read_stage
from nfp_steps.summary_table import STAGES_READ as SUMMARY_READS

REPO = Path(__file__).resolve().parents[1]


def test_downstream_follows_stage_specs():
    assert downstream("ranking") == {"ranking", "verify", "certificate", "plots", "report"}
    assert downstream("export") == set(STAGES)


# ---- the stage runner, in process, with fake stage functions ---------------------------------
@pytest.fixture
def fake_stages(monkeypatch):
    """Replace stage functions by fakes that record what they were given."""
    calls: dict[str, dict] = {}

    def make(name):
        def func(inputs, cfg, model):
            calls[name] = {"inputs": sorted(inputs), "cfg": cfg, "model": model}
            if cfg.get("fail"):
                raise ValueError("bad value in the weights")
            ds = xr.Dataset({"v": ("i", np.arange(3.0))}, attrs={"stage": name})
            return StageResult(ds, {f: f"{name}\n" for f in STAGES[name].files})

        return func

    monkeypatch.setattr(run_stage, "stage_function", lambda stage: make(stage.name))
    monkeypatch.setattr(run_stage, "code_digest", lambda modules: "code-" + "-".join(modules))
    return calls


def run_main(tmp_path, stage, cfg, *extra):
    args = [stage, "--model", "toy", "--config-json", json.dumps(cfg),
            "--results", str(tmp_path), "--log", str(tmp_path / "logs" / f"{stage}.log"), *extra]
    return run_stage.main(args)


def test_run_stage_passes_only_the_config_slice(tmp_path, fake_stages, capsys):
    cfg = load_config({"models": {"toy": "models/toy"}, "ranking": {"top": 3}})
    assert run_main(tmp_path, "export", config_slice(cfg, ["models.{model}"], "toy")) == 0
    assert fake_stages["export"] == {
        "inputs": [], "cfg": {"models": {"toy": "models/toy"}}, "model": "toy"}
    sl = config_slice(cfg, STAGES["prompt"].config_keys, "toy")
    assert run_main(tmp_path, "prompt", sl) == 0
    assert fake_stages["prompt"]["inputs"] == ["export"]
    assert fake_stages["prompt"]["cfg"] == sl  # nothing else

    manifest = read_manifest(tmp_path / "toy", "prompt")
    assert manifest["config_digest"] == digest(sl)
    assert manifest["code_digest"] == "code-" + "-".join(STAGES["prompt"].modules)
    assert set(manifest["inputs"]) == {"export"}
    assert read_stage(tmp_path / "toy", "prompt").attrs["stage"] == "prompt"
    out = capsys.readouterr().out
    assert "[toy/prompt]" in out and "reading export" in out and "done" in out
    assert "computing prompt" in (tmp_path / "logs" / "prompt.log").read_text()


def test_run_stage_writes_report_files(tmp_path, fake_stages):
    cfg = load_config({"models": {"toy": "m"}})
    for name in ("export", "prompt", "forward", "layernorm", "heads"):
        assert run_main(tmp_path, name, config_slice(cfg, STAGES[name].config_keys, "toy")) == 0
    assert (tmp_path / "toy" / "heads.tsv").read_text() == "heads\n"
    assert read_manifest(tmp_path / "toy", "heads")["files"]["heads.tsv"]["bytes"] == 6


def test_run_stage_error_is_one_line_and_leaves_no_manifest(
    tmp_path, fake_stages, monkeypatch, capsys
):
    assert run_main(tmp_path, "export", {"models": {"toy": "m"}}) == 0
    # an invalid slice is refused before the stage runs
    assert run_main(tmp_path, "prompt", {"prompt": {"seq_len": 1}}) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "Error: --config-json: prompt.seq_len: 1 is less than the minimum of 2"]
    assert "prompt" not in fake_stages
    # a stage function's ValueError: one line, no manifest, also in the log
    assert run_main(tmp_path, "prompt", {"prompt": {"seq_len": 8, "kind": "periodic",
                                                 "period": 4}}) == 0
    fake = run_stage.stage_function

    def failing(stage):
        func = fake(stage)
        return lambda inputs, cfg, model: func(inputs, {**cfg, "fail": True}, model)

    monkeypatch.setattr(run_stage, "stage_function", failing)
    assert run_main(tmp_path, "prompt", {"prompt": {"seq_len": 8}}) == 1
    err = capsys.readouterr().err
    assert err == "Error: bad value in the weights\n"
    assert not (tmp_path / "toy" / manifest_name("prompt")).exists()  # the old one is gone too
    assert "Error: bad value in the weights" in (tmp_path / "logs" / "prompt.log").read_text()


def test_run_stage_wrong_files_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_stage, "code_digest", lambda modules: "c")
    monkeypatch.setattr(
        run_stage, "stage_function",
        lambda stage: lambda i, c, m: StageResult(xr.Dataset(), {"other.txt": "x"}))
    assert run_main(tmp_path, "export", {"models": {"toy": "m"}}) == 1
    assert "returned files ['other.txt'], expected []" in capsys.readouterr().err
    assert not (tmp_path / "toy" / manifest_name("export")).exists()


def test_run_stage_missing_upstream_subprocess(tmp_path):
    """As Snakemake runs it: a separate process, no traceback, exit code 1."""
    proc = subprocess.run(
        [sys.executable, "-m", "nfp_steps.run_stage", "forward", "--model", "toy",
         "--config-json", '{"forward": {"logits": "last"}}', "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: stage 'export': no manifest ")
    assert lines[0].endswith("rerun the stage")


# ---- the Snakemake workflow -----------------------------------------------------------------
TEST_CONFIG = {
    "prompt": {"seq_len": 24},
    "ranking": {"top": 5},
    "verify": {"top": 2},
    "report": {"top": 3},
}


def make_workdir(path: Path) -> Path:
    """A copy of the workflow (Snakefile, workflow/, models/) with a small test config."""
    shutil.copy(REPO / "Snakefile", path / "Snakefile")
    shutil.copytree(REPO / "workflow", path / "workflow")
    if (REPO / "models").is_dir():
        shutil.copytree(REPO / "models", path / "models")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for section, values in TEST_CONFIG.items():
        cfg[section].update(values)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--directory", str(workdir), *args],
        cwd=workdir, capture_output=True, text=True, timeout=900,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rules a dry run would run, with job counts (rule ``all`` left out)."""
    proc = snakemake(workdir, "-n", "--quiet", "rules", *args)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^job\s+count\s*$", line))
    jobs = {}
    for line in lines[start + 2:]:
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line)
        if not m or m.group(1) == "total":
            break
        jobs[m.group(1)] = int(m.group(2))
    jobs.pop("all", None)
    return jobs


def test_dry_run_plans_every_stage_once_per_model(tmp_path):
    work = make_workdir(tmp_path)
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    extra = work / "models" / "extra-model"
    extra.mkdir(parents=True)
    (extra / "weights.bin").write_text("x")
    cfg["models"]["extra-model"] = "models/extra-model"
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    n_models = len(cfg["models"])
    assert planned_jobs(work) == {**{name: n_models for name in STAGES}, "summary": 1}


def test_invalid_config_stops_before_any_job(tmp_path):
    work = make_workdir(tmp_path)
    proc = snakemake(work, "-n", "--config", "ranking={top: 0, topp: 1}", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "ranking.top: 0 is less than the minimum of 1" in text
    assert "ranking.topp: unknown key" in text
    assert "Job stats" not in text


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The whole default workflow, run once on the test config."""
    work = make_workdir(tmp_path_factory.mktemp("workflow"))
    snakemake(work, "--cores", "2")
    return work


def test_full_run_writes_every_output(finished_run):
    work = finished_run
    cfg = load_config(work / "config.yaml")
    for model in cfg["models"]:
        out = work / "results" / model
        for name in ("ranking.tsv", "induction.txt", "heads.tsv", "layers.tsv", "verify.tsv",
                     "certificate.json", "certificate.txt", "summary.txt"):
            assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        for name, spec in STAGES.items():
            manifest = read_manifest(out, name)
            assert manifest["config_digest"] == digest(
                config_slice(cfg, spec.config_keys, model))
            read_stage(out, name)  # every array re-hashes to its manifest
            assert not (out / f"{name}.zarr" / ".snakemake_timestamp").exists()
            assert (out / "benchmarks" / f"{name}.tsv").is_file()
            assert (work / "logs" / model / f"{name}.log").is_file()


def test_tables_hold_plain_numbers(finished_run):
    """Every .tsv has a header and rows of the same width; numeric cells parse as floats."""
    out = finished_run / "results" / "nfp-toy"
    for name in ("ranking.tsv", "heads.tsv", "layers.tsv", "verify.tsv"):
        header, *rows = (out / name).read_text().splitlines()
        cols = header.split("\t")
        assert rows, name
        for row in rows:
            cells = dict(zip(cols, row.split("\t"), strict=True))
            for col, cell in cells.items():
                if col not in ("control", "tier", "checks"):
                    float(cell)  # raises on e.g. "np.float64(1.0)"


def test_second_run_has_nothing_to_do(finished_run):
    assert planned_jobs(finished_run) == {}


@pytest.mark.parametrize(
    ("section", "key", "value", "stage"),
    [
        ("ranking", "top", 7, "ranking"),
        ("forward", "logits", "all", "forward"),
        ("report", "top", 2, "report"),
        ("ranking", "diag_top", 1, None),
        ("prompt", "seed", 99, "prompt"),
        ("induction", "kcomp", "original", "scores"),
        ("prompt", "batch", 2, "scores"),  # the batch: not the analysed prompt nor its bounds
    ],
)
def test_config_edit_reruns_exactly_the_dependent_stages(finished_run, section, key, value, stage):
    work = finished_run
    path = work / "config.yaml"
    original = path.read_text()
    cfg = yaml.safe_load(original)
    cfg[section][key] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        planned = planned_jobs(work)
    finally:
        path.write_text(original)
    models = len(cfg["models"])
    expected = {name: models for name in downstream(stage)} if stage else {}
    if set(expected) & set(SUMMARY_READS):
        expected["summary"] = 1  # the models' summary.tsv reads these stores
    assert planned == expected


def test_weights_edit_reruns_everything(finished_run):
    work = finished_run
    src = Path(load_config(work / "config.yaml")["models"]["nfp-toy"])
    files = [p for p in (work / src).rglob("*") if p.is_file()] if (work / src).is_dir() else [
        work / src]
    target = max(files, key=lambda p: p.stat().st_size)
    original, stat = target.read_bytes(), target.stat()
    try:
        target.write_bytes(original + b"\0")
        assert set(planned_jobs(work)) == set(STAGES) | {"summary"}
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_undone_edits_leave_everything_up_to_date(finished_run):
    assert planned_jobs(finished_run) == {}


# ---- each stage's code digest covers all the code it runs -------------------------------------
PKG = REPO / "nfp_steps"


def _imported_modules(nodes) -> set[str]:
    """nfp_steps modules (as 'a/b' paths) imported anywhere inside the given AST nodes."""
    import ast

    out: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                if sub.module == "nfp_steps":
                    out.update(a.name for a in sub.names if (PKG / f"{a.name}.py").exists())
                elif sub.module.startswith("nfp_steps."):
                    out.add(sub.module.removeprefix("nfp_steps.").replace(".", "/"))
            elif isinstance(sub, ast.Import):
                out.update(a.name.removeprefix("nfp_steps.").replace(".", "/")
                           for a in sub.names if a.name.startswith("nfp_steps."))
    return {m for m in out if (PKG / f"{m}.py").exists() or (PKG / m).is_dir()}


def _stage_closure(func: str) -> set[str]:
    """Modules a stage function can run: its own module's top-level imports, the imports in the
    function and in the same-module helpers it calls, then every import of those modules."""
    import ast

    mod, name = func.split(":")
    mod = mod.replace(".", "/")
    tree = ast.parse((PKG / f"{mod}.py").read_text())
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    seen_defs, todo = set(), [name]
    while todo:
        fn = todo.pop()
        if fn in seen_defs:
            continue
        seen_defs.add(fn)
        for sub in ast.walk(defs[fn]):
            if isinstance(sub, ast.Name) and sub.id in defs:
                todo.append(sub.id)
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    mods = {mod} | _imported_modules(top) | _imported_modules(defs[f] for f in seen_defs)
    todo = list(mods - {mod})  # the function's own module: only the parts it runs (above)
    while todo:
        m = todo.pop()
        path = PKG / f"{m}.py"
        if not path.exists():
            continue
        for dep in _imported_modules([ast.parse(path.read_text())]) - mods - {mod}:
            mods.add(dep)
            todo.append(dep)
    return mods


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_code_digest_covers_every_module_it_runs(name):
    stage = STAGES[name]
    missing = _stage_closure(stage.func) - set(stage.modules) - {"__init__"}
    assert not missing, f"stage {name}: add {sorted(missing)} to its modules in stage_specs.py"


@pytest.mark.parametrize("module, changed", [
    ("stages/ranking", {"ranking"}),
    ("ranking", {"ranking", "report"}),
    ("bounds", {"layernorm", "heads", "layers", "ranking", "certificate", "report"}),
    ("storage", set(STAGES)),
])
def test_editing_a_module_changes_the_code_digest_of_exactly_its_stages(
    tmp_path, monkeypatch, module, changed
):
    """Snakemake reruns a stage whose code digest param changed (and, through its outputs, what
    depends on it): editing one module must change the digests of the stages running it only."""
    from nfp_steps import config as C

    pkg = tmp_path / "nfp_steps"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(C, "PACKAGE_DIR", pkg)
    before = {n: C.code_digest(s.modules) for n, s in STAGES.items()}
    path = pkg / f"{module}.py"
    path.write_text(path.read_text() + "\n# edited\n")
    after = {n: C.code_digest(s.modules) for n, s in STAGES.items()}
    assert {n for n in STAGES if before[n] != after[n]} == changed


def test_missing_model_path_is_an_error_even_with_old_results(finished_run):
    work = finished_run
    path = work / "config.yaml"
    original = path.read_text()
    cfg = yaml.safe_load(original)
    cfg["models"]["nfp-toy"] = "models/does-not-exist"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        proc = snakemake(work, "-n", check=False)
    finally:
        path.write_text(original)
    assert proc.returncode != 0
    assert "models.nfp-toy: models/does-not-exist does not exist" in proc.stdout + proc.stderr


def test_weights_swapped_back_with_an_old_mtime_rerun_export(finished_run):
    """cp -p style: same mtime, different content -> the source digest param changes."""
    work = finished_run
    target = max((p for p in (work / "models" / "nfp-toy").iterdir() if p.is_file()),
                 key=lambda p: p.stat().st_size)
    original, stat = target.read_bytes(), target.stat()
    try:
        target.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert "export" in planned_jobs(work)
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_failed_stage_leaves_no_stale_downstream_results(tmp_path, fake_stages, monkeypatch):
    cfg = load_config({"models": {"toy": "m"}})
    for name in STAGES:
        assert run_main(tmp_path, name, config_slice(cfg, STAGES[name].config_keys, "toy")) == 0
    out = tmp_path / "toy"
    assert (out / "ranking.tsv").exists() and (out / manifest_name("report")).exists()
    fake = run_stage.stage_function

    def failing(stage):
        func = fake(stage)
        return lambda inputs, c, model: func(inputs, {**c, "fail": True}, model)

    monkeypatch.setattr(run_stage, "stage_function", failing)
    assert run_main(tmp_path, "scores", config_slice(cfg, STAGES["scores"].config_keys,
                                                     "toy")) == 1
    for name in downstream("scores"):
        assert not (out / manifest_name(name)).exists(), name
        for f in STAGES[name].files:
            assert not (out / f).exists(), f
    for name in set(STAGES) - downstream("scores"):
        assert (out / manifest_name(name)).exists(), name
    assert (out / "heads.tsv").exists()


def test_dependencies_cover_the_report_and_keep_torch_pinned():
    """`snakemake --report` needs pygments, which snakemake itself does not pull in."""
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower() for d in deps}
    assert "pygments" in names
    assert "torch==2.13.0" in deps
    rule = (REPO / "workflow" / "rules" / "train_toy.smk").read_text()
    assert "--force" in rule  # models/nfp-toy exists: train-toy refuses without it
