"""Results archives: one model's results, hashed, with the config, package versions and code.

``create_archive(results/<model>, X.tar.gz)`` writes a gzip'd tar with everything under one
folder named after the model::

    <model>/results/...        every file of results/<model>/ (stores, manifests, tables, plots,
                               benchmarks); hidden files (temp stores, timestamps) left out
    <model>/logs/...           the stage logs (logs/<model>/), when found
    <model>/config.yaml        the config file, when given and checked to reproduce every stage's
                               config slice (so it is the config the results were made with)
    <model>/config.used.json   the validated config slice each stage ran with (from its manifest)
    <model>/versions.json      Python, platform and every installed distribution (pip-freeze-like)
    <model>/code.json          nfp_steps version, git commit (and whether the tree was dirty), and
                               each stage's code digest
    <model>/MANIFEST.json      sha256 and size of every member above, and the sha256 of every
                               array of every stage store (as the stage manifests hold them)

Every store is checked against its stage manifest before it is archived, so an archive never
holds an edited result. ``verify_archive`` re-hashes every member and every array (the stores
are extracted to a temporary folder and read with their hashes checked).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ARCHIVE_FORMAT = "nfp-results-archive/1"
MANIFEST = "MANIFEST.json"
_CHUNK = 1 << 20


class ArchiveError(RuntimeError):
    """The archive cannot be written (bad results folder, existing output, ...)."""


class ArchiveUnreadable(ArchiveError):
    """The file is not a readable NFP results archive (``nfp archive --verify`` exits 2)."""


class ArchiveMismatch(ArchiveError):
    """A member or array no longer matches its recorded sha256 (``--verify`` exits 1)."""


# ---- metadata ---------------------------------------------------------------------------------
def package_versions() -> dict[str, Any]:
    """Python, platform and ``name==version`` of every installed distribution, sorted."""
    from importlib.metadata import distributions

    dists = sorted({f"{d.metadata['Name']}=={d.version}" for d in distributions()
                    if d.metadata["Name"]}, key=str.lower)
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "packages": dists}


def code_version() -> dict[str, Any]:
    """nfp_steps' version and, when the package sits in a git clone, its commit and dirtiness."""
    from nfp_steps import __version__
    from nfp_steps.config import PACKAGE_DIR

    out: dict[str, Any] = {"nfp_version": __version__, "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(["git", "-C", str(PACKAGE_DIR), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=30)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(PACKAGE_DIR.parent), "status", "--porcelain", "--",
                 "nfp_steps", "workflow", "Snakefile"],
                capture_output=True, text=True, timeout=30)
            out["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass  # no git: the version (and the stage code digests) still identify the code
    return out


def _sha256_file(path: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def _visible_files(folder: Path) -> Iterator[Path]:
    """Regular files under ``folder``, sorted, none with a hidden path component."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_symlink():
            raise ArchiveError(f"{path}: symbolic links are not archived (copy the file instead)")
        if path.is_file():
            yield path


# ---- writing ----------------------------------------------------------------------------------
def config_mismatch(config: str | os.PathLike, model: str, used: dict[str, Any]) -> str | None:
    """Why ``config`` is not the config the stages ran with (None if it is).

    ``used`` maps each stage to the config slice its manifest recorded; the file is validated
    (defaults filled in) and sliced the same way, so a file differing only in defaults matches.
    """
    from nfp_steps.config import ConfigError, config_slice, load_config
    from nfp_steps.stage_specs import STAGES

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        return str(exc)
    for stage, recorded in sorted(used.items()):
        if stage not in STAGES or recorded is None:
            continue
        try:
            mine = config_slice(cfg, STAGES[stage].config_keys, model)
        except ConfigError as exc:
            return f"stage {stage!r}: {exc}"
        if mine != recorded:
            return f"stage {stage!r} ran with {json.dumps(recorded, sort_keys=True)}"
    return None


def create_archive(results: str | os.PathLike, output: str | os.PathLike,
                   config: str | os.PathLike | None = None,
                   logs: str | os.PathLike | None = None, force: bool = False) -> dict:
    """Archive ``results`` (a ``results/<model>`` folder) into ``output``; return the MANIFEST.

    Raises :class:`ArchiveError` (naming the file) when the folder holds no stage manifest,
    a store does not match its manifest, ``config`` is not the config the stages ran with
    (:func:`config_mismatch`), or ``output`` exists and ``force`` is false.
    """
    from nfp_steps.storage import MANIFEST_SUFFIX, StorageError, read_manifest, read_stage

    results, output = Path(results), Path(output)
    if not results.is_dir():
        raise ArchiveError(f"{results}: no such results folder (expected results/<model>)")
    model = results.resolve().name
    stages = sorted(p.name[: -len(MANIFEST_SUFFIX)] for p in results.glob(f"*{MANIFEST_SUFFIX}"))
    if not stages:
        raise ArchiveError(f"{results}: no stage manifest (*{MANIFEST_SUFFIX}); run the workflow "
                           "first (snakemake --cores 8)")
    if output.exists() and not force:
        raise ArchiveError(f"{output} exists; use --force to replace it")
    try:
        output.resolve().relative_to(results.resolve())
        raise ArchiveError(f"{output}: the archive cannot be written inside {results}")
    except ValueError:
        pass

    arrays, used, code = {}, {}, {}
    for stage in stages:
        try:
            read_stage(results, stage)  # every array re-hashed against the stage manifest
            manifest = read_manifest(results, stage)
        except StorageError as exc:
            raise ArchiveError(f"not archived: {exc}") from None
        arrays[stage] = {name: a["sha256"] for name, a in manifest["arrays"].items()}
        used[stage] = manifest.get("config")
        code[stage] = manifest.get("code_digest")

    if config is not None:
        why = config_mismatch(config, model, used)
        if why is not None:
            raise ArchiveError(f"{config} is not the config these results were made with "
                               f"({why}); give the config file used, or none (config.used.json "
                               "always holds what every stage ran with)")

    members: list[tuple[str, Path | bytes]] = [
        (f"results/{p.relative_to(results).as_posix()}", p) for p in _visible_files(results)]
    if logs is not None and Path(logs).is_dir():
        members += [(f"logs/{p.relative_to(logs).as_posix()}", p)
                    for p in _visible_files(Path(logs))]
    if config is not None:
        members.append(("config.yaml", Path(config).read_bytes()))
    members.append(("config.used.json", _json_bytes(used)))
    members.append(("versions.json", _json_bytes(package_versions())))
    members.append(("code.json", _json_bytes({**code_version(), "stage_code_digests": code})))

    files = {}
    for name, src in members:
        if isinstance(src, bytes):
            files[name] = {"sha256": hashlib.sha256(src).hexdigest(), "bytes": len(src)}
        else:
            sha, n = _sha256_file(src)
            files[name] = {"sha256": sha, "bytes": n}
    manifest = {"format": ARCHIVE_FORMAT, "model": model,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "stages": stages, "files": files, "arrays": arrays}
    members.append((MANIFEST, _json_bytes(manifest)))

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for name, src in members:
                info = tarfile.TarInfo(f"{model}/{name}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if isinstance(src, bytes):
                    info.size, info.mtime, info.mode = len(src), int(time.time()), 0o644
                    tar.addfile(info, io.BytesIO(src))
                else:
                    st = src.stat()
                    info.size, info.mtime, info.mode = st.st_size, int(st.st_mtime), 0o644
                    with open(src, "rb") as fh:
                        tar.addfile(info, fh)
                    if _sha256_file(src)[0] != files[name]["sha256"]:
                        raise ArchiveError(f"{src} changed while it was being archived")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")


# ---- verifying --------------------------------------------------------------------------------
def _read_manifest(tar: tarfile.TarFile, path: Path) -> tuple[str, dict]:
    names = [m.name for m in tar.getmembers() if m.name.endswith(f"/{MANIFEST}")
             and m.name.count("/") == 1]
    if len(names) != 1:
        raise ArchiveUnreadable(f"{path}: not an NFP results archive (expected one "
                                f"<model>/{MANIFEST}, found {len(names)})")
    fh = tar.extractfile(names[0])
    try:
        manifest = json.loads(fh.read().decode("utf-8")) if fh else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveUnreadable(f"{path}: {names[0]} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise ArchiveUnreadable(f"{path}: {names[0]} is not an {ARCHIVE_FORMAT} manifest")
    return names[0].split("/", 1)[0], manifest


def verify_archive(path: str | os.PathLike) -> dict:
    """Re-check every member's and every array's sha256; return the archive's MANIFEST.

    Raises :class:`ArchiveUnreadable` if ``path`` is not a readable archive and
    :class:`ArchiveMismatch` naming the first member or array that does not match.
    """
    from nfp_steps.storage import StorageError, read_manifest, read_stage

    path = Path(path)
    try:
        with tarfile.open(path, "r:gz") as tar:
            prefix, manifest = _read_manifest(tar, path)
            expected: dict = manifest.get("files", {})
            seen: set[str] = set()
            for member in tar.getmembers():
                if member.isdir():
                    continue
                name = member.name.removeprefix(f"{prefix}/")
                if name == MANIFEST:
                    continue
                if not member.isfile() or not member.name.startswith(f"{prefix}/"):
                    raise ArchiveMismatch(f"{path}: unexpected member {member.name}")
                if name not in expected:
                    raise ArchiveMismatch(f"{path}: {member.name} is not in {MANIFEST}")
                h = hashlib.sha256()
                fh = tar.extractfile(member)
                for block in iter(lambda fh=fh: fh.read(_CHUNK), b""):
                    h.update(block)
                if h.hexdigest() != expected[name]["sha256"]:
                    raise ArchiveMismatch(f"{path}: {member.name} does not match its sha256 in "
                                          f"{MANIFEST}")
                seen.add(name)
            missing = sorted(set(expected) - seen)
            if missing:
                raise ArchiveMismatch(f"{path}: {prefix}/{missing[0]} is listed in {MANIFEST} "
                                      "but missing from the archive")
            with tempfile.TemporaryDirectory(prefix="nfp-verify-") as tmp:
                results = [m for m in tar.getmembers()
                           if m.name.startswith(f"{prefix}/results/") and m.isfile()]
                tar.extractall(tmp, members=results, filter="data")
                folder = Path(tmp) / prefix / "results"
                for stage, arrays in sorted(manifest.get("arrays", {}).items()):
                    try:
                        read_stage(folder, stage)  # re-hashes every array of the store
                        recorded = read_manifest(folder, stage)["arrays"]
                    except StorageError as exc:
                        raise ArchiveMismatch(f"{path}: {prefix}/results: {exc}") from None
                    for name, sha in sorted(arrays.items()):
                        if recorded.get(name, {}).get("sha256") != sha:
                            raise ArchiveMismatch(
                                f"{path}: stage {stage!r}: array {name!r} does not match its "
                                f"sha256 in {MANIFEST}")
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError, zlib.error) as exc:
        raise ArchiveUnreadable(f"{path}: cannot read the archive ({type(exc).__name__}: "
                                f"{exc})") from None
    return manifest
