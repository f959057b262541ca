"""The stage functions end to end in memory on tiny HF checkpoints; layer bounds vs autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_torch_gpt2 import hf_model

from nfp_steps.config import load_config
from nfp_steps.pipeline import run_in_memory

pytest.importorskip("transformers")


def layer_fn(w, layer: int):
    """x ↦ block_l(x) in torch (torch_gpt2's blocks, themselves tested against transformers)."""
    from nfp_steps import torch_gpt2 as T

    p = T.weights_to_torch_params(w)

    def f(x):
        z1 = T.layer_norm(x, p["ln1_g"][layer], p["ln1_b"][layer], w.eps)
        y = x + T.attention(p, layer, z1)[0]
        z2 = T.layer_norm(y, p["ln2_g"][layer], p["ln2_b"][layer], w.eps)
        return y + T.mlp(p, layer, z2, w.gelu_kind)

    return f


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    m = hf_model(31, 3, 2, 8, 13, 16, "gelu_new", 12)
    path = tmp_path_factory.mktemp("hf") / "tiny"
    m.save_pretrained(path)
    cfg = load_config({"models": {"tiny": str(path)}, "prompt": {"seq_len": 12, "seed": 5}})
    return m, cfg, run_in_memory(cfg, "tiny", until="report")


def test_all_stages_produce_outputs(tiny):
    _, _, res = tiny
    for name in ("export", "prompt", "forward", "layernorm", "heads", "layers", "scores",
                 "ranking", "verify", "certificate", "report"):
        assert name in res
    assert res["ranking"].files["ranking.tsv"].startswith("rank\tl1\th1\tl2\th2")
    assert "Target: induction_history(" in res["ranking"].files["induction.txt"]
    assert "nfp-certificate" in res["certificate"].files["certificate.json"]


def test_layer_constant_bounds_the_autograd_jacobian(tiny):
    from nfp_steps.io.zarr_store import dataset_to_weights

    _, _, res = tiny
    w = dataset_to_weights(res["export"].dataset)
    fw = res["forward"].dataset
    c_ub = res["layers"].dataset["C_ub"].values
    x_all = fw["x"].values
    for layer in range(len(c_ub)):
        x = torch.tensor(x_all[layer])
        f = layer_fn(w, layer)
        with torch.no_grad():
            assert torch.allclose(f(x), torch.tensor(x_all[layer + 1]), rtol=1e-10, atol=1e-10)
        n, d = x.shape
        j = torch.autograd.functional.jacobian(f, x).reshape(n * d, n * d).numpy()
        truth = float(np.linalg.norm(j - np.eye(n * d), 2))
        assert truth <= c_ub[layer], (layer, truth, c_ub[layer])
        c_lb = res["layers"].dataset["C_lb"].values[layer]
        assert 0 < c_lb <= truth * (1 + 1e-12), (layer, c_lb, truth)


def test_layernorm_stage_rows_bound_the_true_jacobians(tiny):
    m, _, res = tiny
    fw = res["forward"].dataset
    ln = res["layernorm"].dataset
    ln_1 = m.transformer.h[0].ln_1
    for r, x in enumerate(fw["x"].values[0]):
        xt = torch.tensor(x)
        j = torch.autograd.functional.jacobian(ln_1, xt)
        assert float(torch.linalg.matrix_norm(j, 2)) <= ln["ln1_row_ub"].values[0, r]
    assert np.all(ln["ln1_ub"].values <= ln["ln1_global_ub"].values)
    assert math.isfinite(float(ln["ln1_ub"].values.max()))


def test_diagnostics_sit_below_the_rigorous_bounds(tiny):
    """The heuristic autograd diagnostics are close to the truth and never above the ub; the
    heads stage's bounds bracket the autograd head Jacobians."""
    from nfp_steps.io.zarr_store import dataset_to_weights
    from nfp_steps.jacobian_diag import head_jacobian_norms, layer_residual_pi

    _, _, res = tiny
    w = dataset_to_weights(res["export"].dataset)
    fw, hd, ly = res["forward"].dataset, res["heads"].dataset, res["layers"].dataset
    for layer in range(w.n_layers):
        x = fw["x"].values[layer]
        f = layer_fn(w, layer)
        n, d = x.shape
        j = torch.autograd.functional.jacobian(f, torch.tensor(x)).reshape(n * d, n * d).numpy()
        truth = float(np.linalg.norm(j - np.eye(n * d), 2))
        pi = layer_residual_pi(w, x, layer, iters=60)
        assert 0.9 * truth <= pi <= truth * (1 + 1e-9)
        assert ly["C_pi"].values[layer] <= ly["C_ub"].values[layer]
        for h in range(w.n_heads):
            t = head_jacobian_norms(w, fw["z1"].values[layer], layer, h)
            assert hd["value_lb"].values[layer, h] <= t["value_autograd"] * (1 + 1e-12)
            assert t["value_autograd"] <= hd["value_ub"].values[layer, h]
            assert t["pattern_autograd"] <= hd["pattern_ub"].values[layer, h] * (1 + 1e-9)


@pytest.mark.parametrize("scope", ["layernorm", "all"])
def test_adaptive_layers_stay_valid_and_flags_matter(tiny, scope):
    """With the scheduler: C_ub still bounds the autograd truth, only in-scope factors move,
    krylov_steps changes the lower bounds, and a rerun is identical."""
    import copy

    from nfp_steps.io.zarr_store import dataset_to_weights
    from nfp_steps.stages import layers as stage

    _, cfg, res = tiny
    inputs = {k: v.dataset for k, v in res.items()}
    c = copy.deepcopy(cfg)
    c["bounds"]["layers"]["adaptive"].update(enabled=True, scope=scope, target_slack=1.0)
    out = stage.run(inputs, c, "tiny").dataset
    again = stage.run(inputs, c, "tiny").dataset
    assert (out["C_ub"].values == again["C_ub"].values).all()
    assert list(out["scheduler_log"].values) == list(again["scheduler_log"].values)
    moved = {line.split(": ")[1].split(" tier")[0] for line in out["scheduler_log"].values}
    assert moved and (moved <= {"ln1", "ln2"} if scope == "layernorm" else "heads" in moved)
    w = dataset_to_weights(res["export"].dataset)
    x_all = res["forward"].dataset["x"].values
    for layer in range(w.n_layers):
        n, d = x_all[layer].shape
        j = torch.autograd.functional.jacobian(layer_fn(w, layer), torch.tensor(x_all[layer]))
        truth = float(np.linalg.norm(j.reshape(n * d, n * d).numpy() - np.eye(n * d), 2))
        assert out["C_lb"].values[layer] <= truth <= out["C_ub"].values[layer]
    c["bounds"]["layers"]["krylov_steps"] = 1
    one = stage.run(inputs, c, "tiny").dataset
    assert (one["C_lb"].values != out["C_lb"].values).any()


def test_every_head_term_lies_between_its_bounds(tiny):
    """value and pattern terms of every head (dense autograd) within [lb, ub] from the stores."""
    from nfp_steps.io.zarr_store import dataset_to_weights
    from nfp_steps.jacobian_diag import head_jacobian_norms

    _, _, res = tiny
    w = dataset_to_weights(res["export"].dataset)
    z1, hd = res["forward"].dataset["z1"].values, res["heads"].dataset
    for layer in range(w.n_layers):
        for h in range(w.n_heads):
            t = head_jacobian_norms(w, z1[layer], layer, h)
            assert hd["value_lb"].values[layer, h] <= t["value_autograd"] * (1 + 1e-12)
            assert t["value_autograd"] <= hd["value_ub"].values[layer, h]
            assert hd["pattern_lb"].values[layer, h] <= t["pattern_autograd"] * (1 + 1e-9)
            assert t["pattern_autograd"] <= hd["pattern_ub"].values[layer, h]
            assert hd["pattern_lb"].values[layer, h] >= 0.5 * t["pattern_autograd"]  # tight
