"""The toy-model trainer: settings, circuit scores, reproducibility, the written folder."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from nfp_steps import data
from nfp_steps.io.hf import read_hf_folder
from nfp_steps.train import (
    ToyConfig,
    induction_scores,
    prev_token_scores,
    train_toy,
    write_toy_folder,
)

TINY = ToyConfig(seed=3, steps=12, mlp_steps=6, layers=2, width=16, heads=2, vocab=16,
                 seq_len=16, batch=4, warmup=2, eval_every=6, eval_batches=1)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"layers": 1}, "--layers must be >= 2"),
        ({"width": 18, "heads": 4}, "--width 18 is not divisible by --heads 4"),
        ({"steps": 0}, "--steps must be a positive integer"),
        ({"mlp_steps": -1}, "--mlp-steps must be >= 0"),
        ({"lr": float("nan")}, "--lr must be a positive number"),
        ({"qk_init_std": 0.0}, "--qk-init-std must be a positive number"),
        ({"seq_len": 4}, "--seq-len must be >= 8"),
    ],
)
def test_bad_settings_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **change).validate()


def test_scores_on_constructed_patterns():
    """A pure previous-token pattern scores prevTok 1; attention on the successor of the
    earlier occurrence scores indScore 1; uniform attention scores neither."""
    rng = np.random.default_rng(0)
    tokens = data.repeated_segment_tokens(rng, 2, 24, 50, copies=2)
    B, n = tokens.shape
    prev = np.zeros((B, 1, 2, n, n))
    prev[:, 0, :, 0, 0] = 1.0
    for q in range(1, n):
        prev[:, 0, :, q, q - 1] = 1.0
    assert np.allclose(prev_token_scores(prev), 1.0)

    k = data.last_earlier_occurrence(tokens)
    ind = np.zeros((B, 1, 1, n, n))
    for b in range(B):
        for q in range(n):
            ind[b, 0, 0, q, k[b, q] + 1 if k[b, q] >= 0 else q] = 1.0
    assert np.allclose(induction_scores(ind, tokens), 1.0)

    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    uni = np.broadcast_to(uniform, (B, 1, 1, n, n))
    assert prev_token_scores(uni)[0, 0] < 0.2
    assert induction_scores(uni, tokens)[0, 0] < 0.3


def test_training_is_reproducible_and_the_folder_is_a_gpt2_checkpoint(tmp_path):
    transformers = pytest.importorskip("transformers")
    lines: list[str] = []
    a = train_toy(TINY, log=lines.append)
    b = train_toy(TINY, log=lambda _: None)
    for key in a.params:
        assert torch.equal(a.params[key], b.params[key]), key
    assert any(line.startswith("[attn 6/12") for line in lines)
    assert any(line.startswith("[mlp 6/6") for line in lines)

    out = write_toy_folder(a, TINY, tmp_path / "toy")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["TRAINING.md", "config.json", "model.safetensors"]
    sha = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    md = (out / "TRAINING.md").read_text()
    assert sha in md and TINY.command(str(tmp_path / "toy")) in md
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["n_layer"], cfg["n_embd"], cfg["n_head"], cfg["vocab_size"]) == (2, 16, 2, 16)

    # transformers reads the folder and computes the same logits as the trained parameters
    w = read_hf_folder(out)
    assert w.attrs["weight_file"] == "model.safetensors"
    hf = transformers.GPT2LMHeadModel.from_pretrained(out).double().eval()
    tokens = data.repeated_segment_tokens(np.random.default_rng(1), 2, 16, 16)
    from nfp_steps.torch_gpt2 import forward

    p64 = a.params.replace({k: v.double() for k, v in a.params.items()})
    ours = forward(p64, tokens).logits
    with torch.no_grad():
        theirs = hf(torch.as_tensor(tokens)).logits
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-10)


def test_cli_refuses_bad_flag_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nfp_steps.cli", "train-toy", "--output", str(tmp_path / "m"),
         "--layers", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: --layers must be >= 2")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


def test_cli_refuses_to_overwrite_an_output_without_force(tmp_path, capsys):
    from nfp_steps.cli import main

    out = tmp_path / "m"
    tiny = ["--steps", "2", "--mlp-steps", "0", "--width", "8", "--heads", "2", "--vocab", "16",
            "--seq-len", "16", "--batch", "4", "--eval-batches", "1", "--eval-every", "1", "-q"]
    assert main(["train-toy", "--output", str(out), *tiny]) == 0
    (out / "TRAINING.md").write_text("mine")
    assert main(["train-toy", "--output", str(out), "--seed", "1", *tiny]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert (out / "TRAINING.md").read_text() == "mine"  # untouched
    assert main(["train-toy", "--output", str(out), "--force", "--seed", "1", *tiny]) == 0
    assert "--seed 1" in (out / "TRAINING.md").read_text()
    other = tmp_path / "notes"
    other.mkdir()
    assert main(["train-toy", "--output", str(other), "--force", *tiny]) == 1
    assert "not a Hugging Face model folder" in capsys.readouterr().err
