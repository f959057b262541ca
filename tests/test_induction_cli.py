"""``nfp induction`` on the shipped model: the original's blocks, with the stores' numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nfp_steps.cli import main

MODEL = Path(__file__).resolve().parents[1] / "models" / "nfp-toy"


@pytest.fixture(scope="module")
def diag_output():
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["induction", str(MODEL), "-v", "-d", "--diagTop", "2", "--seqLen", "16"]) == 0
    return buf.getvalue()


def test_diagnostic_blocks_are_printed(diag_output):
    out = diag_output
    for header in ("LAYER NORM DIAGNOSTICS (PI vs rigorous)",
                   "RECT-GRAM DIAGNOSTICS (MLP layer 0 weights)",
                   "DIAGNOSTICS (ε decomposition) for top-2 candidates"):
        assert header in out
    assert len(re.findall(r"^Candidate L\dH\d -> L\dH\d$", out, re.M)) == 2
    # every layer line has lb <= ub (both rigorous) and PI close to lb from above
    for m in re.finditer(r"L\d: PI≈([\d.]+)  ub=([\d.]+)  ub/PI=\S+  lb=([\d.]+)", out):
        pi, ub, lb = map(float, m.groups())
        assert lb <= ub and lb <= pi * (1 + 1e-6)
    # the head block names the bound actually used, never above its candidates
    for m in re.finditer(r"qkOpBoundUsed  = ([\d.]+).*\n    qkCandidates   = (.*)", out):
        used = float(m.group(1))
        cands = [float(v.split("=")[1]) for v in m.group(2).split(" / ")]
        assert used <= min(cands) * (1 + 1e-6)


def test_adaptive_flags_print_the_scheduler(capsys):
    assert main(["induction", str(MODEL), "-v", "--seqLen", "16", "--adaptive",
                 "--adaptiveScope", "all", "--targetSlack", "1e9", "--krylovSteps", "2"]) == 0
    out = capsys.readouterr().out
    assert "ADAPTIVE SCHEDULER" in out
    assert "krylovSteps=2 scope=all" in out
    assert "  stop: target" in out  # a huge target is met at once
    with pytest.raises(SystemExit) as info:  # usage error: exit code 1 (2 = no target)
        main(["induction", str(MODEL), "--seqLen", "16", "--adaptiveScope", "mlp"])
    assert info.value.code == 1
