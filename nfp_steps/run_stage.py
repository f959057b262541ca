"""Run one DAG stage for one model: read upstream stores, call the stage function, write its store.

    python -m nfp_steps.run_stage STAGE --model NAME (--config FILE | --config-json JSON)
                                  [--results DIR] [--log FILE] [--threads N]

This is what every Snakemake rule's ``shell:`` runs. ``--config-json`` is the stage's validated
config slice as the Snakefile computed it (so the job sees exactly the values whose digest is
the rule's param); ``--config`` loads and validates a whole YAML/JSON config instead (for use by
hand). Either way the stage function receives only its own slice (``Stage.config_keys``): a
stage that reads any other key fails loudly instead of silently missing reruns.

User errors (bad model file, config, store, value) print one ``Error: ...`` line on stderr and
exit with code 1, without a traceback and without writing a manifest; set ``NFP_TRACEBACK=1`` to
see the traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from nfp_steps.config import ConfigError, code_digest, config_slice, digest, load_config
from nfp_steps.stage_specs import STAGES, Stage

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class StageError(RuntimeError):
    """The stage function is missing or broke its contract (wrong return type or files)."""


class Reporter:
    """Progress lines to stdout and, if given, to a log file; errors to stderr and the log."""

    def __init__(self, prefix: str, log: Path | None) -> None:
        self.prefix = prefix
        self.t0 = time.perf_counter()
        self.log: TextIO | None = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            self.log = open(log, "w", encoding="utf-8")  # closed in close()

    def _emit(self, line: str, stream: TextIO) -> None:
        print(line, file=stream, flush=True)
        if self.log is not None:
            print(line, file=self.log, flush=True)

    def step(self, message: str) -> None:
        self._emit(f"[{self.prefix}] {time.perf_counter() - self.t0:7.2f}s {message}", sys.stdout)

    def error(self, message: str) -> None:
        self._emit(f"Error: {message}", sys.stderr)

    def internal_error(self, exc: BaseException) -> None:
        """A bug, not bad input: one line on stderr, the traceback in the log (if any)."""
        import traceback

        where = f"; traceback in {self.log.name}" if self.log is not None else ""
        print(f"Error: internal error in stage {self.prefix} ({type(exc).__name__}: {exc}){where}"
              " - please report it", file=sys.stderr, flush=True)
        if self.log is not None:
            traceback.print_exception(exc, file=self.log)
            self.log.flush()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nfp_steps.run_stage",
        description="Run one NFP stage for one model and write results/<model>/<stage>.zarr "
        "plus its manifest.",
    )
    p.add_argument("stage", choices=sorted(STAGES), metavar="STAGE",
                   help=f"one of: {', '.join(STAGES)}")
    p.add_argument("--model", required=True, help="model name (a key of the config's models)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="config file (YAML or JSON) to load and validate")
    src.add_argument("--config-json", help="the stage's config slice as JSON (from the Snakefile)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="results folder (default: results); writes into <results>/<model>")
    p.add_argument("--log", type=Path, help="also write progress and errors to this file")
    p.add_argument("--threads", type=int,
                   help="threads for numpy/torch (sets OMP_NUM_THREADS etc.)")
    return p


def stage_config(args: argparse.Namespace, stage: Stage) -> dict:
    """The validated slice of the config that ``stage`` depends on."""
    if args.config_json is not None:
        try:
            raw = json.loads(args.config_json)
        except ValueError as exc:
            raise ConfigError(f"--config-json: invalid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError("--config-json: expected a JSON object")
        cfg = load_config(raw, name="--config-json")
    else:
        cfg = load_config(args.config)
    return config_slice(cfg, stage.config_keys, args.model)


def stage_function(stage: Stage) -> Callable[..., Any]:
    """Import ``nfp_steps.<module>`` lazily and return the stage's function."""
    module_name, _, func_name = stage.func.partition(":")
    try:
        module = importlib.import_module(f"nfp_steps.{module_name}")
    except ImportError as exc:
        raise StageError(
            f"stage {stage.name!r}: cannot import nfp_steps.{module_name}: {exc}"
        ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise StageError(
            f"stage {stage.name!r}: nfp_steps.{module_name} has no function {func_name}"
        )
    return func


def downstream(name: str) -> set[str]:
    """``name`` and every stage that (transitively) reads its store."""
    out = {name}
    grew = True
    while grew:
        grew = False
        for other, spec in STAGES.items():
            if other not in out and out & set(spec.inputs):
                out.add(other)
                grew = True
    return out


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(args: argparse.Namespace, report: Reporter) -> dict:
    """Run the stage; return the manifest written."""
    from nfp_steps.stage_specs import StageResult
    from nfp_steps.storage import manifest_name, read_stage, write_stage

    stage = STAGES[args.stage]
    cfg = stage_config(args, stage)
    folder = args.results / args.model
    # A rerun invalidates the previous result at once, and the results of every stage that
    # depends on it: if this run fails, nothing stale (manifest or report file) is left to be
    # mistaken for a result of the current config. A later run redoes what is missing.
    for name in sorted(downstream(stage.name)):
        (folder / manifest_name(name)).unlink(missing_ok=True)
        for f in STAGES[name].files:
            (folder / f).unlink(missing_ok=True)

    t0 = time.perf_counter()
    inputs, input_manifests = {}, {}
    for up in stage.inputs:
        report.step(f"reading {up}")
        inputs[up] = read_stage(folder, up)
        input_manifests[up] = _file_sha256(folder / manifest_name(up))
    t_read = time.perf_counter() - t0

    func = stage_function(stage)
    report.step(f"computing {stage.name}")
    t0 = time.perf_counter()
    result = func(inputs, cfg, args.model)
    t_compute = time.perf_counter() - t0
    if not isinstance(result, StageResult):
        raise StageError(f"stage {stage.name!r} returned {type(result).__name__}, not StageResult")
    if set(result.files) != set(stage.files):
        raise StageError(
            f"stage {stage.name!r} returned files {sorted(result.files)}, "
            f"expected {sorted(stage.files)}"
        )

    report.step(f"writing {stage.name}.zarr")
    code = code_digest(stage.modules)
    meta = {
        "model": args.model,
        "config": cfg,
        "config_digest": digest(cfg),
        "code_digest": code,
        "modules": sorted(set(stage.modules)),
        "inputs": input_manifests,
        "timing": {"read_s": round(t_read, 6), "compute_s": round(t_compute, 6)},
    }
    return write_stage(folder, stage.name, result, meta)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print("Error: --threads must be at least 1", file=sys.stderr)
            return 1
        for var in THREAD_VARS:  # before numpy/torch are imported
            os.environ[var] = str(args.threads)
    try:
        report = Reporter(f"{args.model}/{args.stage}", args.log)
    except OSError as exc:
        print(f"Error: cannot open the log file {args.log}: {exc}", file=sys.stderr)
        return 1
    from nfp_steps import progress

    progress.LOG = report.log  # the long loops' progress lines go to the job's log too
    try:
        from nfp_steps.model import ModelError
        from nfp_steps.storage import StorageError

        user_errors: tuple[type[BaseException], ...] = (
            ModelError, ConfigError, StorageError, StageError, ValueError, OSError,
        )
        try:
            manifest = run(args, report)
        except user_errors as exc:
            if os.environ.get("NFP_TRACEBACK"):
                raise
            report.error(str(exc))
            return 1
        except KeyboardInterrupt:
            report.error("interrupted")
            return 130
        except Exception as exc:
            if os.environ.get("NFP_TRACEBACK"):
                raise
            report.internal_error(exc)
            return 1
        timing = manifest["timing"]
        total = sum(v for v in timing.values() if isinstance(v, int | float))
        report.step(f"done ({len(manifest['arrays'])} arrays, {total:.2f}s)")
        return 0
    finally:
        progress.LOG = None  # the log closes now: later loops in this process must not use it
        report.close()


if __name__ == "__main__":
    sys.exit(main())
