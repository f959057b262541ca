"""``nfp rope``: the bounds hold for the given sizes; bad sizes are errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nfp_steps.cli import main
from nfp_steps.rope import rope_jacobian


@pytest.mark.parametrize("n, pairs, theta", [(4, 8, 1e4), (16, 3, 10.0), (1, 1, 2.0)])
def test_bounds_hold_numerically(n, pairs, theta):
    jac = rope_jacobian(n, pairs, theta)
    row = np.abs(jac).sum(axis=1)
    assert row.max() <= math.sqrt(2) + 1e-12 <= 2
    assert np.allclose(np.linalg.svd(jac, compute_uv=False), 1.0, atol=1e-12)
    assert np.allclose(jac.T @ jac, np.eye(jac.shape[0]), atol=1e-12)


def test_tight_value_is_attained_at_45_degrees():
    # pairs=1 has frequency 1: position p rotates by p radians, and p mod π comes close to π/4
    # for some p < 400, where |cos| + |sin| = √2
    jac = rope_jacobian(400, 1, 10.0)
    assert np.abs(jac).sum(axis=1).max() > math.sqrt(2) - 1e-3


def test_cli_output_and_errors(capsys):
    assert main(["rope", "--seqLen", "4", "--pairs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("RoPE certificate (static):\n  seqLen=4, pairs=2, dim=4")
    assert "≤ 2" in out and "√2" in out and "Spectral norm: exactly 1" in out
    assert main(["rope", "--seqLen", "0"]) == 1
    assert "--seqLen and --pairs must be positive" in capsys.readouterr().err
    assert main(["rope", "--theta", "-1"]) == 1


def test_model_argument_is_accepted_and_said_unused(capsys, tmp_path):
    assert main(["rope", str(tmp_path)]) == 0
    assert f"Model: {tmp_path} (not read" in capsys.readouterr().out
    assert main(["rope", str(tmp_path / "missing.nfpt")]) == 1
    assert "model not found" in capsys.readouterr().err
