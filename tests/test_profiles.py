"""The profiles in workflow/profiles/ parse, plan every job, and give each rule its resources.

``snakemake -n --profile workflow/profiles/<name>`` in a working copy; the cluster profiles need
their executor plugins (``pip install -e '.[cluster]'``, which CI installs) and are skipped, with
the reason, only when a plugin is missing.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nfp_steps.stage_specs import STAGES

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "workflow" / "profiles"


def needs(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install -e '.[cluster]')")


def jobs(text: str) -> dict[str, dict[str, str]]:
    """{rule: resources} of every job a dry run prints (one model, so one job per rule)."""
    out = {}
    for block in re.split(r"\n(?=\[[^\n]*\d{4}\]\n)", text):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule:
            out[rule.group(1)] = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) \
                if res else {}
    return out


def dry_run(tmp_path: Path, profile: str, *extra: str) -> dict[str, dict[str, str]]:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(REPO / "Snakefile", work / "Snakefile")
    shutil.copytree(REPO / "workflow", work / "workflow")
    shutil.copytree(REPO / "models", work / "models")
    shutil.copy(REPO / ".test" / "config.yaml", work / "config.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", f"workflow/profiles/{profile}",
         *extra], cwd=work, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-5000:]
    assert f"Using profile workflow/profiles/{profile}" in text
    planned = jobs(text)
    assert set(STAGES) | {"summary"} <= set(planned), sorted(planned)
    return planned


def profile_resources(profile: str) -> tuple[dict, dict]:
    cfg = yaml.safe_load((PROFILES / profile / "config.yaml").read_text())
    return cfg.get("default-resources", {}), cfg.get("set-resources", {})


def test_default_profile(tmp_path):
    dry_run(tmp_path, "default")


def test_slurm_profile(tmp_path):
    needs("snakemake_executor_plugin_slurm")
    planned = dry_run(tmp_path, "slurm")
    default, per_rule = profile_resources("slurm")
    assert per_rule, "the slurm profile sets per-rule resources"
    for rule, resources in planned.items():
        if rule in ("all", "summary"):
            continue
        want = {**default, **per_rule.get(rule, {})}
        for key in ("mem_mb", "runtime"):
            assert resources.get(key) == str(want[key]), (rule, key, resources)


def test_kubernetes_profile(tmp_path):
    needs("snakemake_executor_plugin_kubernetes", "snakemake_storage_plugin_fs")
    # no shared file system on Kubernetes: inputs come from a storage provider; a local folder
    # (the fs plugin) stands in for the S3 bucket or volume a real cluster would use
    storage = tmp_path / "storage"
    shutil.copytree(REPO / "models", storage / "models")
    planned = dry_run(tmp_path, "kubernetes", "--default-storage-provider", "fs",
                      "--default-storage-prefix", str(storage))
    default, per_rule = profile_resources("kubernetes")
    for rule in STAGES:
        want = {**default, **per_rule.get(rule, {})}
        assert planned[rule].get("mem_mb") == str(want["mem_mb"]), (rule, planned[rule])
