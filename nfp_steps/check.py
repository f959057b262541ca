"""Independent checker for ``certificate.json``: every claim re-derived with exact arithmetic.

Shares no bound code with the producers (it imports only the model reader): weights become
exact integers at a power-of-two scale (floats are dyadic rationals), norms are checked by exact
positive-definiteness tests (fraction-free Gaussian elimination: all leading principal minors
> 0), square roots by squaring, transcendental constants by Taylor series with remainder, and the
attention logits and values of an induction certificate by fixed-point ball arithmetic on Python
integers (scale 2⁻¹⁶⁰, outward rounding at every rescale). The witness x (the residual stream
into the head's layer) is also re-derived by a float64 forward pass written here, which must lie
within the certificate's ``witness_tol`` of it entrywise; every claim is then checked for *every*
point of that ball (the LayerNorm enclosure covers it), so a nudged witness cannot buy a larger
margin, and the claims hold for any float64 forward pass of the prompt.

Every field is validated before any claim is checked, and a refusal names its path
(``induction[0].witness_x[3][5]``). Outcome: :class:`Verified`; :class:`Refuted` (well-formed but
false for this model: a claim is false or cannot be confirmed, an index outside the model,
inconsistent counts, duplicates; exit 1); :class:`Unreadable` (bad JSON, a missing field, a wrong
type or syntax, a value outside its domain, model not readable; exit 2).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

FORMAT = "nfp-certificate-v1"
_MAX_EXPONENT = 4000  # |e| of a decimal "…e±N" in a claim: Fraction would build 10^N
P = 160  # fixed-point scale of the ball arithmetic: values are integers / 2^P
# π to 30 digits, rounded each way (3.14159265358979323846264338327950...)
PI_LO = Fraction("3.14159265358979323846264338327")
PI_HI = Fraction("3.14159265358979323846264338328")


class Unreadable(Exception):
    """The certificate or the model cannot be read (exit code 2)."""


class Refuted(Exception):
    """A claim does not hold (exit code 1); the message names it."""


@dataclass
class Verified:
    """What was checked (lines for the report) and notes (e.g. trusted parts)."""

    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---- exact numbers ------------------------------------------------------------------------
def frac(s, where: str) -> Fraction:
    """An exact number from the certificate (``"p/q"``, an integer, or a float's exact value)."""
    try:
        if isinstance(s, bool):
            raise ValueError
        if isinstance(s, float):
            if not math.isfinite(s):
                raise ValueError
            return Fraction(s)
        e = re.search(r"[eE]\s*([+-]?[0-9_]+)", str(s))
        if e and abs(int(e.group(1))) > _MAX_EXPONENT:
            raise ValueError  # Fraction would compute 10^N
        return Fraction(str(s))
    except (ValueError, ZeroDivisionError, TypeError):
        raise Unreadable(f"{where}: not an exact number: {s!r}") from None


def to_int(a: np.ndarray) -> tuple[np.ndarray, int]:
    """(integer object array N, scale S) with a == N / 2^S exactly."""
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise Refuted("non-finite weight")
    mant, exp = np.frexp(a)
    m = (mant * 2.0**53).astype(np.int64)
    e = exp.astype(np.int64) - 53
    nz = m != 0
    s = int(-e[nz].min()) if nz.any() else 0
    s = max(s, 0)
    shift = (e + s).astype(object)
    shift[~nz] = 0
    return m.astype(object) * np.vectorize(lambda k: 1 << int(k), otypes=[object])(shift), s


def isqrt_ceil(n: int) -> int:
    r = math.isqrt(n)
    return r if r * r == n else r + 1


def sqrt_up(x: Fraction, bits: int = 96) -> Fraction:
    """A rational ≥ √x."""
    if x <= 0:
        return Fraction(0)
    return Fraction(isqrt_ceil(math.ceil(x * 4**bits)), 2**bits)


def is_pd(a: list[list[int]]) -> bool:
    """Exact test that a symmetric integer matrix is positive definite (Bareiss elimination:
    the k-th pivot is the k-th leading principal minor; Sylvester's criterion)."""
    m = [list(r) for r in a]
    n, prev = len(m), 1
    for k in range(n):
        if m[k][k] <= 0:
            return False
        pk = m[k][k]
        for i in range(k + 1, n):
            mik = m[i][k]
            row_i, row_k = m[i], m[k]
            for j in range(k + 1, n):
                row_i[j] = (row_i[j] * pk - mik * row_k[j]) // prev
        prev = pk
    return True



def pd_truncated(m: np.ndarray, bits: int = 62) -> bool:
    """Exact sufficient test that a symmetric integer matrix M is positive definite, on short
    integers: with M = 2^k(M' + F), M' = ⌊M/2^k⌋, F symmetric with entries in [0, 1) (so
    ‖F‖₂ ≤ n), M' − n·I ≻ 0 implies M ≻ 0."""
    n = m.shape[0]
    top = max((abs(int(v)).bit_length() for v in m.ravel()), default=0)
    k = max(0, top - bits)
    short = [[int(v) >> k for v in row] for row in m]
    if k:
        for i in range(n):
            short[i][i] -= n
    return is_pd(short)


# ---- weight-norm claims ---------------------------------------------------------------------
def opnorm_le(m: np.ndarray, v: Fraction, method: str) -> bool:
    """‖M‖₂ ≤ v, by an exact Gram test (v²I − G ≻ 0) or Frobenius (v² ≥ ΣM²)."""
    if v < 0:
        return False
    mi, s = to_int(m)
    p, q = v.numerator, v.denominator
    if method == "frobenius":
        return p * p * 4**s >= q * q * int((mi * mi).sum())
    if method != "gram":
        raise Unreadable(f"unknown norm method {method!r}")
    g = mi.T @ mi if mi.shape[1] <= mi.shape[0] else mi @ mi.T
    shifted = -(q * q) * g
    for i in range(g.shape[0]):
        shifted[i, i] += p * p * 4**s
    return pd_truncated(shifted)


def product_norm_le(a: np.ndarray, b: np.ndarray, v: Fraction, method: str) -> bool:
    """‖A B‖₂ ≤ v for A (d×k), B (k×d): "core" tests v²G_B − G_B G_A G_B ≻ 0 with
    G_A = AᵀA, G_B = BBᵀ (k×k; it implies G_B ≻ 0 and λ_max(G_A G_B) < v²); "frobenius" tests
    v² ≥ ‖A‖_F²‖B‖_F²."""
    if v < 0:
        return False
    ai, sa = to_int(a)
    bi, sb = to_int(b)
    p, q = v.numerator, v.denominator
    if method == "frobenius":
        return p * p * 4 ** (sa + sb) >= q * q * int((ai * ai).sum()) * int((bi * bi).sum())
    if method != "core":
        raise Unreadable(f"unknown product-norm method {method!r}")
    ga, gb = ai.T @ ai, bi @ bi.T
    lhs = (p * p * 4 ** (sa + sb)) * gb - (q * q) * (gb @ ga @ gb)
    return pd_truncated(lhs)


def vecnorm_le(vec_int: np.ndarray, s: int, v: Fraction) -> bool:
    """‖vec‖₂ ≤ v for vec = vec_int / 2^s."""
    return v >= 0 and v.numerator**2 * 4**s >= v.denominator**2 * int((vec_int * vec_int).sum())


# ---- transcendental constants ---------------------------------------------------------------
def exp_bounds(y: Fraction, bits: int = 200) -> tuple[Fraction, Fraction]:
    """Rationals lo ≤ e^y ≤ hi for y ≥ 0 (Taylor with remainder at y/2^k ≤ 1/2, then squaring,
    rounded outward to 2^-bits after each step)."""
    if y < 0:
        raise ValueError("exp_bounds needs y >= 0")
    k = 0
    while y / 2**k > Fraction(1, 2):
        k += 1
    z = y / 2**k
    term, s = Fraction(1), Fraction(1)
    for i in range(1, 30):
        term = term * z / i
        s += term
    rem = term * z / 30 * 2  # e^z ≤ 2 for z ≤ 1/2: remainder ≤ 2·z^30/30!
    scale = 2**bits
    lo, hi = s, s + rem
    for _ in range(k):
        lo = Fraction(math.floor(lo * lo * scale), scale)
        hi = Fraction(math.ceil(hi * hi * scale), scale)
    return lo, hi


def tanh_bounds(u: Fraction) -> tuple[Fraction, Fraction]:
    """lo ≤ tanh(u) ≤ hi, from tanh(u) = 1 − 2/(e^{2u} + 1) (odd)."""
    if u < 0:
        lo, hi = tanh_bounds(-u)
        return -hi, -lo
    elo, ehi = exp_bounds(2 * u)
    return 1 - 2 / (elo + 1), 1 - 2 / (ehi + 1)


def _imul(a, b):
    ps = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return min(ps), max(ps)


def _iadd(a, b):
    return a[0] + b[0], a[1] + b[1]


def _gelu_consts():
    rel = Fraction(1, 2**50)  # covers the float64 constants GPT-2's code uses as well
    c_lo = (1 / sqrt_up(PI_HI / 2)) * (1 - rel)
    c_hi = sqrt_up(2 / PI_LO) * (1 + rel)
    a = Fraction(44715, 10**6)
    return (c_lo, c_hi), (a * (1 - rel), a * (1 + rel))


def gelu_tanh_sup_le(v: Fraction, x_max: int = 8, max_depth: int = 40,
                     budget: int = 5000) -> bool:
    """sup_x |gelu_new′(x)| ≤ v, gelu_new′(x) = ½(1+T) + ½x(1−T²)c(1+3Ax²), T = tanh(c(x+Ax³)).

    On [−8, 8]: interval evaluation on pieces, bisected until each piece is ≤ v (T is enclosed
    by tanh at the piece ends, as c(x + Ax³) increases with x). Outside: for x ≥ 8,
    0 ≤ g′ − ½(1+T) ≤ h(x) = 2xc(1+3Ax²)e^{−2c(x+Ax³)}, which decreases for x ≥ 8 (its
    log-derivative is < 1/x + 2/x − 2c < 0), so g′ ≤ 1 + h(8); for x ≤ −8, |g′| ≤
    max(1 − tanh(u(8)), h(8)) ≤ 1. Both are checked at x = 8.

    At most ``budget`` pieces are evaluated: a claim within ~10⁻⁶ of the true sup (≈ 1.1289931)
    would need very many, and is reported unconfirmed (False) instead of hanging the checker.
    """
    (c_lo, c_hi), (a_lo, a_hi) = _gelu_consts()
    cache: dict[Fraction, tuple[Fraction, Fraction]] = {}

    def t_at(x: Fraction, upper: bool) -> Fraction:
        # u(x) = c(x + A x³) over the constant intervals, then tanh at the chosen end
        poly = (x + a_lo * x**3, x + a_hi * x**3)
        us = [c * pv for c in (c_lo, c_hi) for pv in poly]
        u = max(us) if upper else min(us)
        if u not in cache:
            cache[u] = tanh_bounds(u)
        return cache[u][1] if upper else cache[u][0]

    left = [budget]

    def piece_ok(a: Fraction, b: Fraction, depth: int) -> bool:
        left[0] -= 1
        if left[0] < 0:
            return False
        t = (t_at(a, False), t_at(b, True))
        x = (a, b)
        one_m_t2 = (1 - max(t[0] ** 2, t[1] ** 2), 1 - (0 if t[0] <= 0 <= t[1] else
                                                           min(t[0] ** 2, t[1] ** 2)))
        x2 = _imul(x, x) if not (a <= 0 <= b) else (Fraction(0), max(a * a, b * b))
        poly = _iadd((Fraction(1), Fraction(1)), _imul((3 * a_lo, 3 * a_hi), x2))
        second = _imul(_imul(_imul(x, one_m_t2), (c_lo, c_hi)), poly)
        g = ((1 + t[0]) / 2 + second[0] / 2, (1 + t[1]) / 2 + second[1] / 2)
        if max(abs(g[0]), abs(g[1])) <= v:
            return True
        if depth >= max_depth:
            return False
        mid = (a + b) / 2
        return piece_ok(a, mid, depth + 1) and piece_ok(mid, b, depth + 1)

    step = Fraction(1, 8)
    x = Fraction(-x_max)
    while x < x_max:
        if not piece_ok(x, x + step, 0):
            return False
        x += step
    # tails at x = 8: h(8) with e^{−2u} ≤ 1/e^{2u_lo}
    x8 = Fraction(x_max)
    u8 = c_lo * (x8 + a_lo * x8**3)
    e_lo, _ = exp_bounds(2 * u8)
    h8 = 2 * x8 * c_hi * (1 + 3 * a_hi * x8**2) / e_lo
    return v >= 1 + h8


def gelu_exact_sup_le(v: Fraction) -> bool:
    """sup |Φ(x) + xφ(x)| ≤ 1 + φ(1) ≤ v: Φ ∈ [0, 1], xφ(x) ∈ [−φ(1), φ(1)] (max at |x| = 1),
    φ(1) = e^{−1/2}/√(2π), bounded with a Taylor lower bound on e^{1/2} and π ≥ PI_LO."""
    e_half_lo, _ = exp_bounds(Fraction(1, 2))
    # φ(1)² = 1/(e·2π) ≤ 1/(e_half_lo²·2·PI_LO)
    phi1_sq_ub = 1 / (e_half_lo**2 * 2 * PI_LO)
    return v >= 1 and (v - 1) ** 2 >= phi1_sq_ub


# ---- own float64 forward pass (only to confirm the witness) ---------------------------------
def _ln(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def residual_inputs(w, tokens: np.ndarray | None, upto: int,
                    eps: float | None = None) -> list[np.ndarray]:
    """x_0 .. x_upto of GPT-2 in float64 (embeddings, then blocks), with LayerNorm eps ``eps``
    (default the model's: a certificate for another eps is about that variant's trajectory)."""
    eps = w.eps if eps is None else eps
    if w.embeddings is not None:
        x = np.array(w.embeddings, dtype=np.float64)
    else:
        x = w.wte[tokens] + w.wpe[: len(tokens)]
    xs = [x]
    n = x.shape[0]
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    for layer in range(upto):
        z = _ln(x, w.ln1_g[layer], w.ln1_b[layer], eps)
        out = np.zeros_like(x)
        for h in range(w.n_heads):
            q = z @ w.W_Q[layer, h] + w.b_Q[layer, h]
            k = z @ w.W_K[layer, h] + w.b_K[layer, h]
            v = z @ w.W_V[layer, h] + w.b_V[layer, h]
            s = np.where(mask, -np.inf, q @ k.T / math.sqrt(q.shape[1]))
            e = np.exp(s - s.max(-1, keepdims=True))
            out += (e / e.sum(-1, keepdims=True)) @ v @ w.W_O[layer, h]
        y = x + out + w.b_O[layer]
        pre = _ln(y, w.ln2_g[layer], w.ln2_b[layer], eps) @ w.W_in[layer] + w.b_in[layer]
        if w.gelu_kind == "tanh":
            act = 0.5 * pre * (1 + np.tanh(math.sqrt(2 / math.pi) * (pre + 0.044715 * pre**3)))
        else:
            act = 0.5 * pre * (1 + np.vectorize(math.erf)(pre / math.sqrt(2)))
        x = y + act @ w.W_out[layer] + w.b_out[layer]
        xs.append(x)
    return xs


# ---- fixed-point ball arithmetic (integers at scale 2^P) -----------------------------------
def _shift_down(c: np.ndarray, r: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rescale a ball from 2^(P+k) to 2^P: floor the centre, widen the radius by 2."""
    if k <= 0:
        return c * (1 << -k), r * (1 << -k)
    f = np.frompyfunc(lambda v: v >> k, 1, 1)
    return f(c), f(r) + 2


def _at_p(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Floats as a ball at scale P (exact when the float's last bit is ≥ 2^-P)."""
    ai, s = to_int(a)
    if s <= P:
        return ai * (1 << (P - s)), np.zeros(ai.shape, dtype=object) * 0
    return _shift_down(ai, np.zeros(ai.shape, dtype=object) * 0, s - P)


def _affine(zc, zr, w: np.ndarray, b: np.ndarray):
    """Ball of Z W + b at scale P."""
    wi, sw = to_int(w)
    c, r = _shift_down(zc @ wi, zr @ np.abs(wi), sw)
    bc, br = _at_p(b)
    return c + bc, r + br


def _row_sigma_sq(row: np.ndarray, sx: int, eps: Fraction) -> Fraction:
    """var(row) + eps exactly, for row = integers / 2^sx."""
    d = len(row)
    s = int(row.sum())
    ss = int((row * row).sum())
    return Fraction((d * ss - s * s) * eps.denominator + eps.numerator * d * d * 4**sx,
                    d * d * 4**sx * eps.denominator)


def sqrt_down(x: Fraction, bits: int = P) -> Fraction:
    """A rational ≤ √x."""
    if x <= 0:
        return Fraction(0)
    return Fraction(math.isqrt(math.floor(x * 4**bits)), 2**bits)


def _layernorm_ball(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: Fraction,
                    tol: Fraction = Fraction(0)):
    """Ball at scale P of the exact LayerNorm of every x' with |x' − x| ≤ tol entrywise
    (x, γ, β exact floats). For tol > 0 each row's radius grows by max|γ|·√d·tol/(σ − tol):
    ‖J_LN‖₂ ≤ max|γ|/σ and σ = √(var + eps) is 1/√d-Lipschitz in ℓ₂."""
    xi, sx = to_int(x)
    gi, sg = to_int(g)
    n, d = xi.shape
    gm = Fraction(float(np.max(np.abs(g))))
    zc = np.empty((n, d), dtype=object)
    zr = np.empty((n, d), dtype=object)
    for i in range(n):
        row = xi[i]
        s = int(row.sum())
        var_eps = _row_sigma_sq(row, sx, eps)  # 1/σ = √(1/var_eps)
        lo = math.isqrt(math.floor(4**P / var_eps))  # lo ≤ 2^P/σ < lo + 1
        hi = lo + 1
        extra = 0
        if tol:
            sig = sqrt_down(var_eps) - tol
            if sig <= 0:
                raise Refuted(f"witness tolerance {float(tol):.3g} is not below the LayerNorm "
                              f"scale of row {i}")
            extra = math.ceil(gm * sqrt_up(Fraction(d)) * tol / sig * 2**P) + 1
        dd = d * (1 << (sx + sg))
        for j in range(d):
            t = (d * int(row[j]) - s) * int(gi[j])  # γ(x − μ) = t / dd
            a, c2 = t * lo, t * hi
            zlo, zhi = min(a, c2) // dd, -((-max(a, c2)) // dd)
            mid = (zlo + zhi) // 2
            zc[i, j], zr[i, j] = mid, zhi - mid + extra
    bc, br = _at_p(b)
    return zc + bc, zr + br


def _exp_neg_ub(m: Fraction, degree: int) -> Fraction | None:
    """1/Σ_{i≤degree} m^i/i! ≥ e^{−m} for m > 0."""
    if m <= 0:
        return None
    term, s = Fraction(1), Fraction(1)
    for i in range(1, degree + 1):
        term = term * m / i
        s += term
    return 1 / s


def score_bounds(zc, zr, w, layer: int, head: int):
    """(s_lo, s_hi, Q ball, K ball): integer bounds at scale P on the exact attention logits
    (Z W_Q + b_Q)(Z W_K + b_K)ᵀ/√dh over the ball of Z (no mask)."""
    qc, qr = _affine(zc, zr, w.W_Q[layer, head], w.b_Q[layer, head])
    kc, kr = _affine(zc, zr, w.W_K[layer, head], w.b_K[layer, head])
    sc = qc @ kc.T
    sr = np.abs(qc) @ kr.T + qr @ np.abs(kc).T + qr @ kr.T
    sc, sr = _shift_down(sc, sr, P)
    dh = w.d_head
    # 1/√dh ∈ [ilo, ihi] / 2^P
    ilo = math.isqrt(4**P // dh)
    while ilo * ilo * dh > 4**P:
        ilo -= 1
    ihi = ilo + 1
    lo_v, hi_v = sc - sr, sc + sr
    pick = np.frompyfunc(lambda v, a, b: v * a if v >= 0 else v * b, 3, 1)
    s_lo = np.frompyfunc(lambda v: v >> P, 1, 1)(pick(lo_v, ilo, ihi))
    s_hi = np.frompyfunc(lambda v: -((-v) >> P), 1, 1)(pick(hi_v, ihi, ilo))
    return s_lo, s_hi, (qc, qr), (kc, kr)


def witness_in_ball(own: np.ndarray, x: np.ndarray, tol: Fraction, where: str) -> None:
    """The checker's own float64 forward must lie within tol of the witness: the claims are
    then checked for every point of that ball, the true trajectory included."""
    if tol < 0:
        raise Refuted(f"{where}: negative witness tolerance")
    diff = float(np.max(np.abs(own - x))) if x.size else 0.0
    if not Fraction(diff) <= tol:
        raise Refuted(f"{where}: not the model's residual stream at the prompt (max difference "
                      f"{diff:.3g} > witness_tol {float(tol):.3g})")


def check_induction_head(w, claim: dict, tokens: list[int], eps: Fraction, degree: int,
                         where: str) -> list[str]:
    """Re-derive one induction-head certificate; raise Refuted naming the first false claim."""
    layer, head = int(claim["layer"]), int(claim["head"])
    if not (0 <= layer < w.n_layers and 0 <= head < w.n_heads):
        raise Refuted(f"{where}: no head L{layer}H{head} in this model")
    toks = np.array(tokens, dtype=np.int64)
    x = np.array([[float.fromhex(v) for v in row] for row in claim["witness_x"]])
    if x.shape != (len(toks), w.d_model):
        raise Refuted(f"{where}: witness x has shape {x.shape}, expected {(len(toks), w.d_model)}")
    own = residual_inputs(w, toks if w.embeddings is None else None, layer, float(eps))[layer]
    tol = frac(claim.get("witness_tol", 0), f"{where}.witness_tol")
    witness_in_ball(own, x, tol, f"{where}.witness_x")
    zc, zr = _layernorm_ball(x, w.ln1_g[layer], w.ln1_b[layer], eps, tol)
    s_lo, s_hi, _, _ = score_bounds(zc, zr, w, layer, head)
    # values val_k = (Z_k W_V + b_V)·(W_O u)
    correct, incorrect = int(claim["correct"]), int(claim["incorrect"])
    ui, su = to_int(w.W_U[:, correct])
    vi, sv = to_int(w.W_U[:, incorrect])
    s_u = max(su, sv)
    u_int = ui * (1 << (s_u - su)) - vi * (1 << (s_u - sv))
    oi, so = to_int(w.W_O[layer, head])
    wou = oi @ u_int  # scale so + s_u
    vc, vr = _affine(zc, zr, w.W_V[layer, head], w.b_V[layer, head])
    valc, valr = _shift_down(vc @ wou, vr @ np.abs(wou), so + s_u)
    scale = Fraction(1, 2**P)
    val_lo = [Fraction(int(c - r)) * scale for c, r in zip(valc, valr, strict=True)]
    val_hi = [Fraction(int(c + r)) * scale for c, r in zip(valc, valr, strict=True)]
    lo = frac(claim["value_lo"], f"{where}.value_lo")
    hi = frac(claim["value_hi"], f"{where}.value_hi")
    if lo > min(val_lo):
        raise Refuted(f"{where}.value_lo: {float(lo):.17g} > a key's value "
                      f"(≥ {float(min(val_lo)):.17g})")
    if hi < max(val_hi):
        raise Refuted(f"{where}.value_hi: {float(hi):.17g} < a key's value "
                      f"(≤ {float(max(val_hi)):.17g})")
    # the induction queries and their targets, recomputed from the tokens
    targets: dict[int, int] = {}
    last: dict[int, int] = {}
    for q, tok in enumerate(tokens):
        if tok in last:
            targets[q] = last[tok] + 1
        last[tok] = q
    rows = claim["queries"]
    if sorted(int(r["q"]) for r in rows) != sorted(targets):
        raise Refuted(f"{where}.queries: the covered queries are not the prompt's induction "
                      f"queries {sorted(targets)}")
    lds = []
    for r in rows:
        q, t = int(r["q"]), int(r["target_key"])
        wq = f"{where}.queries[q={q}]"
        if targets[q] != t:
            raise Refuted(f"{wq}.target_key: {t}, but the successor of the previous occurrence "
                          f"is {targets[q]}")
        ms = [Fraction(int(s_lo[q, t]) - int(s_hi[q, k])) * scale for k in range(q + 1) if k != t]
        if r.get("margin_lb") is not None:
            if ms and frac(r["margin_lb"], f"{wq}.margin_lb") > min(ms):
                raise Refuted(f"{wq}.margin_lb: {float(frac(r['margin_lb'], wq)):.17g} > the "
                              f"certified margin {float(min(ms)):.17g}")
        es = [_exp_neg_ub(m, degree) for m in ms]
        eps_own = (Fraction(1) if any(e is None for e in es)
                   else min(Fraction(1), sum(es, Fraction(0))))
        eps_c = frac(r["eps_ub"], f"{wq}.eps_ub")
        if eps_c < eps_own:
            raise Refuted(f"{wq}.eps_ub: {float(eps_c):.17g} < the certified attention mass "
                          f"away from the target {float(eps_own):.17g}")
        if bool(r["vacuous"]) != (eps_c >= 1):
            raise Refuted(f"{wq}.vacuous: {r['vacuous']} contradicts eps_ub {float(eps_c)}")
        vt = frac(r["val_target_lb"], f"{wq}.val_target_lb")
        if vt > val_lo[t]:
            raise Refuted(f"{wq}.val_target_lb: {float(vt):.17g} > the target's value "
                          f"(≥ {float(val_lo[t]):.17g})")
        e = min(eps_own, Fraction(1))
        bound = (1 - e) * max(val_lo[t], lo) + e * lo
        ld = frac(r["logit_diff_lb"], f"{wq}.logit_diff_lb")
        if ld > bound:
            raise Refuted(f"{wq}.logit_diff_lb: {float(ld):.17g} > the certified lower bound "
                          f"{float(bound):.17g}")
        lds.append(ld)
    if lds and claim.get("logit_diff_lb_min") is not None:
        if frac(claim["logit_diff_lb_min"], f"{where}.logit_diff_lb_min") > min(lds):
            raise Refuted(f"{where}.logit_diff_lb_min: larger than a query's logit_diff_lb")
    n_vac = sum(bool(r["vacuous"]) for r in rows)
    return [f"{where}: L{layer}H{head}, {len(rows)} induction queries "
            f"({len(rows) - n_vac} non-vacuous), values in [{float(lo):.6g}, {float(hi):.6g}]"]


# ---- the global (weight-only) claims --------------------------------------------------------
# the one field that names what a claim of each kind is about (the rest have none)
_SUB_FIELD = {"ln_jacobian": "which", "ln_output_norm": "which", "ln_jacobian_local": "which",
              "opnorm": "matrix", "vecnorm": "vector"}
# every field a claim may carry; a field that its kind does not use is refused (a stray
# "which" on an opnorm claim must not relabel what it proves)
_COMMON_FIELDS = {"id", "kind", "value", "layer", "head"}
_KIND_FIELDS = {"opnorm": {"matrix", "method"}, "opnorm_product": {"matrices", "method"},
                "vecnorm": {"vector"}, "gelu_deriv_sup": {"gelu"}, "head_value": {"n"},
                "head_pattern": {"n"}, "ln_jacobian": {"which"}, "ln_output_norm": {"which"},
                "ln_jacobian_local": {"which"}}


def _key(c: dict) -> tuple:
    """(kind, layer, head, sub): what the claim proves, sub from the kind's own field only."""
    f = _SUB_FIELD.get(c["kind"])
    return (c["kind"], c.get("layer"), c.get("head"), None if f is None else c.get(f))


def check_global(w, claims: list[dict], eps: Fraction, memo: dict | None = None) -> list[str]:
    """Verify the weight-only claims in order; derived claims use the already-verified values."""
    n_ctx = check_claims(w, claims, eps, memo=memo)
    return [f"global: {len(claims)} claims (weight norms, LayerNorm, GELU′, per-head and "
            f"per-layer constants, ∏(1 + C_l)) for every prompt of length ≤ {n_ctx}"]


def check_claims(w, claims: list[dict], eps: Fraction, extra=None, scope: str = "",
                 memo: dict | None = None) -> int | None:
    """Verify a list of claims in order (derived claims use already-verified values); kinds
    this function does not know go to ``extra(claim, value, get) -> bool``. ``scope`` "_local"
    makes layer_C compose layer_attn_local and layer_mlp_local. ``memo`` remembers weight-norm
    claims already proved (the local part repeats the global part's). Returns the context
    length."""
    val: dict[tuple, Fraction] = {}
    memo = {} if memo is None else memo
    n_ctx = w.n_ctx if w.n_ctx is not None else (
        len(w.embeddings) if w.embeddings is not None else None)

    def get(kind, layer=None, head=None, sub=None) -> Fraction:
        k = (kind, layer, head, sub)
        if k not in val:
            raise Refuted(f"missing claim {kind} (layer {layer}, head {head}, {sub}) that a "
                          "derived claim needs")
        return val[k]

    for c in claims:
        cid = str(c.get("id", c.get("kind")))
        kind = c.get("kind")
        v = frac(c.get("value"), f"{cid}.value")
        layer, head = c.get("layer"), c.get("head")
        ok: bool
        mkey = (kind, layer, head, c.get("matrix"), c.get("method"), c.get("gelu"), v)
        if kind in ("gelu_deriv_sup", "opnorm", "opnorm_product") and mkey in memo:
            ok = True
        elif kind == "gelu_deriv_sup":
            if c.get("gelu") != w.gelu_kind:
                raise Refuted(f"{cid}: for GELU kind {c.get('gelu')!r}, the model uses "
                              f"{w.gelu_kind!r}")
            ok = gelu_tanh_sup_le(v) if w.gelu_kind == "tanh" else gelu_exact_sup_le(v)
            if not ok:
                raise Refuted(f"{cid}: {float(v):.17g} is not confirmed as ≥ sup|GELU′| (for "
                              "gelu_new the true sup is ≈ 1.1289931, and a claim within ~1e-6 "
                              "of it is beyond the checker's budget; for the erf GELU the "
                              "checker confirms values ≥ 1 + φ(1) ≈ 1.24198)")
        elif kind == "softmax_jacobian_sup":
            ok = v >= Fraction(1, 2)  # λ_max(diag p − ppᵀ) ≤ max_i 2p_i(1 − p_i) ≤ ½
        elif kind == "ln_jacobian":
            g = getattr(w, f"{c['which']}_g")[layer]
            gm = Fraction(float(np.max(np.abs(g))))
            ok = v >= 0 and v * v * eps >= gm * gm
        elif kind == "ln_output_norm":
            g, b = getattr(w, f"{c['which']}_g")[layer], getattr(w, f"{c['which']}_b")[layer]
            gm = Fraction(float(np.max(np.abs(g))))
            bi, sb = to_int(b)
            t = v - sqrt_up(Fraction(int((bi * bi).sum()), 4**sb))
            ok = t >= 0 and t * t >= gm * gm * w.d_model
        elif kind == "opnorm":
            name = c["matrix"]
            m = getattr(w, name)[layer] if head is None else getattr(w, name)[layer, head]
            ok = opnorm_le(m, v, c["method"])
        elif kind == "opnorm_product":
            ok = product_norm_le(w.W_V[layer, head], w.W_O[layer, head], v, c["method"])
        elif kind == "vecnorm":
            name = c["vector"]
            if name in ("b_Q", "b_K"):
                vi, s = to_int(getattr(w, name)[layer, head])
            elif name == "b_V W_O":
                bi, sb = to_int(w.b_V[layer, head])
                oi, so = to_int(w.W_O[layer, head])
                vi, s = bi @ oi, sb + so
            else:
                raise Unreadable(f"{cid}: unknown vector {name!r}")
            ok = vecnorm_le(vi, s, v)
        elif kind in ("head_value", "head_pattern"):
            n = int(c["n"])
            if n_ctx is None or n < n_ctx:
                raise Refuted(f"{cid}: n = {n} is below the model's context length {n_ctx}")
            vo = get("opnorm_product", layer, head, None)
            if kind == "head_value":
                ok = v >= 0 and v * v >= n * vo * vo
            else:
                r = get("ln_output_norm", layer, None, "ln1")
                nq, nk = get("opnorm", layer, head, "W_Q"), get("opnorm", layer, head, "W_K")
                q_max = r * nq + get("vecnorm", layer, head, "b_Q")
                k_max = r * nk + get("vecnorm", layer, head, "b_K")
                vo_row = r * vo + get("vecnorm", layer, head, "b_V W_O")
                x = get("softmax_jacobian_sup") * n * vo_row * (nq * k_max + q_max * nk)
                ok = v >= 0 and v * v * w.d_head >= x * x
        elif kind == "layer_attn":
            s = sum((get("head_value", layer, h) + get("head_pattern", layer, h)
                     for h in range(w.n_heads)), Fraction(0))
            ok = v >= get("ln_jacobian", layer, None, "ln1") * s
        elif kind == "layer_mlp":
            ok = v >= (get("ln_jacobian", layer, None, "ln2") * get("opnorm", layer, None, "W_in")
                       * get("gelu_deriv_sup") * get("opnorm", layer, None, "W_out"))
        elif kind == "layer_C":
            a, m = get("layer_attn" + scope, layer), get("layer_mlp" + scope, layer)
            ok = v >= a + m + a * m
        elif kind == "total_amplification":
            p = Fraction(1)
            for i in range(w.n_layers):
                p *= 1 + get("layer_C", i)
            ok = v >= p
        elif extra is not None:
            ok = extra(c, v, get)
        else:
            raise Unreadable(f"{cid}: unknown claim kind {kind!r}")
        if not ok:
            raise Refuted(f"{cid}: the claimed value {float(v):.17g} is not a valid bound")
        memo[mkey] = True
        val[_key(c)] = v
    for i in range(w.n_layers):
        get("layer_C", i)
    get("total_amplification")
    return n_ctx


# ---- the certificate's structure, validated before any claim is checked ----------------------
# Structurally malformed (a missing field, a wrong JSON type, bad syntax, a value outside its
# domain whatever the model) → Unreadable; well-formed but false for this model (an index outside
# the model, inconsistent counts, duplicates) → Refuted. Every message names the field path.
MAX_TAYLOR_DEGREE = 64
_LN = ("ln1", "ln2")
_HEAD_MATRICES = ("W_Q", "W_K", "W_V", "W_O")
_LAYER_MATRICES = ("W_in", "W_out")
_VECTORS = ("b_Q", "b_K", "b_V W_O")
_METHODS = {"opnorm": ("gram", "frobenius"), "opnorm_product": ("core", "frobenius")}
# kind: (layer, head), each "req" (an index), "opt" (an index or null) or None (absent or null)
_CLAIM_INDICES = {
    "gelu_deriv_sup": (None, None), "softmax_jacobian_sup": (None, None),
    "ln_jacobian": ("req", None), "ln_output_norm": ("req", None), "opnorm": ("req", "opt"),
    "opnorm_product": ("req", "req"), "vecnorm": ("req", "req"), "head_value": ("req", "req"),
    "head_pattern": ("req", "req"), "layer_attn": ("req", None), "layer_mlp": ("req", None),
    "layer_C": ("req", None), "total_amplification": (None, None),
}
# the local part: the weight norms it uses, then its own kinds (nfp_steps/check_local.py)
_LOCAL_CLAIM_INDICES = {
    **{k: _CLAIM_INDICES[k] for k in ("gelu_deriv_sup", "softmax_jacobian_sup", "opnorm",
                                      "opnorm_product", "layer_C", "total_amplification")},
    "ln_jacobian_local": ("req", None), "head_value_local": ("req", "req"),
    "head_pattern_local": ("req", "req"), "layer_attn_local": ("req", None),
    "layer_mlp_local": ("req", None),
}


def _show(v) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _obj(v, where: str) -> dict:
    if not isinstance(v, dict):
        raise Unreadable(f"{where}: expected a JSON object, found {_show(v)}")
    return v


def _arr(v, where: str) -> list:
    if not isinstance(v, list):
        raise Unreadable(f"{where}: expected a JSON list, found {_show(v)}")
    return v


def _need(d: dict, key: str, where: str):
    if key not in d:
        raise Unreadable(f"{where}.{key}: missing")
    return d[key]


def _int(v, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise Unreadable(f"{where}: expected an integer, found {_show(v)}")
    return v


def _index(v, n: int, where: str, what: str) -> int:
    """An integer index into the model (0 ≤ v < n): else Unreadable (type) or Refuted (range)."""
    _int(v, where)
    if not 0 <= v < n:
        raise Refuted(f"{where}: {v} is not a {what} of this model (it has {n})")
    return v


def _hex(v, where: str) -> float:
    try:
        if not isinstance(v, str):
            raise TypeError
        x = float.fromhex(v)
    except (TypeError, ValueError, OverflowError):
        raise Unreadable(f"{where}: not a float.hex string: {_show(v)}") from None
    if not math.isfinite(x):
        raise Unreadable(f"{where}: not a finite number: {_show(v)}")
    return x


def _validate_witness(rows, d: int, where: str) -> None:
    """A witness: a list of rows of d finite ``float.hex`` strings."""
    for i, row in enumerate(_arr(rows, where)):
        if len(_arr(row, f"{where}[{i}]")) != d:
            raise Unreadable(f"{where}[{i}]: {len(row)} entries, expected d_model = {d}")
        for j, v in enumerate(row):
            _hex(v, f"{where}[{i}][{j}]")


def _validate_top(cert: dict) -> tuple[Fraction, int, Fraction | None]:
    """The top-level fields that need no model: (eps, exp_taylor_degree, act_deriv_flag)."""
    _int(cert.get("exp_taylor_degree", 3), "exp_taylor_degree")
    degree = cert.get("exp_taylor_degree", 3)
    if not 1 <= degree <= MAX_TAYLOR_DEGREE:
        raise Unreadable(f"exp_taylor_degree: {degree} is not in 1..{MAX_TAYLOR_DEGREE}")
    for key in ("model_sha256", "global", "local", "induction"):
        _need(cert, key, "certificate")
    if not isinstance(cert["model_sha256"], str):
        raise Unreadable(f"model_sha256: expected a string, found {_show(cert['model_sha256'])}")
    eps = frac(_need(cert, "eps", "certificate"), "eps")
    if eps <= 0:
        raise Unreadable(f"eps: {float(eps)!r} is not a positive LayerNorm eps")
    flag = cert.get("act_deriv_flag")
    if flag is not None:
        flag = frac(flag, "act_deriv_flag")
        if flag < 0:
            raise Unreadable(f"act_deriv_flag: {float(flag)!r} is negative")
    tokens = cert.get("prompt_tokens")
    if tokens is not None:
        for i, t in enumerate(_arr(tokens, "prompt_tokens")):
            _int(t, f"prompt_tokens[{i}]")
    if cert["global"] is not None:
        for i, c in enumerate(_arr(_need(_obj(cert["global"], "global"), "claims", "global"),
                                   "global.claims")):
            _obj(c, f"global.claims[{i}]")
    if cert["local"] is not None:
        loc = _obj(cert["local"], "local")
        for i, c in enumerate(_arr(_need(loc, "claims", "local"), "local.claims")):
            _obj(c, f"local.claims[{i}]")
    if cert["induction"] is not None:
        for i, c in enumerate(_arr(cert["induction"], "induction")):
            _obj(c, f"induction[{i}]")
    return eps, degree, flag


def _validate_prompt(w, tokens: list | None) -> None:
    if tokens is None:
        return
    for i, t in enumerate(tokens):
        _index(t, w.vocab_size, f"prompt_tokens[{i}]", "token id")
    n_ctx = w.n_ctx if w.n_ctx is not None else (
        len(w.embeddings) if w.embeddings is not None else None)
    if n_ctx is not None and len(tokens) > n_ctx:
        raise Refuted(f"prompt_tokens: {len(tokens)} tokens, longer than the model's context "
                      f"length {n_ctx}")


def _validate_global(w, claims: list[dict], flag: Fraction | None, part: str = "global.claims",
                     kinds: dict = _CLAIM_INDICES) -> None:
    """Every claim's fields for its kind, indices inside the model, no duplicate ids or keys,
    and the GELU′ claim not below the user's --actDeriv flag."""
    ids: dict[str, int] = {}
    keys: dict[tuple, int] = {}
    for i, c in enumerate(claims):
        where = f"{part}[{i}]"
        kind = _need(c, "kind", where)
        if kind not in kinds:
            raise Unreadable(f"{where}.kind: unknown claim kind {_show(kind)}")
        stray = sorted(set(c) - _COMMON_FIELDS - _KIND_FIELDS.get(kind, set()))
        if stray:
            raise Unreadable(f"{where}.{stray[0]}: a {kind} claim has no field {stray[0]!r}")
        if kind == "opnorm_product" and c.get("matrices") != ["W_V", "W_O"]:
            raise Unreadable(f"{where}.matrices: {_show(c.get('matrices'))}, expected "
                             "['W_V', 'W_O']")
        v = frac(_need(c, "value", where), f"{where}.value")
        if "id" in c:
            if not isinstance(c["id"], str):
                raise Unreadable(f"{where}.id: expected a string, found {_show(c['id'])}")
            if c["id"] in ids:
                raise Refuted(f"{where}.id: duplicate claim id {c['id']!r} (also "
                              f"{part}[{ids[c['id']]}])")
            ids[c["id"]] = i
        for name, need, n in zip(("layer", "head"), kinds[kind],
                                 (w.n_layers, w.n_heads), strict=True):
            if c.get(name) is not None:
                if need is None:
                    raise Unreadable(f"{where}.{name}: a {kind} claim has no {name}")
                _index(c[name], n, f"{where}.{name}", name)
            elif need == "req":
                raise Unreadable(f"{where}.{name}: missing (a {kind} claim needs it)")
        if (kind in ("ln_jacobian", "ln_output_norm", "ln_jacobian_local")
                and _need(c, "which", where) not in _LN):
            raise Unreadable(f"{where}.which: {_show(c['which'])} is not one of {_LN}")
        if kind == "opnorm":
            allowed = _LAYER_MATRICES if c.get("head") is None else _HEAD_MATRICES
            if _need(c, "matrix", where) not in allowed:
                raise Unreadable(f"{where}.matrix: {_show(c['matrix'])} is not one of {allowed}"
                                 f" (head {c.get('head')})")
        if kind in _METHODS and _need(c, "method", where) not in _METHODS[kind]:
            raise Unreadable(f"{where}.method: {_show(c['method'])} is not one of "
                             f"{_METHODS[kind]}")
        if kind == "vecnorm" and _need(c, "vector", where) not in _VECTORS:
            raise Unreadable(f"{where}.vector: {_show(c['vector'])} is not one of {_VECTORS}")
        if kind in ("head_value", "head_pattern"):
            _int(_need(c, "n", where), f"{where}.n")
        if kind == "gelu_deriv_sup" and flag is not None and v < flag:
            raise Refuted(f"{where}.value: gelu_deriv_sup {float(v):.17g} is below "
                          f"act_deriv_flag {float(flag):.17g} (the flag may only loosen it)")
        key = _key(c)
        if key in keys:
            raise Refuted(f"{where}: duplicate claim {key} (also {part}[{keys[key]}])")
        keys[key] = i


def _validate_local(w, loc: dict, flag: Fraction | None) -> None:
    """One witness (n × d_model finite float.hex) and one tolerance per layer, and the claims."""
    wits = _arr(_need(loc, "witnesses", "local"), "local.witnesses")
    tols = _arr(_need(loc, "witness_tol", "local"), "local.witness_tol")
    for name, got in (("witnesses", len(wits)), ("witness_tol", len(tols))):
        if got != w.n_layers:
            raise Refuted(f"local.{name}: {got} layers, but the model has {w.n_layers}")
    for layer, rows in enumerate(wits):
        _validate_witness(rows, w.d_model, f"local.witnesses[{layer}]")
    for i, t in enumerate(tols):
        if frac(t, f"local.witness_tol[{i}]") < 0:
            raise Unreadable(f"local.witness_tol[{i}]: {_show(t)} is negative")
    _validate_global(w, loc["claims"], flag, "local.claims", _LOCAL_CLAIM_INDICES)


def _validate_induction(w, claim: dict, tokens: list | None, where: str) -> tuple:
    """One induction entry's fields, indices and counts; returns its (layer, head, correct,
    incorrect) key."""
    layer = _index(_need(claim, "layer", where), w.n_layers, f"{where}.layer", "layer")
    head = _index(_need(claim, "head", where), w.n_heads, f"{where}.head", "head")
    pair = _arr(_need(claim, "pair", where), f"{where}.pair")
    if len(pair) != 4:
        raise Unreadable(f"{where}.pair: expected 4 integers [l1, h1, l2, h2], found "
                         f"{_show(pair)}")
    for j, p in enumerate(pair):
        _int(p, f"{where}.pair[{j}]")
    if pair[2:] != [layer, head]:
        raise Refuted(f"{where}.pair: {pair} does not end with the certified head "
                      f"[{layer}, {head}]")
    _index(pair[0], w.n_layers, f"{where}.pair[0]", "layer")
    _index(pair[1], w.n_heads, f"{where}.pair[1]", "head")
    if not pair[0] < pair[2]:
        raise Refuted(f"{where}.pair: the first head's layer {pair[0]} is not before the "
                      f"induction head's layer {pair[2]}")
    ids = []
    for name in ("correct", "incorrect"):
        ids.append(_index(_need(claim, name, where), w.vocab_size, f"{where}.{name}",
                          "token id"))
    if ids[0] == ids[1]:
        raise Refuted(f"{where}: correct and incorrect are the same token {ids[0]}")
    for name in ("value_lo", "value_hi"):
        frac(_need(claim, name, where), f"{where}.{name}")
    if claim.get("logit_diff_lb_min") is not None:
        frac(claim["logit_diff_lb_min"], f"{where}.logit_diff_lb_min")
    if claim.get("witness_tol") is not None:
        if frac(claim["witness_tol"], f"{where}.witness_tol") < 0:
            raise Unreadable(f"{where}.witness_tol: {_show(claim['witness_tol'])} is negative")
    _validate_witness(_need(claim, "witness_x", where), w.d_model, f"{where}.witness_x")
    queries = _arr(_need(claim, "queries", where), f"{where}.queries")
    seen: dict[int, int] = {}
    n_vac = 0
    for i, r in enumerate(queries):
        wq = f"{where}.queries[{i}]"
        _obj(r, wq)
        q = _int(_need(r, "q", wq), f"{wq}.q")
        if q in seen:
            raise Refuted(f"{wq}.q: query {q} appears twice (also queries[{seen[q]}])")
        seen[q] = i
        _int(_need(r, "target_key", wq), f"{wq}.target_key")
        for name in ("eps_ub", "val_target_lb", "logit_diff_lb"):
            frac(_need(r, name, wq), f"{wq}.{name}")
        if r.get("margin_lb") is not None:
            frac(r["margin_lb"], f"{wq}.margin_lb")
        if not isinstance(_need(r, "vacuous", wq), bool):
            raise Unreadable(f"{wq}.vacuous: expected true or false, found {_show(r['vacuous'])}")
        n_vac += r["vacuous"]
    for name, true in (("n_queries", len(queries)), ("n_nonvacuous", len(queries) - n_vac)):
        if _int(_need(claim, name, where), f"{where}.{name}") != true:
            raise Refuted(f"{where}.{name}: {claim[name]}, but the certificate has {true}")
    return layer, head, ids[0], ids[1]


def check_certificate(cert: dict, model_path: str | None = None, weights=None) -> Verified:
    """Check a parsed certificate against the model (``model_path`` or the one it names; or
    ``weights`` already in memory, with their recorded ``source_sha256``).

    The fields are validated first (:func:`_validate_top`, then against the model's dimensions);
    a stray parsing error that the validation missed still becomes :class:`Unreadable` naming
    the part being checked, never a traceback."""
    from nfp_steps.io.loader import load_model

    if not isinstance(cert, dict):
        raise Unreadable("certificate: not a JSON object")
    if cert.get("format") != FORMAT:
        raise Unreadable(f"not an {FORMAT} certificate (format {_show(cert.get('format'))})")
    path = model_path or _need(cert, "model_path", "certificate")
    if not isinstance(path, str):
        raise Unreadable(f"model_path: expected a string, found {_show(path)}")
    eps, degree, flag = _validate_top(cert)
    sha = cert["model_sha256"]
    tokens = cert.get("prompt_tokens")
    glob, local, ind = cert["global"], cert["local"], cert["induction"] or []
    if weights is not None:
        w = weights
    elif not Path(path).exists():
        raise Unreadable(f"model {path} does not exist (give it with --model)")
    else:
        try:
            w = load_model(path)
        except Exception as exc:  # any reader error: the model cannot be read
            raise Unreadable(f"cannot read model {path}: {exc}") from None
    out = Verified()
    memo: dict = {}
    if w.attrs.get("source_sha256") != sha:
        raise Refuted(f"model_sha256: the certificate is for a model with sha256 {sha}, but "
                      f"{path} has {w.attrs.get('source_sha256')}")
    out.checked.append(f"model sha256 {sha}")
    if eps != Fraction(w.eps):
        out.notes.append(f"the certificate uses LayerNorm eps = {float(eps)!r} (--eps), not the "
                         f"model's {w.eps!r}: every claim, witness and forward pass is about "
                         "that variant of the model, not the model as published")
    part = "certificate"
    try:  # every field first, so a malformed certificate is refused before any costly check
        _validate_prompt(w, tokens)
        if glob is not None:
            part = "global.claims"
            _validate_global(w, glob["claims"], flag)
        if local is not None:
            part = "local"
            if tokens is None and w.embeddings is None:
                raise Refuted("local: the witnesses need the prompt_tokens")
            _validate_local(w, local, flag)
        seen: dict[tuple, int] = {}
        for i, claim in enumerate(ind):
            part = f"induction[{i}]"
            if tokens is None:
                raise Refuted("induction certificates need the prompt_tokens")
            key = _validate_induction(w, claim, tokens, part)
            if key in seen:
                raise Refuted(f"{part}: duplicates induction[{seen[key]}] (L{key[0]}H{key[1]}, "
                              f"correct {key[2]}, incorrect {key[3]})")
            seen[key] = i
        if glob is not None:
            part = "global.claims"
            out.checked += check_global(w, glob["claims"], eps, memo)
        if local is not None:
            part = "local"
            from nfp_steps.check_local import check_local

            out.checked += check_local(w, local, None if tokens is None else list(tokens), eps,
                                       memo)
        for i, claim in enumerate(ind):
            part = f"induction[{i}]"
            out.checked += check_induction_head(w, claim, list(tokens), eps, degree, part)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
            ZeroDivisionError) as exc:  # a malformed field the validation did not name
        raise Unreadable(f"{part}: malformed field ({type(exc).__name__}: {exc})") from None
    return out


def check_file(path: str, model_path: str | None = None) -> Verified:
    """Read and check a certificate file."""
    try:
        cert = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as exc:  # incl. JSON and int-size errors
        raise Unreadable(f"cannot read certificate {path}: {exc}") from None
    if not isinstance(cert, dict):
        raise Unreadable(f"{path}: not a JSON object")
    return check_certificate(cert, model_path)
