"""Independent checker, local part: per-layer constants at the analysed prompt.

Part of the checker (:mod:`nfp_steps.check`), sharing no code with the producers. For layer l the
certificate gives the residual stream x_l as a witness and a tolerance τ; every claim must hold
for every x' with |x' − x_l| ≤ τ entrywise (the checker's own float64 forward pass must lie in
that ball). On that ball, with Z = LN1(x') enclosed in fixed-point balls:

- ``ln_jacobian_local`` (ln1): ‖J_LN1‖₂ ≤ max|γ₁| / max(√eps, min_rows σ(x_l) − τ) (σ is
  1/√d-Lipschitz, and σ = √(var + eps) ≥ √eps);
- ``head_value_local``: ‖A‖₂‖W_V W_O‖₂ ≤ √(max column sum of A)·vo, A enclosed entrywise from
  the logit balls by a fixed-point exp with remainder (rows of A sum to 1, so ‖A‖∞ = 1);
- ``head_pattern_local``: (s/√dh)(‖W_Q‖‖K − 1k̄ᵀ‖_F + ‖Q‖_F‖W_K‖)‖V W_O − 1v̄ᵀ‖_F, s = ½ (rows of
  the softmax Jacobian sum to 0, so any constant row may be taken off K and V W_O);
- ``ln_jacobian_local`` (ln2): at y = x' + Σ_h A V W_O + b_O, enclosed in balls: max|γ₂| divided by
  max(√eps, min_rows σ(centre) − ‖radius‖₂/√d);
- ``layer_attn_local`` = ln1·Σ_h(value + pattern), ``layer_mlp_local`` = ln2·‖W_in‖·g′·‖W_out‖,
  ``layer_C`` ≥ a + m + a·m and ``total_amplification`` ≥ ∏(1 + C_l).
Weight norms (opnorm, opnorm_product, gelu_deriv_sup, softmax_jacobian_sup) are checked exactly
as in the global part.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from nfp_steps.check import (
    P,
    Refuted,
    Unreadable,
    _affine,
    _layernorm_ball,
    _row_sigma_sq,
    _shift_down,
    check_claims,
    exp_bounds,
    frac,
    residual_inputs,
    score_bounds,
    sqrt_down,
    sqrt_up,
    to_int,
    witness_in_ball,
)

W = 64  # fixed-point scale of the softmax enclosure: integers / 2^W
KMAX = 80  # e^u for u < −KMAX is enclosed in [0, e^−KMAX]
_ENEG: list[tuple[int, int]] = []


def _eneg(k: int) -> tuple[int, int]:
    """(lo, hi) with lo ≤ 2^W·e^{−k} ≤ hi."""
    if not _ENEG:
        for j in range(KMAX + 1):
            lo, hi = exp_bounds(Fraction(j), bits=128)
            _ENEG.append(((1 << W) * hi.denominator // hi.numerator,
                          -((-(1 << W) * lo.denominator) // lo.numerator)))
    return _ENEG[k]


def _taylor(r: int, up: bool) -> int:
    """2^W·e^{r/2^W} for 0 ≤ r < 2^W, rounded down (up=False) or up: 24 terms, each floored
    (or ceiled); the remainder is < 2/25! < 1 unit."""
    one = 1 << W
    term, s = one, one
    for i in range(1, 25):
        d = i << W
        term = -((-term * r) // d) if up else (term * r) // d
        s += term
    return s + 2 if up else s


def exp_fixed(u: int, up: bool) -> int:
    """A bound on 2^W·e^{u/2^W} for u ≤ 0 (an integer at scale W), below or above."""
    k = (-u + (1 << W) - 1) >> W  # ⌈−u/2^W⌉
    if k > KMAX:
        return _eneg(KMAX)[1] if up else 0
    t = _taylor(u + (k << W), up)
    e = _eneg(k)[1 if up else 0]
    return -((-t * e) >> W) if up else (t * e) >> W


def softmax_bounds(s_lo: np.ndarray, s_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Causal attention A enclosed entrywise: (p_lo, p_hi) integers at scale W, from logit
    bounds at scale P (p_k ≤ e^{hi_k}/(e^{hi_k} + Σ_{j≠k} e^{lo_j}), and the reverse below)."""
    n = s_lo.shape[0]
    p_lo = np.zeros((n, n), dtype=object)
    p_hi = np.zeros((n, n), dtype=object)
    sh = P - W
    one = 1 << W
    for q in range(n):
        lo = [int(v) >> sh for v in s_lo[q, : q + 1]]
        hi = [-((-int(v)) >> sh) for v in s_hi[q, : q + 1]]
        m = max(hi)
        el = [exp_fixed(v - m, False) for v in lo]
        eh = [exp_fixed(v - m, True) for v in hi]
        sl, su = sum(el), sum(eh)
        for k in range(q + 1):
            den_hi = eh[k] + sl - el[k]
            p_hi[q, k] = min(one, -((-eh[k] * one) // den_hi)) if den_hi > 0 else one
            den_lo = el[k] + su - eh[k]
            p_lo[q, k] = (el[k] * one) // den_lo if den_lo > 0 else 0
    return p_lo, p_hi


def _frob_ub(c: np.ndarray, r: np.ndarray, scale_bits: int, centre: bool) -> Fraction:
    """≥ ‖M − 1 m̄ᵀ‖_F (centre) or ‖M‖_F for every M in the ball (c, r) at scale 2^scale_bits;
    m̄ is the floored mean of the centres' rows (any constant row is allowed)."""
    if centre:
        n = c.shape[0]
        mean = np.array([int(v) // n for v in c.sum(axis=0)], dtype=object)
        c = c - mean[None, :]
    a = np.abs(c) + r
    return sqrt_up(Fraction(int((a * a).sum()), 4**scale_bits))


def _to_scale(a: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Floats as a ball of integers at scale 2^bits."""
    ai, s = to_int(a)
    zero = np.zeros(ai.shape, dtype=object) * 0
    if s <= bits:
        return ai * (1 << (bits - s)), zero
    f = np.frompyfunc(lambda v: v >> (s - bits), 1, 1)
    return f(ai), zero + 1


def _sigma_min(c: np.ndarray, r: np.ndarray, bits: int, eps: Fraction) -> Fraction:
    """≤ min over rows of σ(y) for every y in the ball (c, r) at scale 2^bits (σ ≥ √eps
    always)."""
    d = c.shape[1]
    out = None
    for i in range(c.shape[0]):
        shift = sqrt_up(Fraction(int((r[i] * r[i]).sum()), d * 4**bits))
        sig = sqrt_down(_row_sigma_sq(c[i], bits, eps)) - shift
        out = sig if out is None else min(out, sig)
    return max(out, sqrt_down(eps))


class _Layer:
    """The checker's enclosures for one layer at the witness ball (computed once, on demand)."""

    def __init__(self, w, layer: int, x: np.ndarray, tol: Fraction, eps: Fraction):
        self.w, self.layer, self.x, self.tol, self.eps = w, layer, x, tol, eps
        self.zc, self.zr = _layernorm_ball(x, w.ln1_g[layer], w.ln1_b[layer], eps, tol)
        self.heads: dict[int, dict] = {}
        self._ln2: Fraction | None = None

    def ln1(self) -> Fraction:
        xi, sx = to_int(self.x)
        sig = max(min(sqrt_down(_row_sigma_sq(row, sx, self.eps)) for row in xi) - self.tol,
                  sqrt_down(self.eps))  # σ = √(var + eps) ≥ √eps everywhere
        if sig <= 0:
            raise Refuted(f"layer {self.layer}: witness tolerance reaches a zero LayerNorm scale")
        return Fraction(float(np.max(np.abs(self.w.ln1_g[self.layer])))) / sig

    def head(self, h: int) -> dict:
        if h not in self.heads:
            w, layer = self.w, self.layer
            s_lo, s_hi, (qc, qr), (kc, kr) = score_bounds(self.zc, self.zr, w, layer, h)
            p_lo, p_hi = softmax_bounds(s_lo, s_hi)
            vc, vr = _affine(self.zc, self.zr, w.W_V[layer, h], w.b_V[layer, h])
            oi, so = to_int(w.W_O[layer, h])
            vwo_c, vwo_r = _shift_down(vc @ oi, vr @ np.abs(oi), so)
            self.heads[h] = {
                "col_max": Fraction(int(max(p_hi.sum(axis=0))), 1 << W),
                "q_f": _frob_ub(qc, qr, P, centre=False),
                "k_f": _frob_ub(kc, kr, P, centre=True),
                "vo_f": _frob_ub(vwo_c, vwo_r, P, centre=True),
                "p": (p_lo, p_hi), "vwo": (vwo_c, vwo_r),
            }
        return self.heads[h]

    def ln2(self) -> Fraction:
        """max|γ₂| / min σ over the ball of y = x' + attention output + b_O."""
        if self._ln2 is None:
            w, layer = self.w, self.layer
            yc, yr = _to_scale(self.x, W)
            yr = yr + (int(self.tol * (1 << W)) + 1)
            for h in range(w.n_heads):
                hd = self.head(h)
                p_lo, p_hi = hd["p"]
                ac = (p_lo + p_hi) // 2
                ar = p_hi - ac + 1
                vc, vr = _shift_down(*hd["vwo"], P - W)
                oc, orad = _shift_down(ac @ vc, ac @ vr + ar @ np.abs(vc) + ar @ vr, W)
                yc, yr = yc + oc, yr + orad
            bc, br = _to_scale(w.b_O[layer], W)
            sig = _sigma_min(yc + bc, yr + br, W, self.eps)
            if sig <= 0:
                raise Refuted(f"layer {layer}: the LayerNorm-2 scale is not bounded away from 0")
            self._ln2 = Fraction(float(np.max(np.abs(w.ln2_g[layer])))) / sig
        return self._ln2


def check_local(w, local: dict, tokens: list[int] | None, eps: Fraction,
                memo: dict | None = None) -> list[str]:
    """Verify the local part: witnesses against the checker's forward pass, then every claim."""
    try:
        wits, tols, claims = local["witnesses"], local["witness_tol"], local["claims"]
        if len(wits) != w.n_layers or len(tols) != w.n_layers:
            raise Unreadable(f"local: {len(wits)} witnesses for {w.n_layers} layers")
        xs = [np.array([[float.fromhex(v) for v in row] for row in wl], dtype=np.float64)
              for wl in wits]
    except (KeyError, TypeError, ValueError) as exc:
        raise Unreadable(f"local: malformed witnesses ({exc})") from None
    toks = None if tokens is None else np.array(tokens, dtype=np.int64)
    own = residual_inputs(w, toks if w.embeddings is None else None, w.n_layers - 1, float(eps))
    layers = []
    for i, x in enumerate(xs):
        if x.shape != own[i].shape:
            raise Refuted(f"local.witnesses[{i}]: shape {x.shape}, expected {own[i].shape}")
        tol = frac(tols[i], f"local.witness_tol[{i}]")
        witness_in_ball(own[i], x, tol, f"local.witnesses[{i}]")
        layers.append(_Layer(w, i, x, tol, eps))

    def extra(c: dict, v: Fraction, get) -> bool:
        kind, layer, head = c.get("kind"), c.get("layer"), c.get("head")
        if not isinstance(layer, int) or not 0 <= layer < w.n_layers:
            raise Unreadable(f"{c.get('id')}: layer {layer!r} is not a layer of the model")
        ly = layers[layer]
        if kind == "ln_jacobian_local":
            which = c.get("which")
            if which not in ("ln1", "ln2"):
                raise Unreadable(f"{c.get('id')}: unknown LayerNorm {which!r}")
            return v >= (ly.ln1() if which == "ln1" else ly.ln2())
        if kind in ("head_value_local", "head_pattern_local"):
            if not isinstance(head, int) or not 0 <= head < w.n_heads:
                raise Unreadable(f"{c.get('id')}: head {head!r} is not a head of the model")
            hd = ly.head(head)
            vo = get("opnorm_product", layer, head, None)
            if kind == "head_value_local":
                return v >= 0 and v * v >= hd["col_max"] * vo * vo
            nq, nk = get("opnorm", layer, head, "W_Q"), get("opnorm", layer, head, "W_K")
            x = get("softmax_jacobian_sup") * (nq * hd["k_f"] + hd["q_f"] * nk) * hd["vo_f"]
            return v >= 0 and v * v * w.d_head >= x * x
        if kind == "layer_attn_local":
            s = sum((get("head_value_local", layer, h) + get("head_pattern_local", layer, h)
                     for h in range(w.n_heads)), Fraction(0))
            return v >= get("ln_jacobian_local", layer, None, "ln1") * s
        if kind == "layer_mlp_local":
            return v >= (get("ln_jacobian_local", layer, None, "ln2")
                         * get("opnorm", layer, None, "W_in") * get("gelu_deriv_sup")
                         * get("opnorm", layer, None, "W_out"))
        raise Unreadable(f"{c.get('id')}: unknown claim kind {kind!r}")

    check_claims(w, claims, eps, extra=extra, scope="_local", memo=memo)
    return [f"local: {len(claims)} claims (LayerNorm scales, attention column sums and "
            f"pattern norms at the prompt, per-layer constants, ∏(1 + C_l)) over the "
            f"witness balls of {w.n_layers} layers"]
