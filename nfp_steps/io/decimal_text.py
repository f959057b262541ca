"""Fast, correctly rounded parsing of whitespace-separated decimal numbers (numpy only).

Why: an ``.nfpt`` text file of GPT-2 small holds ~124M decimals (~1.3 GB); Python's ``float()``
per token runs at ~30 MB/s here. This module parses whole byte ranges with vectorised SWAR
(SIMD-within-a-register) arithmetic on ``uint64`` words:

* token boundaries come from one comparison pass (bytes <= 0x20 separate tokens);
* each token's first 16 bytes are loaded as two little-endian words; digit / dot / exponent
  masks, the grammar check ``[+-]?(d+[.d*]|.d+)([eE][+-]?d+)?`` and the digit values are computed
  for all tokens at once;
* a token with at most 15 mantissa digits (leading zeros included, 16 bytes at most without its
  sign) and a decimal exponent k with |k| <= 22 is converted as ``M * 10**k`` or ``M / 10**-k``
  with M < 2**53 and 10**|k| exact doubles: one IEEE operation on exact operands, hence
  correctly rounded (Clinger's fast path). Every other token ("slow" token: long digit strings,
  huge exponents, words, ``nan``) is left to the caller, which parses it with Python's correctly
  rounded ``float()`` after a strict regular-expression check.

The same pass can decide whether each number is the ``'%.9g'`` rendering of a float32 (the
original exporter's format, DESIGN §5): :func:`float32_canonical` explains the test.

Byte ranges are parsed in chunks; numpy releases the GIL inside its loops, so two threads give
close to twice the single-thread speed (see ``benchmarks/bench_nfpt_parse.py``).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

_U = np.uint64
_ONE = _U(1)
_ALL = _U(0xFFFFFFFFFFFFFFFF)
_HI = _U(0x8080808080808080)
_LO7 = _U(0x7F7F7F7F7F7F7F7F)
_MAGIC = _U(0x0102040810204080)
_S7, _S8, _S56, _S64 = _U(7), _U(8), _U(56), _U(64)
# 10**max(k, 0) and 10**max(-k, 0) for k = -22 .. 22, indexed by k + 22: exact doubles
_MUL10 = np.array([10.0 ** max(k, 0) for k in range(-22, 23)])
_DIV10 = np.array([10.0 ** max(-k, 0) for k in range(-22, 23)])
_TWO53 = _U(2**53)

#: Extra bytes that must follow the data in the buffer given to :func:`parse_range`.
PAD = 32
#: Strict grammar of one number (what the fast path accepts, plus long forms).
NUMBER_RE = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _bc(c: int) -> np.uint64:
    return _U(c * 0x0101010101010101)


_B30, _B20, _B2E, _B65 = _bc(0x30), _bc(0x20), _bc(0x2E), _bc(0x65)
_ADD_LT10, _ADD_LT33 = _bc(0x80 - 10), _bc(0x80 - 33)


def _movemask(m):
    """High bit of each byte -> one bit per byte (bit i = byte i)."""
    return ((m >> _S7) * _MAGIC) >> _S56


def _eq(x, b):
    """High bit set in the bytes of x equal to the byte broadcast in b (exact, no carries)."""
    z = x ^ b
    return ~(((z & _LO7) + _LO7) | z) & _HI


def _lt(x, add):
    """High bit set in the bytes of x below n, where add = broadcast(0x80 - n)."""
    return ~(((x & _LO7) + add) | x) & _HI


def _ctz(x):
    """Count of trailing zero bits (64 for x == 0)."""
    return np.bitwise_count((x & (~x + _ONE)) - _ONE)


def _swar8(v):
    """Eight digit values (byte 0 most significant) -> their integer value."""
    v = (v * _U(10)) + (v >> _S8)
    v &= _U(0x00FF00FF00FF00FF)
    v = (v * _U(100)) + (v >> _U(16))
    v &= _U(0x0000FFFF0000FFFF)
    v = (v * _U(10000)) + (v >> _U(32))
    return v & _U(0xFFFFFFFF)


def padded_buffer(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Copy ``data`` into a uint8 array followed by :data:`PAD` spaces (what the parser reads)."""
    a = np.empty(len(data) + PAD, np.uint8)
    a[: len(data)] = np.frombuffer(data, np.uint8)
    a[len(data) :] = 0x20
    return a


def read_padded(path: str | os.PathLike) -> np.ndarray:
    """Read a whole file into a padded uint8 buffer (see :func:`padded_buffer`)."""
    size = os.path.getsize(path)
    a = np.empty(size + PAD, np.uint8)
    view = memoryview(a)
    with open(path, "rb") as f:
        got = 0
        while got < size:
            k = f.readinto(view[got:size])
            if not k:
                break
            got += k
    a = a[: got + PAD]
    a[got:] = 0x20
    return a


def u64_view(a: np.ndarray) -> np.ndarray:
    """Unaligned little-endian uint64 loads at every byte offset of ``a``."""
    return np.ndarray(shape=(a.size - 7,), dtype="<u8", buffer=a, strides=(1,))


@dataclass
class Chunk:
    """Parse result of one byte range.

    ``values[i]`` is the i-th token's value, NaN for a word (any token that is not a number in
    the grammar, or overflows float64), whose token index, byte offset and text are in
    ``word_idx``/``word_pos``/``word_text``. ``f32`` is False once some number is known not to
    be a '%.9g' float32 rendering; ``f32_check`` lists token indices still to check exactly.
    ``bad_control`` is the offset of the first control byte (not tab/CR/LF), or -1.
    """

    values: np.ndarray
    word_idx: list[int]
    word_pos: list[int]
    word_text: list[bytes]
    f32: bool
    f32_check: np.ndarray
    bad_control: int = -1


_NUMCHARS = b"0123456789.eE+-"


def _slow_tokens(seg, lo, st, ns, idx, y, check_f32):
    """Convert the tokens ``idx`` (``st``: starts relative to ``lo``) that the fast path left
    (Python ``float()``, correctly
    rounded); returns the words (idx, pos, text) and the f32 verdict so far."""
    if idx.size == 0:
        return [], [], [], check_f32
    ends = np.flatnonzero(ns[:-1] > ns[1:]) + 1
    if ns.size and ns[-1]:
        ends = np.concatenate((ends, [ns.size]))
    buf = seg.tobytes()
    wi, wp, wt = [], [], []
    f32 = check_f32
    for i, a, b in zip(idx.tolist(), st[idx].tolist(), ends[idx].tolist(), strict=True):
        tok = buf[a:b]
        v = None
        if not tok.translate(None, _NUMCHARS):
            try:
                v = float(tok)
            except ValueError:
                v = None
        if v is None or v in (float("inf"), float("-inf")):
            y[i] = np.nan
            wi.append(i)
            wp.append(lo + a)
            wt.append(tok)
        else:
            y[i] = v
            if f32 and not float32_canonical(v):
                f32 = False
    return wi, wp, wt, f32


def parse_range(a: np.ndarray, a8: np.ndarray, lo: int, hi: int, check_f32: bool) -> Chunk:
    """Tokenize and convert ``a[lo:hi]`` (``a`` padded, ``a8 = u64_view(a)``; ``a[hi]`` <= 0x20)."""
    seg = a[lo:hi]
    if seg.size == 0:
        return Chunk(np.zeros(0), [], [], [], True, np.zeros(0, np.int64))
    ctrl = seg < 0x20
    n_ctrl = int(np.count_nonzero(ctrl))
    bad_control = -1
    if n_ctrl and n_ctrl != int(np.count_nonzero(seg == 0x0A)):
        bad = ctrl & (seg != 0x0A) & (seg != 0x0D) & (seg != 0x09)
        if bad.any():
            bad_control = lo + int(np.argmax(bad))
    ns = seg > 0x20
    st = np.flatnonzero(ns[1:] > ns[:-1]) + 1
    if ns[0]:
        st = np.concatenate((np.zeros(1, st.dtype), st))
    st += lo
    c0 = a[st]
    neg = c0 == 0x2D
    s2 = st + (neg | (c0 == 0x2B))
    wl = a8[s2]
    wh = a8[s2 + 8]
    # token length after the sign: first byte <= 0x20; 16 means "longer than 15 bytes"
    n = _ctz(_movemask(_lt(wl, _ADD_LT33)) | (_movemask(_lt(wh, _ADD_LT33)) << _S8) | _U(1 << 16))
    valid = (_ONE << n) - _ONE
    xl = wl ^ _B30
    xh = wh ^ _B30
    dig = (_movemask(_lt(xl, _ADD_LT10)) | (_movemask(_lt(xh, _ADD_LT10)) << _S8)) & valid
    dot = (_movemask(_eq(wl, _B2E)) | (_movemask(_eq(wh, _B2E)) << _S8)) & valid
    em = (_movemask(_eq(wl | _B20, _B65)) | (_movemask(_eq(wh | _B20, _B65)) << _S8)) & valid
    other = valid & ~(dig | dot | em)
    ndot = np.bitwise_count(dot)
    ok = (np.bitwise_count(em) <= 1) & (ndot <= 1) & (n < 16)
    # exponents are rare in weights: work on the tokens that have one
    ie = np.flatnonzero(em)
    epos = n.copy()
    e10 = np.zeros(n.size, np.int64)
    if ie.size:
        epos_e = _ctz(em[ie])
        epos[ie] = epos_e
        wl_e, wh_e = wl[ie], wh[ie]
        s = (epos_e + _ONE) * _S8
        after = ((wl_e >> s) | (wh_e << (_S64 - s)) | (wh_e >> (s - _S64))) & _U(0xFF)
        esg = (after == 0x2D) | (after == 0x2B)
        other[ie] &= ~np.where(esg, _ONE << (epos_e + _ONE), _U(0))
        nexp = n[ie] - epos_e - _ONE - esg
        ok[ie] &= (nexp >= 1) & (nexp <= 3)
        # exponent digits at [epos + 1 + esg, n), at most 3, right-aligned in 3 bytes
        q = (epos_e + _ONE + esg) * _S8
        xl_e, xh_e = wl_e ^ _B30, wh_e ^ _B30
        ex = (xl_e >> q) | (xh_e << (_S64 - q)) | (xh_e >> (q - _S64))
        ex = (ex << ((_U(8) - np.minimum(nexp, _U(3))) * _S8)) >> _U(40)
        e3 = (ex & _U(0xFF)) * _U(100) + ((ex >> _S8) & _U(0xFF)) * _U(10) + (ex >> _U(16))
        e10[ie] = np.where(after == 0x2D, -e3.astype(np.int64), e3.astype(np.int64))
    e_bit = _ONE << epos
    dotpos = _ctz(dot | e_bit)  # epos when there is no dot
    nd = epos - ndot
    ok &= (other == 0) & (nd >= 1) & (nd <= 15) & (dot < e_bit)
    # mantissa: drop the dot, keep bytes [0, nd), right-align the digits at byte 15
    pb = np.minimum(dotpos, _S8) * _S8
    bl = _ALL >> (_S64 - pb)
    bh = _ALL >> (_S64 - (np.maximum(dotpos, _S8) - _S8) * _S8)
    sl = (xl >> _S8) | (xh << _S56)
    sh = xh >> _S8
    dl = sl ^ ((xl ^ sl) & bl)
    dh = sh ^ ((xh ^ sh) & bh)
    r = (_U(16) - np.minimum(nd, _U(16))) * _S8
    rh = (dh << r) | (dl >> (_S64 - r)) | (dl << (r - _S64))
    rl = dl << r
    mant = _swar8(rl) * _U(10**8) + _swar8(rh)
    k = e10 + (dotpos.astype(np.int64) - nd.astype(np.int64))
    fast = ok & (mant < _TWO53) & (k <= 22) & (k >= -22)
    # one of the two factors is 1: a single correctly rounded operation on exact operands
    ki = k + 22
    y = mant.astype(np.float64) * _MUL10.take(ki, mode="clip") / _DIV10.take(ki, mode="clip")
    y.view(np.uint64)[...] |= neg.astype(np.uint64) << _U(63)  # sign bit (keeps -0.0)
    slow_idx = np.flatnonzero(~fast)
    wi, wp, wt, f32 = _slow_tokens(seg, lo, st - lo, ns, slow_idx, y, check_f32)
    f32_check = np.zeros(0, np.int64)
    if f32:
        # significant digits of the mantissa: 16 - (index of its first nonzero digit byte)
        nz = _movemask((rl + _LO7) & _HI) | (_movemask((rh + _LO7) & _HI) << _S8)
        n_digits = _U(16) - np.minimum(_ctz(nz), _U(16))
        f32, f32_check = _float32_canonical_fast(y, mant, n_digits.astype(np.int64), k, fast)
        if not f32:
            return Chunk(y, wi, wp, wt, False, f32_check, bad_control)
    return Chunk(y, wi, wp, wt, f32 or not check_f32, f32_check, bad_control)


def _float32_canonical_fast(y, mant, n_digits, k, fast):
    """Vectorised test of :func:`float32_canonical` on the fast tokens.

    Returns (no token known to fail, indices of tokens to check exactly). A fast token's value
    is D = M * 10**k exactly (M = ``mant`` with ``n_digits`` digits, so D's decade is
    e = n_digits - 1 + k). With x = fl(D) and f = float32(x), ``float('%.9g' % f) == x`` holds
    iff D is the 9-significant-digit rounding of f (distinct <= 9-digit decimals are distinct
    doubles). If D has <= 9 significant digits it is a multiple of s = 10**(e-8), and then:
    |D - f| < s/2 means D is that rounding; |D - f| > s/2 means it is not (if f lies in a higher
    decade, |D - f| >= s; in a lower one D - f > s unless D = 10**e). x - f is exact
    (Sterbenz) and |D - x| <= ulp(x)/2, so both comparisons are made with a margin. Tokens
    with more than 9 significant digits, D = 10**e, and cases within the margin (ties) go to
    the exact check.
    """
    live = fast & (mant != 0)
    nd = np.maximum(n_digits, 1)
    e = nd - 1 + k
    with np.errstate(all="ignore"):
        f = y.astype(np.float32).astype(np.float64)
        delta = np.abs(y - f)
        half = _HALF_SPACING.take(e + _HALF_OFFSET, mode="clip")
        # |D - x| <= ulp(x)/2 <= half * 2.3e-7 and half is within 1.2e-16 of s/2: the margin
        # 5e-7 * half covers both
        sure_in = delta < half * (1 - 5e-7)
        sure_out = delta > half * (1 + 5e-7)
    exact = (mant == _P10U_TABLE.take(nd - 1, mode="clip")) | (nd > 9)  # D = 10**e, or long
    more = np.flatnonzero(live & (nd > 9))
    if more.size:  # D with > 9 digits but <= 9 significant ones is decided as usual
        m = more[(mant[more] % _P10U_TABLE[nd[more] - 9]) == 0]
        exact[m] = mant[m] == _P10U_TABLE[nd[m] - 1]
    if (live & sure_out & ~exact).any():
        return False, np.zeros(0, np.int64)
    return True, np.flatnonzero(live & (exact | ~(sure_in | sure_out)))


# 0.5 * 10**(e-8) as correctly rounded doubles, indexed by e + _HALF_OFFSET (e in -40 .. 40).
_HALF_OFFSET = 40
_HALF_SPACING = np.array([0.5 * float(f"1e{e - 8}") for e in range(-40, 41)])
_P10U_TABLE = np.array([10**i for i in range(20)], dtype=np.uint64)


def float32_canonical(x: float) -> bool:
    """True iff ``float('%.9g' % np.float32(x)) == x``: x is how the original's exporter's text
    of a float32 parses (so that float32 is the exact weight it had)."""
    with np.errstate(over="ignore"):
        f = np.float32(x)
    if not np.isfinite(f):
        return False
    return float(format(float(f), ".9g")) == x


@dataclass
class Parsed:
    """All tokens of a byte range: values (NaN for words) and where the words are."""

    values: np.ndarray
    word_idx: np.ndarray  # token indices of the words (tokens that are not numbers)
    word_pos: np.ndarray  # their byte offsets
    word_text: list[bytes]  # their text
    float32_origin: bool
    bad_control: int


def _chunks(a: np.ndarray, lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    out = []
    pos = lo
    while pos < hi:
        end = min(pos + size, hi)
        while end < hi and a[end] > 0x20:
            end += 1
        out.append((pos, end))
        pos = end
    return out


def parse_tokens(
    a: np.ndarray,
    lo: int,
    hi: int,
    *,
    check_f32: bool = True,
    chunk_bytes: int = 1 << 21,
    threads: int | None = None,
) -> Parsed:
    """Parse every whitespace-separated token of ``a[lo:hi]`` (``a`` from :func:`read_padded`).

    Numbers (:data:`NUMBER_RE`) are converted correctly rounded; other tokens ("words": markers,
    ``nan``, junk, numbers beyond the float64 range) are NaN in ``values`` and listed for the
    caller to judge. ``float32_origin`` tells whether every number passed
    :func:`float32_canonical` (only computed if ``check_f32``).
    """
    a8 = u64_view(a)
    spans = _chunks(a, lo, hi, chunk_bytes)
    if threads is None:
        threads = min(2, os.cpu_count() or 1)
    state = {"f32": check_f32}

    def work(span):
        c = parse_range(a, a8, span[0], span[1], state["f32"])
        if not c.f32:
            state["f32"] = False
        return c

    if threads > 1 and len(spans) > 1:
        with ThreadPoolExecutor(threads) as ex:
            chunks = list(ex.map(work, spans))
    else:
        chunks = [work(s) for s in spans]
    values = np.concatenate([c.values for c in chunks]) if chunks else np.zeros(0)
    offsets = np.cumsum([0] + [c.values.size for c in chunks])
    f32 = check_f32 and state["f32"] and all(c.f32 for c in chunks)
    if f32:
        for c, o in zip(chunks, offsets, strict=False):
            if not all(float32_canonical(float(values[i])) for i in (c.f32_check + o).tolist()):
                f32 = False
                break
    word_idx = [i + o for c, o in zip(chunks, offsets, strict=False) for i in c.word_idx]
    return Parsed(
        values,
        np.array(word_idx, np.int64),
        np.array([p for c in chunks for p in c.word_pos], np.int64),
        [t for c in chunks for t in c.word_text],
        bool(f32),
        next((c.bad_control for c in chunks if c.bad_control >= 0), -1),
    )
