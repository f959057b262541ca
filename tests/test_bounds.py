"""Every ub ≥ the truth and every lb ≤ it (dense SVD / torch autograd in float64).

Random, trained-like and adversarial inputs: near-one-hot softmax rows, near-constant and
huge-offset LayerNorm rows, rescaled weights, biases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nfp_steps import bounds as B
from nfp_steps import rigor as R


def spec(m: np.ndarray) -> float:
    return float(np.linalg.norm(m, 2))


# Operator norms (every candidate, the certified tight bound, lower bounds): test_opnorm.py


# ---- LayerNorm ------------------------------------------------------------------------------
def ln_jacobian_norm(x: np.ndarray, g: np.ndarray, eps: float) -> float:
    xt = torch.tensor(x, dtype=torch.float64)
    gt = torch.tensor(g, dtype=torch.float64)
    j = torch.autograd.functional.jacobian(
        lambda v: torch.nn.functional.layer_norm(v, (len(v),), gt, None, eps), xt
    )
    return float(torch.linalg.matrix_norm(j, 2))


def exact_variance(x: np.ndarray) -> float:
    from fractions import Fraction

    fx = [Fraction(float(v)) for v in x]
    mu = sum(fx) / len(fx)
    return float(sum((v - mu) ** 2 for v in fx) / len(fx))


@pytest.mark.parametrize(
    "kind", ["random", "constant", "near_constant", "huge_offset", "tiny", "spiky"]
)
def test_layernorm_bounds(kind):
    rng = np.random.default_rng(7)
    d = 16
    rows = {
        "random": rng.standard_normal((5, d)),
        "constant": np.full((3, d), 3.25),
        "near_constant": 1.0 + 1e-9 * rng.standard_normal((4, d)),
        "huge_offset": 40000.0 + rng.standard_normal((4, d)) * 1e-3,
        "tiny": 1e-200 * rng.standard_normal((3, d)),
        "spiky": np.eye(d)[:4] * 1e6,
    }[kind]
    g = rng.standard_normal(d) * 2
    eps = 1e-5
    var_lb = B.variance_lb(rows)
    ubs = B.layernorm_row_ub(rows, g, eps)
    glob = B.layernorm_global_ub(g, eps)
    pi = B.layernorm_row_pi(rows, g, eps)
    for i, x in enumerate(rows):
        assert pi[i] <= ubs[i]  # a heuristic estimate, below the rigorous bound
        if kind == "random":
            assert pi[i] >= 0.9 * ln_jacobian_norm(x, g, eps)  # and it does estimate
        assert var_lb[i] <= exact_variance(x)
        truth = ln_jacobian_norm(x, g, eps)
        assert truth <= ubs[i] * (1 + 1e-12)
        assert truth <= glob
        assert np.isfinite(ubs[i]) and ubs[i] <= glob


# ---- attention heads ------------------------------------------------------------------------
def head_fn(wq, bq, wk, bk, wv, bv, wo):
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in
         dict(wq=wq, bq=bq, wk=wk, bk=bk, wv=wv, bv=bv, wo=wo).items()}

    def f(z):
        n = z.shape[0]
        q, k = z @ t["wq"] + t["bq"], z @ t["wk"] + t["bk"]
        s = q @ k.T / math.sqrt(wq.shape[1])
        s = s.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), -math.inf)
        return torch.softmax(s, -1) @ (z @ t["wv"] + t["bv"]) @ t["wo"]

    return f


def softmax_jacobians(z, wq, bq, wk, bk) -> np.ndarray:
    """J(p_q) = diag(p_q) − p_q p_qᵀ per query (n, n, n), each entry computed at 200 bits from
    the float64 logits and rounded once, so tiny entries of nearly one-hot rows stay accurate."""
    import mpmath

    n, dh = z.shape[0], wq.shape[1]
    s = ((z @ wq + bq) @ (z @ wk + bk).T) / math.sqrt(dh)
    out = np.zeros((n, n, n))
    with mpmath.workprec(200):
        for q in range(n):
            row = [mpmath.mpf(float(v)) for v in s[q, : q + 1]]
            m = max(row)
            e = [mpmath.exp(v - m) for v in row]
            tot = mpmath.fsum(e)
            p = [v / tot for v in e]
            for i in range(q + 1):
                for j in range(q + 1):
                    out[q, i, j] = float((p[i] if i == j else 0) - p[i] * p[j])
    return out


def pattern_term_matrix(z, wq, bq, wk, bk, wv, bv, wo) -> np.ndarray:
    """The pattern term's Jacobian (n·d × n·d, row-major vec) assembled from J(p_q):
    d out_q = Σ_j (J_q VO)_j dS_qj with dS_qj = (dZ_q·W_Q k_j + dZ_j·W_K q_q)/√dh."""
    n, d = z.shape
    dh = wq.shape[1]
    J = softmax_jacobians(z, wq, bq, wk, bk)
    q, k = z @ wq + bq, z @ wk + bk
    vo = (z @ wv + bv) @ wo
    P = np.zeros((n, d, n, d))
    for qi in range(n):
        c = J[qi] @ vo  # c[j] = Σ_k J_q[k, j] VO_k  (J symmetric)
        for j in range(qi + 1):
            P[qi, :, qi, :] += np.outer(c[j], wq @ k[j]) / math.sqrt(dh)
            P[qi, :, j, :] += np.outer(c[j], wk @ q[qi]) / math.sqrt(dh)
    return P.reshape(n * d, n * d)


def true_head_norms(z, wq, bq, wk, bk, wv, bv, wo):
    """(‖value term‖₂, ‖pattern term‖₂, ‖A‖₂): value term and A from the float64 pattern, the
    pattern term assembled from accurate softmax Jacobians (a float64 difference jac − value
    would be rounding noise for nearly one-hot rows); cross-checked against autograd."""
    f = head_fn(wq, bq, wk, bk, wv, bv, wo)
    zt = torch.tensor(z, dtype=torch.float64)
    n, d = z.shape
    jac = torch.autograd.functional.jacobian(f, zt).reshape(n * d, n * d).numpy()
    with torch.no_grad():
        q = zt @ torch.tensor(wq) + torch.tensor(bq)
        k = zt @ torch.tensor(wk) + torch.tensor(bk)
        s = q @ k.T / math.sqrt(wq.shape[1])
        s = s.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), -math.inf)
        a = torch.softmax(s, -1).numpy()
    value = np.kron(a, (wv @ wo).T)  # d vec(A Z W) = (A ⊗ Wᵀ) vec(dZ), row-major vec
    pattern = pattern_term_matrix(z, wq, bq, wk, bk, wv, bv, wo)
    assert np.abs(jac - value - pattern).max() <= 1e-9 * max(1.0, np.abs(jac).max())
    return spec(value), spec(pattern), spec(a)


CASES = {
    "random": dict(scale_qk=1.0, z_scale=1.0, bias=0.3),
    "near_one_hot": dict(scale_qk=30.0, z_scale=1.0, bias=0.0),
    "uniform_attn": dict(scale_qk=1e-4, z_scale=1.0, bias=0.0),
    "big_inputs": dict(scale_qk=0.2, z_scale=20.0, bias=1.0),
    "rescaled": dict(scale_qk=5.0, z_scale=0.2, bias=0.5),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_head_bounds_bracket_the_autograd_jacobian(case, seed):
    c = CASES[case]
    rng = np.random.default_rng(1000 * seed + len(case))
    n, d, dh = 6, 8, 2
    z = rng.standard_normal((n, d)) * c["z_scale"]
    wq = rng.standard_normal((d, dh)) * c["scale_qk"]
    wk = rng.standard_normal((d, dh)) * c["scale_qk"]
    wv = rng.standard_normal((d, dh))
    wo = rng.standard_normal((dh, d))
    bq, bk, bv = (rng.standard_normal(dh) * c["bias"] for _ in range(3))
    value, pattern, a_norm = true_head_norms(z, wq, bq, wk, bk, wv, bv, wo)
    hb = B.head_bounds(z, wq, bq, wk, bk, wv, wo)
    half = B.head_bounds(z, wq, bq, wk, bk, wv, wo, softmax="half")
    assert pattern <= half["pattern_ub"] and half["softmax_ub"] == 0.5
    assert hb["softmax_ub"] <= 0.5 and hb["pattern_ub"] <= half["pattern_ub"]
    assert hb["attn_norm_lb"] <= a_norm <= hb["attn_norm_ub"]
    assert hb["value_lb"] <= value <= hb["value_ub"]
    assert pattern <= hb["pattern_ub"]
    # both forms are valid on their own; the used one is the smaller
    assert pattern <= hb["pattern_ub_centred"] and pattern <= hb["pattern_ub_simple"]
    assert hb["pattern_ub"] == min(hb["pattern_ub_centred"], hb["pattern_ub_simple"])
    assert hb["vo_lb"] <= spec(wv @ wo) <= hb["vo_ub"]
    assert hb["qk_lb"] <= spec(wq @ wk.T) <= hb["qk_ub"]
    assert pattern / value <= hb["eps_ub"]


def test_attention_enclosure_contains_high_precision_softmax():
    import mpmath

    mpmath.mp.prec = 200
    rng = np.random.default_rng(3)
    n, d, dh = 5, 6, 3
    z = rng.standard_normal((n, d))
    wq, wk = rng.standard_normal((d, dh)) * 4, rng.standard_normal((d, dh)) * 4
    bq, bk = rng.standard_normal(dh), rng.standard_normal(dh)
    a, lo, hi = B.attention_enclosure(z, wq, bq, wk, bk)
    mz = mpmath.matrix(z.tolist())
    q = mz * mpmath.matrix(wq.tolist())
    k = mz * mpmath.matrix(wk.tolist())
    for i in range(n):
        s = [sum((q[i, j] + bq[j]) * (k[t, j] + bk[j]) for j in range(dh)) / mpmath.sqrt(dh)
             for t in range(i + 1)]
        mx = max(s)
        e = [mpmath.exp(v - mx) for v in s]
        tot = sum(e)
        for t in range(n):
            p = e[t] / tot if t <= i else mpmath.mpf(0)
            assert lo[i, t] <= p <= hi[i, t]


@pytest.mark.parametrize("a,b", [(0.1, 0.2), (0.0, 0.0), (1e-300, 3.0), (7.5, 1e17)])
def test_pair_error_and_layer_constant_round_up(a, b):
    from fractions import Fraction

    exact = (1 + Fraction(a)) * (1 + Fraction(b)) - 1
    for v in (B.pair_error_ub(a, b), B.layer_constant(a, b)):
        assert Fraction(v) >= exact
        assert v <= float(exact) * (1 + 1e-14) + 1e-300  # outward by a few ulps only
    assert Fraction(float(R.add_up(0.1, 0.2))) >= Fraction(0.1) + Fraction(0.2)


@pytest.mark.parametrize("kind", ["random", "constant", "huge_offset", "tiny", "spiky"])
def test_layernorm_enclosure_contains_the_exact_output(kind):
    """|LN(x)_exact − z| ≤ radius, the exact value from rationals (exact mean) and mpmath."""
    from fractions import Fraction

    import mpmath

    rng = np.random.default_rng(3)
    d = 12
    x = {
        "random": rng.standard_normal((3, d)),
        "constant": np.full((2, d), -7.5),
        "huge_offset": 40000.0 + rng.standard_normal((3, d)) * 1e-3,
        "tiny": 1e-200 * rng.standard_normal((2, d)),
        "spiky": np.eye(d)[:2] * 1e6,
    }[kind]
    g, b = rng.standard_normal(d) * 2, rng.standard_normal(d)
    eps = 1e-5
    z, rad = B.layernorm_enclosure(x, g, b, eps)
    assert np.isfinite(rad).all() and (rad >= 0).all()
    with mpmath.workprec(300):
        for i, row in enumerate(x):
            fx = [Fraction(float(v)) for v in row]
            mu = sum(fx) / d
            var = sum((v - mu) ** 2 for v in fx) / d
            sig = mpmath.sqrt(mpmath.mpf(var.numerator) / var.denominator + mpmath.mpf(eps))
            for j in range(d):
                c = mpmath.mpf((fx[j] - mu).numerator) / (fx[j] - mu).denominator
                exact = c / sig * mpmath.mpf(float(g[j])) + mpmath.mpf(float(b[j]))
                assert abs(exact - mpmath.mpf(float(z[i, j]))) <= mpmath.mpf(float(rad[i, j]))
    # and tight: the mean's rounding (≈ d·u·|x|) over σ dominates for huge offsets
    assert np.all(rad <= (1e-6 if kind == "huge_offset" else 1e-10) * (1 + np.abs(z)))


def test_head_bounds_hold_for_every_input_in_the_enclosure():
    """With z_rad, the bounds cover the head at any Z* in the box (here: its corners' rows)."""
    rng = np.random.default_rng(11)
    n, d, dh = 5, 6, 3
    z = rng.standard_normal((n, d))
    rad = np.full((n, d), 1e-3)
    wq, wk, wv = (rng.standard_normal((d, dh)) for _ in range(3))
    wo = rng.standard_normal((dh, d))
    bq, bk, bv = (rng.standard_normal(dh) * 0.3 for _ in range(3))
    hb = B.head_bounds(z, wq, bq, wk, bk, wv, wo, z_rad=rad)
    tight = B.head_bounds(z, wq, bq, wk, bk, wv, wo)
    assert hb["pattern_ub"] >= tight["pattern_ub"] and hb["value_lb"] <= tight["value_lb"]
    for s in range(4):
        zs = z + rad * np.random.default_rng(s).choice([-1.0, 1.0], size=z.shape)
        value, pattern, a_norm = true_head_norms(zs, wq, bq, wk, bk, wv, bv, wo)
        assert hb["value_lb"] <= value <= hb["value_ub"]
        assert pattern <= hb["pattern_ub"]
        assert hb["attn_norm_lb"] <= a_norm <= hb["attn_norm_ub"]
