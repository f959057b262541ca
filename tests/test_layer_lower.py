"""Certified layer lower bounds: the ball JVP contains the exact (J − I)v; lb ≤ ‖J − I‖₂ ≤ ub."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pipeline import layer_fn
from test_torch_gpt2 import hf_model, hf_to_weights

from nfp_steps.ball import Ball
from nfp_steps.layer_lower import gelu_deriv, krylov_vector, layer_lower_bound, residual_jvp_ball


def dense_residual_jacobian(w, layer, x):
    f = layer_fn(w, layer)
    n, d = x.shape
    j = torch.autograd.functional.jacobian(f, torch.tensor(x)).reshape(n * d, n * d).numpy()
    return j - np.eye(n * d)


@pytest.mark.parametrize("act, seed", [("gelu_new", 0), ("gelu", 1), ("gelu_new", 2)])
def test_ball_jvp_contains_the_product_and_lb_is_below_the_norm(act, seed):
    m = hf_model(seed, 2, 2, 8, 11, 10, act, 12)
    w = hf_to_weights(m)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((7, 8)) * 2 + 0.5
    for layer in range(w.n_layers):
        jm = dense_residual_jacobian(w, layer, x)
        v = rng.standard_normal(x.shape)
        ball = residual_jvp_ball(w, layer, x, v)
        ref = (jm @ v.ravel()).reshape(x.shape)  # float64 autograd: ~1e-15 relative noise
        slack = 1e-12 * np.abs(ref).max()
        assert np.all(np.abs(ref - ball.m) <= ball.r + slack)
        assert ball.r.max() <= 1e-9 * (1 + np.abs(ball.m).max())  # and the ball is tight
        truth = float(np.linalg.norm(jm, 2))
        for steps in (1, 4):
            lb = layer_lower_bound(w, layer, x, steps=steps)
            assert 0 < lb <= truth * (1 + 1e-12)
        assert layer_lower_bound(w, layer, x, steps=6) >= 0.95 * truth  # and tight


def test_more_krylov_steps_change_the_vector():
    m = hf_model(4, 2, 2, 8, 11, 10, "gelu_new", 12)
    w = hf_to_weights(m)
    x = np.random.default_rng(4).standard_normal((6, 8))
    a, b = krylov_vector(w, 0, x, 1), krylov_vector(w, 0, x, 4)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("kind", ["tanh", "exact"])
def test_gelu_derivative_ball_contains_mpmath(kind):
    import mpmath

    xs = np.array([-30.0, -3.2, -1.0, -1e-8, 0.0, 0.5, 1.5, 4.0, 25.0])
    g = gelu_deriv(Ball.exact(xs), kind)
    with mpmath.workprec(200):
        c = mpmath.sqrt(2 / mpmath.pi)
        a = mpmath.mpf("0.044715")
        for i, x in enumerate(xs):
            x = mpmath.mpf(float(x))
            if kind == "tanh":
                t = mpmath.tanh(c * (x + a * x**3))
                true = (1 + t) / 2 + x * (1 - t * t) * c * (1 + 3 * a * x**2) / 2
            else:
                true = mpmath.ncdf(x) + x * mpmath.npdf(x)
            assert abs(true - mpmath.mpf(float(g.m[i]))) <= mpmath.mpf(float(g.r[i]))


def test_mlp_input_bounds_cover_ln2_and_gelu_at_the_layer_input():
    from nfp_steps import torch_gpt2 as T
    from nfp_steps.layer_lower import mlp_input_bounds

    m = hf_model(6, 2, 2, 8, 11, 10, "gelu_new", 12)
    w = hf_to_weights(m)
    p = T.weights_to_torch_params(w)
    x = np.random.default_rng(6).standard_normal((7, 8)) * 3
    for layer in range(2):
        ln2_rows, g = mlp_input_bounds(w, layer, x)
        xt = torch.tensor(x)
        with torch.no_grad():
            y = xt + T.attention(p, layer, T.layer_norm(xt, p["ln1_g"][layer],
                                                        p["ln1_b"][layer], w.eps))[0]
        g2, b2 = p["ln2_g"][layer], p["ln2_b"][layer]

        def ln2(u, g2=g2, b2=b2):
            return T.layer_norm(u, g2, b2, w.eps)

        for r in range(x.shape[0]):
            j = torch.autograd.functional.jacobian(ln2, y[r])
            assert float(torch.linalg.matrix_norm(j, 2)) <= ln2_rows[r]
        pre = (T.layer_norm(y, p["ln2_g"][layer], p["ln2_b"][layer], w.eps)
               @ p["W_in"][layer] + p["b_in"][layer]).requires_grad_(True)
        gp = torch.autograd.grad(T.gelu(pre, "tanh").sum(), pre)[0]
        assert float(gp.abs().max()) <= g <= 1.13
        assert g <= float(gp.abs().max()) * (1 + 1e-9)  # tight


def test_huge_masked_logits_and_wide_enclosures_degrade_gracefully():
    """Regression (adversarial review): a future (masked) logit 1800 above the causal max must
    not reach exp; weights so large that the enclosures are too wide give lb = 0 and the
    input-free LN2/GELU′ bounds instead of an error."""
    from nfp_steps.bounds import GELU_DERIV_SUP, layernorm_global_ub
    from nfp_steps.layer_lower import head_pattern_lower_bound, mlp_input_bounds

    m = hf_model(8, 1, 1, 4, 5, 4, "gelu_new", 8)
    w = hf_to_weights(m)
    w.W_Q[0, 0] = 30.0 * np.eye(4)
    w.W_K[0, 0] = 30.0 * np.eye(4) + 30.0 * np.outer([0, 0, 1, -1], [1, -1, 0, 0])
    w.b_Q[:], w.b_K[:] = 0.0, 0.0
    x = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])
    assert head_pattern_lower_bound(w, 0, 0, x) >= 0.0
    lb = layer_lower_bound(w, 0, x, steps=2)
    truth = float(np.linalg.norm(dense_residual_jacobian(w, 0, x), 2))
    assert 0.0 <= lb <= truth * (1 + 1e-12)

    big = hf_model(9, 1, 2, 8, 5, 6, "gelu_new", 8)
    wb = hf_to_weights(big)
    rng = np.random.default_rng(9)
    for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"):
        arr = getattr(wb, name)
        arr[...] = rng.standard_normal(arr.shape) * 1e3
    xb = rng.standard_normal((5, 8))
    rows, g = mlp_input_bounds(wb, 0, xb)
    assert np.all(rows <= layernorm_global_ub(wb.ln2_g[0], wb.eps)) and g <= GELU_DERIV_SUP
    assert layer_lower_bound(wb, 0, xb, steps=1) >= 0.0
