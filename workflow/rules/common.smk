# Helpers shared by every stage rule: the validated config, the model wildcard, and the
# input/output/params/log/benchmark/shell of a stage, all derived from nfp_steps.stage_specs.STAGES
# (the single source of truth for the DAG). Rules stay thin: each runs
#   python -m nfp_steps.run_stage STAGE --model MODEL --config-json SLICE
# through shell: (a shell job costs ~0.3 s of Snakemake overhead, a run: block ~3 s).

import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from nfp_steps.config import ConfigError, code_digest, config_slice, digest, load_config
from nfp_steps.stage_specs import STAGES
from nfp_steps.storage import manifest_name


def _config_label():
    """Name the config's origin in error messages: the config file(s), plus --config if given."""
    label = " + ".join(str(f) for f in workflow.configfiles) or "config"
    if workflow.config_settings.overwrite_config:
        label += " (with --config overrides)"
    return label


# Validate before any job is planned: unknown keys, wrong types and out-of-range values stop the
# workflow here with the key named; absent keys get the schema's defaults.
try:
    NFP_CONFIG = load_config(config, name=_config_label())
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration:\n{exc}") from None

MODELS = sorted(NFP_CONFIG["models"])
NFP_RESULTS = "results"
# The interpreter running Snakemake runs the jobs too (the venv's, with nfp_steps installed).
# A workflow global, not part of the shell text, so moving the venv does not trigger reruns.
NFP_PYTHON = shlex.quote(sys.executable)

wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),


try:
    # Code version of each stage: sha256 of the source of the nfp_steps modules it runs.
    # Snakemake does not track imported package code, so it becomes a param.
    CODE_DIGESTS = {name: code_digest(stage.modules) for name, stage in STAGES.items()}
except FileNotFoundError as exc:
    raise WorkflowError(str(exc)) from None

# Per-stage threads and memory (MB); the linear-algebra stages get two threads. Memory: max RSS
# measured on a GPT-2-small-shaped model at 256 positions x 1.5 (as in workflow/profiles/*),
# which matters for `--resources mem_mb=N` and on clusters; the shipped model needs < 400 MB.
STAGE_THREADS = {"forward": 2, "layernorm": 2, "heads": 2, "layers": 2, "verify": 2}
STAGE_MEM_MB = {"export": 4000, "prompt": 4000, "forward": 4500, "layernorm": 4500,
                "heads": 5000, "layers": 7000, "scores": 4500, "ranking": 2500, "verify": 4500,
                "certificate": 2500, "plots": 1000}


def stage_manifest(stage, model="{model}"):
    """The declared output of a stage: its manifest (the .zarr beside it is never declared)."""
    return f"{NFP_RESULTS}/{model}/{manifest_name(stage)}"


def stage_slice(stage, model):
    """The config slice that stage depends on, for this model."""
    return config_slice(NFP_CONFIG, STAGES[stage].config_keys, model)


def model_source_files(wildcards):
    """Every file of the model's source, so editing the weights reruns export.

    A folder (HF checkpoint, weights .zarr) contributes all its files except hidden ones
    (e.g. .snakemake_timestamp). A missing path is an error naming the config key: Snakemake
    would otherwise keep (and report as up to date) the results of whatever was there before.
    """
    key = f"models.{wildcards.model}"
    src = Path(NFP_CONFIG["models"][wildcards.model])
    if not src.exists():
        hint = " (the shipped model: restore it with git, or rebuild it with `snakemake " \
               "--cores 2 train_toy`)" if src.as_posix().rstrip("/").endswith("models/nfp-toy") \
               else ""
        raise WorkflowError(f"{key}: {src} does not exist{hint}")
    if src.is_dir():
        files = sorted(
            str(p)
            for p in src.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src).parts)
        )
        if not files:
            raise WorkflowError(f"{key}: the folder {src} has no files")
        return files
    return [str(src)]


def model_source_digest(wildcards):
    """sha256 over the source files' names and contents: a param of export, so weights swapped
    in with an old modification time (cp -p) still rerun export (mtime alone would miss it)."""
    import hashlib

    h = hashlib.sha256()
    for name in model_source_files(wildcards):
        d = hashlib.sha256()
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                d.update(block)
        h.update(f"{Path(name).name}\0{d.hexdigest()}\n".encode())
    return h.hexdigest()


def stage_input(stage):
    """Named inputs of a stage's rule: the manifest of each upstream stage."""
    return {up: stage_manifest(up) for up in STAGES[stage].inputs}


# Captions of the report's files: workflow/report/<file name>.rst (e.g. layer_bounds.svg.rst).
NFP_CAPTIONS = Path(workflow.basedir) / "workflow" / "report"


def report_caption(name):
    """The caption of report file ``name`` (relative to workflow/rules/), or None if it has none."""
    caption = f"{Path(name).name}.rst"
    return f"../report/{caption}" if (NFP_CAPTIONS / caption).is_file() else None


def stage_output(stage):
    """Named outputs of a stage's rule: the manifest, then each report file."""
    out = {"manifest": stage_manifest(stage)}
    for name in STAGES[stage].files:
        # report(): the file also appears in `snakemake --report report.html`
        out[re.sub(r"\W", "_", name)] = report(
            f"{NFP_RESULTS}/{{model}}/{name}", caption=report_caption(name), category="{model}",
            subcategory=stage, labels={"model": "{model}", "stage": stage, "file": name},
        )
    return out


def stage_params(stage):
    """Params that make Snakemake rerun exactly the stages whose config slice or code changed.

    config: the stage's validated slice as canonical JSON (also what the job receives);
    config_digest: its canonical sha256 (floats exact); code_digest: its modules' source hash.
    """
    return {
        "config": lambda wildcards: json.dumps(stage_slice(stage, wildcards.model), sort_keys=True),
        "config_digest": lambda wildcards: digest(stage_slice(stage, wildcards.model)),
        "code_digest": CODE_DIGESTS[stage],
    }


def stage_log(stage):
    return f"logs/{{model}}/{stage}.log"


def stage_benchmark(stage):
    return f"{NFP_RESULTS}/{{model}}/benchmarks/{stage}.tsv"


def stage_threads(stage):
    return STAGE_THREADS.get(stage, 1)


def stage_mem_mb(stage):
    return STAGE_MEM_MB.get(stage, 2000)


def all_targets():
    """Every stage's manifest and report files, for every model, and the models' summary.tsv
    (the default target)."""
    targets = []
    for model in MODELS:
        for name, stage in STAGES.items():
            targets.append(stage_manifest(name, model))
            targets.extend(f"{NFP_RESULTS}/{model}/{f}" for f in stage.files)
    targets.append(f"{NFP_RESULTS}/summary.tsv")
    return targets


def model_targets(wildcards):
    """Every stage manifest and report file of one model (the inputs of its archive)."""
    model = wildcards.model
    return [stage_manifest(name, model) for name in STAGES] + [
        f"{NFP_RESULTS}/{model}/{f}" for stage in STAGES.values() for f in stage.files]


# The shell command of every stage rule ({rule} is the rule name = the stage name).
NFP_STAGE_SHELL = (
    "{NFP_PYTHON} -m nfp_steps.run_stage {rule} --model {wildcards.model:q}"
    " --config-json {params.config:q} --results {NFP_RESULTS:q} --log {log:q}"
    " --threads {threads}"
)
