"""The shipped embedded model has a genuine induction circuit, judged on non-periodic data.

Held-out sequences come from a seed the trainer never used (training: ``[seed, 0]``,
monitoring: ``[seed, 1]``), so the check is not the one the trainer selected its checkpoint on.
A periodic prompt could be solved by positional heads; these sequences copy segments to random,
unrelated distances, so only a previous-token -> induction mechanism predicts the copies.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from nfp_steps import data
from nfp_steps.io.hf import read_hf_folder
from nfp_steps.torch_gpt2 import weights_to_torch_params
from nfp_steps.train import (
    ABLATE_IND,
    ABLATION_MIN_NATS,
    IND_MIN,
    PREV_MIN,
    measure_circuit,
)

MODEL = Path(__file__).resolve().parents[1] / "models" / "nfp-toy"


@pytest.fixture(scope="module")
def weights():
    assert (MODEL / "config.json").is_file(), f"the shipped model is missing: {MODEL}"
    return read_hf_folder(MODEL)


@pytest.fixture(scope="module")
def report(weights):
    rng = np.random.default_rng(20261204)
    tokens = data.repeated_segment_tokens(rng, 128, int(weights.wpe.shape[0]), weights.vocab_size)
    assert not data.induction_targets(tokens)[0].all()  # random tokens in between, not a tiling
    return measure_circuit(weights_to_torch_params(weights), tokens)


def test_training_record_matches_the_weights(weights):
    md = (MODEL / "TRAINING.md").read_text()
    sha = hashlib.sha256((MODEL / "model.safetensors").read_bytes()).hexdigest()
    assert re.search(rf"sha256: `{sha}`", md), "TRAINING.md does not describe these weights"
    assert "Induction circuit: **formed**" in md
    assert weights.n_layers >= 2 and weights.d_mlp > 0
    assert np.abs(weights.W_out).max() > 0  # the MLPs were trained (phase 2), not left at zero


def test_early_layer_previous_token_head(report):
    lp, hp = report.prev_head
    assert lp < report.prev_tok.shape[0] - 1
    assert report.prev_tok[lp, hp] >= PREV_MIN


def test_later_layer_induction_head(report):
    li, hi = report.ind_head
    assert li > report.prev_head[0]
    assert report.ind_score[li, hi] >= IND_MIN


def test_ablating_the_induction_heads_costs_at_least_one_nat(report):
    assert report.ablated, f"no later-layer head with indScore >= {ABLATE_IND}"
    assert all(layer > report.prev_head[0] for layer, _ in report.ablated)
    assert report.ablation_increase >= ABLATION_MIN_NATS
    # the previous-token head matters too (the two heads form one circuit)
    assert report.prev_ablated_loss - report.loss >= 0.5


def test_default_run_ranks_the_circuit_first(report, capsys):
    """The main job's config (config.yaml) on the shipped model: the first ranked pair is the
    previous-token head -> an induction head of the held-out measurement; `nfp induction`
    prints the same first pair."""
    from nfp_steps.cli import main
    from nfp_steps.config import load_config
    from nfp_steps.pipeline import run_in_memory
    from nfp_steps.stages.ranking import ranking_rows

    cfg = load_config(MODEL.parents[1] / "config.yaml")
    assert cfg["prompt"]["kind"] == "repeated_segments"  # non-periodic, as the test data
    cfg["models"] = {"nfp-toy": str(MODEL)}
    res = run_in_memory(cfg, "nfp-toy", until="ranking")
    first = ranking_rows({k: r.dataset for k, r in res.items()}, cfg)[0]
    l1, h1, l2, h2 = first["l1"], first["h1"], first["l2"], first["h2"]
    assert (l1, h1) == report.prev_head
    assert report.ind_score[l2, h2] >= IND_MIN and (l2, h2) in report.ablated

    assert main(["induction", str(MODEL), "-v"]) == 0
    out = capsys.readouterr().out
    pair_lines = [line for line in out.splitlines() if " -> " in line and "| Mech:" in line]
    assert pair_lines[0].startswith(f"L{l1}H{h1} -> L{l2}H{h2} |")


def test_bounds_bracket_the_truth_on_the_shipped_model():
    """Trained weights: every head's value and pattern terms and every layer's J_l − I (dense
    float64 autograd) lie within their certified [lb, ub] on a short non-periodic prompt."""
    import torch

    from nfp_steps import torch_gpt2 as T
    from nfp_steps.config import load_config
    from nfp_steps.pipeline import run_in_memory

    cfg = load_config({"models": {"toy": str(MODEL)}, "prompt": {"seq_len": 12, "seed": 3}})
    res = run_in_memory(cfg, "toy", until="layers")
    hd, ly = res["heads"].dataset, res["layers"].dataset
    L, H = hd["value_ub"].shape
    for layer in range(L):
        for h in range(H):
            v, p = hd["value_autograd"].values[layer, h], hd["pattern_autograd"].values[layer, h]
            assert hd["value_lb"].values[layer, h] <= v * (1 + 1e-12)
            assert v <= hd["value_ub"].values[layer, h]
            assert hd["pattern_lb"].values[layer, h] <= p * (1 + 1e-9)
            assert p <= hd["pattern_ub"].values[layer, h]
    w = read_hf_folder(MODEL)
    params = T.weights_to_torch_params(w)
    x_all = res["forward"].dataset["x"].values
    for layer in range(L):
        def block(x, layer=layer):
            z1 = T.layer_norm(x, params["ln1_g"][layer], params["ln1_b"][layer], w.eps)
            y = x + T.attention(params, layer, z1)[0]
            z2 = T.layer_norm(y, params["ln2_g"][layer], params["ln2_b"][layer], w.eps)
            return y + T.mlp(params, layer, z2, w.gelu_kind)

        n, d = x_all[layer].shape
        j = torch.autograd.functional.jacobian(block, torch.tensor(x_all[layer]), vectorize=True)
        truth = float(np.linalg.norm(j.reshape(n * d, n * d).numpy() - np.eye(n * d), 2))
        assert ly["C_lb"].values[layer] <= truth <= ly["C_ub"].values[layer]
