"""Global (weight-only) per-layer constants as certificate claims, for every prompt.

For any residual input x ∈ ℝ^{n×d} with n ≤ n_ctx (any tokens, any positions), with R the
certified bound on every LayerNorm output row (‖LN(x)_i‖₂ ≤ max|γ|·√d + ‖β‖₂, since the
normalised row has norm ≤ √d):

- ‖J_LN‖₂ ≤ max|γ|/√eps (the projection I − 11ᵀ/d − vvᵀ/d has eigenvalues in [0, 1]);
- head value term ‖A‖₂‖W_V W_O‖₂ ≤ √n·vo (a causal row-stochastic A has ‖A‖∞ = 1, ‖A‖₁ ≤ n);
- head pattern term ≤ (s/√dh)·n·vo_row·(‖W_Q‖·k_max + q_max·‖W_K‖), s = ½ ≥ λ_max(diag p − ppᵀ),
  q_max = R‖W_Q‖ + ‖b_Q‖, k_max = R‖W_K‖ + ‖b_K‖, vo_row = R·vo + ‖b_V W_O‖ (row bounds of Q, K
  and V W_O; ‖K‖₂ ≤ √n k_max, ‖V W_O‖₂ ≤ √n vo_row; Minkowski over the query rows);
- a = ‖J_LN1‖·Σ_h(value + pattern), m = ‖J_LN2‖·‖W_in‖·sup|GELU′|·‖W_out‖, C = a + m + a·m.

Every number is a claim for the independent checker (:mod:`nfp_steps.check`): weight norms come
from the rigorous float bounds of :mod:`nfp_steps.opnorm`, inflated by 2⁻²⁰ so that the checker's
exact test (a positive-definite c²I − G) holds strictly; derived values are computed exactly in
rationals, square roots rounded up, and inflated by 2⁻⁴⁰.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from nfp_steps import bounds as B
from nfp_steps import opnorm as O
from nfp_steps import rigor as R
from nfp_steps.model import GPT2Weights

# Largest side for which the checker tests norms by an exact Gram matrix (else Frobenius).
EXACT_GRAM_MAX = 128
# sup |GELU′| for the exact (erf) GELU that the checker proves in closed form: Φ ∈ [0, 1] and
# sup x·φ(x) = φ(1) = e^{−1/2}/√(2π) < 0.24198, so |GELU′| ≤ 1.24198 < 1.2420.
GELU_EXACT_SUP = Fraction(12420, 10000)
SOFTMAX_SUP = Fraction(1, 2)


def _inflate(v: float, rel: float = 2.0**-20) -> Fraction:
    """A float upper bound as an exact rational, nudged up so a strict check passes."""
    if not math.isfinite(v):
        raise ValueError(f"non-finite bound {v}")
    if v <= 0:
        return Fraction(1, 2**30)  # ‖0‖ ≤ 2⁻³⁰; a positive value keeps the checker's test strict
    return Fraction(float(R.up(R.up(v) * (1 + rel))))


def sqrt_up(x: Fraction, bits: int = 64) -> Fraction:
    """A rational ≥ √x (x ≥ 0), within 2⁻ᵇⁱᵗˢ relative."""
    if x <= 0:
        return Fraction(0)
    k = bits - (x.numerator.bit_length() - x.denominator.bit_length()) // 2
    s = 2 * k
    num = x.numerator << s if s >= 0 else x.numerator
    den = x.denominator if s >= 0 else x.denominator << -s
    r = math.isqrt(num // den)
    while r * r * den < num:
        r += 1
    return Fraction(r, 2**k) if k >= 0 else Fraction(r * 2 ** -k)


def _derived(v: Fraction) -> Fraction:
    return v * (1 + Fraction(1, 2**40))


def _gram_or_frob(m: np.ndarray) -> str:
    return "gram" if min(m.shape) <= EXACT_GRAM_MAX else "frobenius"


def _opnorm_claim(m: np.ndarray, method: str) -> Fraction:
    if method == "frobenius":
        return _inflate(R.frobenius_ub(m))
    return _inflate(O.opnorm_ub(m))


def _vo_method(w_v: np.ndarray, w_o: np.ndarray) -> str:
    """"core" (exact dh×dh test) when W_O has full row rank and dh is small, else Frobenius."""
    if w_o.shape[0] > EXACT_GRAM_MAX:
        return "frobenius"
    s = np.linalg.svd(w_o, compute_uv=False)
    return "core" if s.size and s[-1] > 1e-6 * s[0] else "frobenius"


def gelu_sup(kind: str) -> Fraction:
    """The certified sup|GELU′| claimed for the model's GELU kind."""
    return _inflate(B.GELU_DERIV_SUP, 0.0) if kind == "tanh" else GELU_EXACT_SUP


def global_claims(w: GPT2Weights, n: int, gelu_ub: Fraction | None = None) -> list[dict]:
    """The global certificate's claims (dicts with exact Fraction ``value``), in check order."""
    claims: list[dict] = []

    def add(kind: str, value: Fraction, **kw) -> Fraction:
        claims.append({"id": _cid(kind, kw), "kind": kind, **kw, "value": value})
        return value

    g = add("gelu_deriv_sup", max(gelu_sup(w.gelu_kind), gelu_ub or Fraction(0)),
            gelu=w.gelu_kind)
    s = add("softmax_jacobian_sup", SOFTMAX_SUP)
    dh = w.d_head
    total = Fraction(1)
    for layer in range(w.n_layers):
        lt = {"layer": layer}
        ln = {}
        for which in ("ln1", "ln2"):
            gamma, beta = getattr(w, f"{which}_g")[layer], getattr(w, f"{which}_b")[layer]
            ln[which] = add("ln_jacobian", _inflate(B.layernorm_global_ub(gamma, w.eps)),
                            which=which, **lt)
            r_g = float(R.mul_up(float(np.max(np.abs(gamma))), R.sqrt_up(float(w.d_model))))
            ln[which + "_out"] = add("ln_output_norm",
                                     _inflate(R.add_up(r_g, R.frobenius_ub(beta))),
                                     which=which, **lt)
        rr = ln["ln1_out"]
        attn = Fraction(0)
        for h in range(w.n_heads):
            ht = {"layer": layer, "head": h}
            wq, wk, wv, wo = (getattr(w, k)[layer, h] for k in ("W_Q", "W_K", "W_V", "W_O"))
            nq = add("opnorm", _opnorm_claim(wq, _gram_or_frob(wq)), matrix="W_Q",
                     method=_gram_or_frob(wq), **ht)
            nk = add("opnorm", _opnorm_claim(wk, _gram_or_frob(wk)), matrix="W_K",
                     method=_gram_or_frob(wk), **ht)
            vm = _vo_method(wv, wo)
            vo_f = (O.vo_candidates(wv, wo)["used"] if vm == "core"
                    else float(R.mul_up(R.frobenius_ub(wv), R.frobenius_ub(wo))))
            vo = add("opnorm_product", _inflate(vo_f), matrices=["W_V", "W_O"], method=vm,
                     **ht)
            bq = add("vecnorm", _inflate(R.frobenius_ub(w.b_Q[layer, h])), vector="b_Q", **ht)
            bk = add("vecnorm", _inflate(R.frobenius_ub(w.b_K[layer, h])), vector="b_K", **ht)
            bvo_c, bvo_r = R.matmul_radius(w.b_V[layer, h][None, :], wo)
            bvo = add("vecnorm", _inflate(R.frobenius_ub(bvo_c, bvo_r)), vector="b_V W_O", **ht)
            value = add("head_value", _derived(sqrt_up(n * vo * vo)), n=n, **ht)
            q_max, k_max, vo_row = rr * nq + bq, rr * nk + bk, rr * vo + bvo
            pat = s * n * vo_row * (nq * k_max + q_max * nk)
            pattern = add("head_pattern", _derived(sqrt_up(pat * pat / dh)), n=n, **ht)
            attn += value + pattern
        a = add("layer_attn", _derived(ln["ln1"] * attn), **lt)
        nin = add("opnorm", _opnorm_claim(w.W_in[layer], _gram_or_frob(w.W_in[layer])),
                  matrix="W_in", method=_gram_or_frob(w.W_in[layer]), **lt)
        nout = add("opnorm", _opnorm_claim(w.W_out[layer], _gram_or_frob(w.W_out[layer])),
                   matrix="W_out", method=_gram_or_frob(w.W_out[layer]), **lt)
        m = add("layer_mlp", _derived(ln["ln2"] * nin * g * nout), **lt)
        c = add("layer_C", _derived(a + m + a * m), **lt)
        total *= 1 + c
    add("total_amplification", _derived(total))
    return claims


def _cid(kind: str, kw: dict, part: str = "global") -> str:
    """A readable claim id, e.g. ``global.L0H1.opnorm.W_Q``."""
    parts = [part]
    if "layer" in kw:
        parts.append(f"L{kw['layer']}" + (f"H{kw['head']}" if "head" in kw else ""))
    parts.append(kind)
    for k in ("which", "matrix", "vector"):
        if k in kw:
            parts.append(str(kw[k]).replace(" ", ""))
    return ".".join(parts)
