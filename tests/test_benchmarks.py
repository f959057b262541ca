"""The benchmark scripts still run (at toy sizes; they report numbers and assert no times)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script, args, expect", [
    ("bench_pipeline.py", ["--layers", "2", "--heads", "2", "--width", "16", "--vocab", "40",
                           "--seq-len", "8", "--local-cert"], "rigorous stages / forward"),
    ("bench_nfpt_parse.py", ["--scale", "0.002"], "MB/s"),
    ("bench_opnorm.py", ["--heads", "1"], "cholesky"),
])
def test_benchmark_runs(script, args, expect):
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert expect in proc.stdout
