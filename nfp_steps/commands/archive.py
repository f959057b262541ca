"""``nfp archive``: bundle one model's results with hashes, config, versions and code version;
``nfp archive --verify``: re-check every hash of such an archive."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nfp_steps.commands.output import add_output_flags, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "archive",
        help="archive results/<model> (hashes, config, versions, code), or --verify an archive",
        description="Write RESULTS (a results/<model> folder) to --output as .tar.gz: every "
                    "result file, the stage logs, the config, the validated config each stage "
                    "used, the package versions, the code version (git commit) and a MANIFEST "
                    "with the sha256 of every file and array. Every store is checked against "
                    "its manifest first. --verify ARCHIVE re-checks every hash: exit 0 if all "
                    "match, 1 on a mismatch (named), 2 if the file is not a readable archive.",
    )
    p.add_argument("results", nargs="?", type=Path, help="results folder of one model, "
                   "e.g. results/nfp-toy")
    p.add_argument("--output", "-o", type=Path, help="archive to write (.tar.gz)")
    p.add_argument("--config", type=Path,
                   help="config file to include; it must reproduce every stage's config slice "
                   "(default: ./config.yaml if it exists and does)")
    p.add_argument("--logs", type=Path,
                   help="stage logs to include (default: ./logs/<model> if it exists)")
    p.add_argument("--force", action="store_true", help="replace an existing --output")
    p.add_argument("--verify", type=Path, metavar="ARCHIVE",
                   help="verify ARCHIVE instead of writing one")
    add_output_flags(p, output=False)  # --json; -o/--output is the archive itself
    p.set_defaults(func=run)


def _default_config_mismatch(results: Path, config: Path) -> str | None:
    """config_mismatch for the implicit ./config.yaml (None also when nothing can be compared)."""
    from nfp_steps.archive import config_mismatch
    from nfp_steps.storage import MANIFEST_SUFFIX, StorageError, read_manifest

    used = {}
    for path in sorted(results.glob(f"*{MANIFEST_SUFFIX}")):
        stage = path.name[: -len(MANIFEST_SUFFIX)]
        try:
            used[stage] = read_manifest(results, stage).get("config")
        except StorageError:
            continue  # create_archive reports it
    return config_mismatch(config, results.resolve().name, used)


def run(args: argparse.Namespace) -> int:
    from nfp_steps.archive import (
        ArchiveError,
        ArchiveMismatch,
        ArchiveUnreadable,
        create_archive,
        verify_archive,
    )
    from nfp_steps.cli import UsageError

    if args.verify is not None:
        if args.results is not None or args.output is not None:
            raise UsageError("nfp archive --verify ARCHIVE takes no RESULTS or --output")
        try:
            manifest = verify_archive(args.verify)
        except ArchiveUnreadable as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 2
        except ArchiveMismatch as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
        n_arrays = sum(len(a) for a in manifest["arrays"].values())
        emit(f"OK: {args.verify}: model {manifest['model']}, {len(manifest['files'])} files and "
             f"{n_arrays} arrays of {len(manifest['stages'])} stages match their sha256",
             {"command": "archive", "mode": "verify", "archive": str(args.verify),
              "status": "ok", "model": manifest["model"], "n_files": len(manifest["files"]),
              "n_arrays": n_arrays, "stages": list(manifest["stages"])}, args)
        return 0

    if args.results is None or args.output is None:
        raise UsageError("nfp archive needs RESULTS and --output (or --verify ARCHIVE)")
    config = args.config
    if config is not None and not config.is_file():
        raise UsageError(f"--config {config}: no such file")
    if config is None and Path("config.yaml").is_file():
        # ./config.yaml goes in only if it is the config the results were made with
        config = Path("config.yaml")
        why = _default_config_mismatch(args.results, config)
        if why is not None:
            print(f"note: config.yaml not included: it is not the config these results were made "
                  f"with ({why}); config.used.json holds what every stage ran with",
                  file=sys.stderr)
            config = None
    logs = args.logs
    if logs is None:
        logs = Path("logs") / args.results.resolve().name
    elif not logs.is_dir():
        raise UsageError(f"--logs {logs}: no such folder")
    try:
        manifest = create_archive(args.results, args.output, config=config, logs=logs,
                                  force=args.force)
    except ArchiveError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    emit(f"wrote {args.output}: model {manifest['model']}, {len(manifest['files'])} files, "
         f"{len(manifest['stages'])} stages (config: {config or 'none'})",
         {"command": "archive", "mode": "write", "archive": str(args.output),
          "model": manifest["model"], "n_files": len(manifest["files"]),
          "stages": list(manifest["stages"]), "config": str(config) if config else None}, args)
    return 0
