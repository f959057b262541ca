"""Strict reader and exact writer of the original's ``.nfpt`` text formats (NFP_TEXT_V1/V2).

Layout: ``shared/reference/formats_certify_verify_history.md`` §1.1-1.7. Header ``key=value``
lines (the seven dims, ``layer_norm_eps`` alias ``eps``, ``gelu_kind`` alias ``gelu_deriv`` with
values tanh|exact|gelu_tanh|gelu_exact, any case), optional ``TOKENS``, ``EMBEDDINGS``, then per
layer ``LAYER l``, per head ``HEAD h, W_Q, [b_Q], W_K, [b_K], W_V, [b_V], W_O``, ``[ATTN_BIAS]``,
``MLP, W_in`` followed by ``b_in, W_out, b_out`` (export order) or ``W_out, b_in, b_out`` (legacy
order), V2 only ``LN1_GAMMA, LN1_BETA, LN2_GAMMA, LN2_BETA``; then (V2) ``LN_F_GAMMA, LN_F_BETA``
and ``UNEMBEDDING``.

Strictness (unlike the original, which zero-pads, truncates and drops tokens silently): every
section's number count is checked; a stray word, ``nan``/``inf``, an out-of-range number, a
missing, repeated or out-of-order section, a marker line with extra text, a bad or unknown header
key, a negative or non-integer token id are errors naming the section, the 1-based line and what
was expected vs found. Numbers may wrap across lines freely (only totals count). CRLF is fine.

Optional parts and what they become:
* absent ``b_Q``/``b_K``/``b_V``/``ATTN_BIAS``: zeros, which is what the format defines (the seed's
  files have no biases); their names are listed in ``attrs["zero_filled_sections"]``.
* V1 files have no LayerNorm sections: the format defines gamma = 1, beta = 0 (LayerNorm still
  normalises).
* A *weights-only* file (like ``tiny_sound_model.nfpt``) has no ``EMBEDDINGS`` and/or no
  ``LN_F_*``/``UNEMBEDDING``. It loads with ``embeddings=None`` and, because
  :class:`GPT2Weights` needs them, placeholders ``lnf_g = 1``, ``lnf_b = 0``, ``W_U = 0`` that are
  **not real weights**: the absent section names are listed in ``attrs["missing_sections"]`` and
  :func:`nfp_steps.io.loader.require_sections` lets commands that need logits refuse such a model.
  The writers never write placeholders back as if they were data.
* missing ``layer_norm_eps`` / ``gelu_kind``: 1e-5 / tanh (GPT-2's), named in
  ``attrs["header_defaults"]``.

Decimal input and the rigor contract (DESIGN §5): numbers are converted correctly rounded to
float64 (:mod:`nfp_steps.io.decimal_text`). The original's exporter wrote float32 weights as
``'%.9g'``; if **every** number x in the file satisfies ``float('%.9g' % float32(x)) == x`` the
file is taken as float32-origin and each value is stored as the float32 the exporter had
(``attrs["number_origin"] = "float32"``), so bounds hold for the true weights. Otherwise
``number_origin = "float64-decimal"``: values are the correctly rounded float64 of the decimals
(within half an ulp), and the bounds hold for the weights as rounded to float64, which we treat
as the model.

Writer: ``'%.9g'`` when every value is exactly a float32 (the original exporter's format; read
back bit-exactly through the float32-origin rule), else ``repr`` (shortest round-trip decimal,
17 significant digits at most), so text round trips are bit-exact either way. Every bias section
and the ``layer_norm_eps``/``gelu_kind`` header keys are always written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nfp_steps.io.decimal_text import NUMBER_RE, PAD, parse_tokens, read_padded
from nfp_steps.model import GELU_KINDS, GPT2Weights, ModelError

MAGIC_V1 = "NFP_TEXT_V1"
MAGIC_V2 = "NFP_TEXT_V2"
DIM_KEYS = ("num_layers", "num_heads", "model_dim", "head_dim", "hidden_dim", "vocab_size",
            "seq_len")
_REQUIRED_DIMS = DIM_KEYS[:6]
_KEY_ALIASES = {"layer_norm_eps": "layer_norm_eps", "eps": "layer_norm_eps",
                "gelu_kind": "gelu_kind", "gelu_deriv": "gelu_kind"}
GELU_NAMES = {"tanh": "tanh", "gelu_tanh": "tanh", "exact": "exact", "gelu_exact": "exact"}
DEFAULT_EPS = 1e-5
MARKERS = frozenset(
    "TOKENS EMBEDDINGS LAYER HEAD W_Q b_Q W_K b_K W_V b_V W_O ATTN_BIAS MLP W_in b_in W_out "
    "b_out LN1_GAMMA LN1_BETA LN2_GAMMA LN2_BETA LN_F_GAMMA LN_F_BETA UNEMBEDDING".split()
)
_INDEXED = frozenset({"LAYER", "HEAD"})
_SECTION_START = re.compile(rb"^(TOKENS|EMBEDDINGS|LAYER\b.*)$")
_NONFINITE = re.compile(rb"[+-]?(nan|inf|infinity)", re.IGNORECASE)
_TOKEN_RE = re.compile(rb"[^\x00-\x20]+")


def eps_text(eps: float) -> str:
    """Shortest round-trip spelling of eps with a compact exponent (``1e-5``, as in the
    original's fixtures)."""
    return re.sub(r"e([+-])0+(\d)", r"e\1\2", repr(float(eps)))


# ---- source access -------------------------------------------------------------------------
class _Source:
    """A file's bytes (padded) with line lookups for error messages."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.a = read_padded(path)
        self.size = self.a.size - PAD

    def line_of(self, pos: int) -> int:
        """1-based line number of byte offset ``pos``."""
        return int(np.count_nonzero(self.a[:pos] == 0x0A)) + 1

    def line_bounds(self, pos: int) -> tuple[int, int]:
        """(start, end) byte offsets of the line holding ``pos`` (end excludes the newline)."""
        start = pos
        while start > 0:
            lo = max(0, start - 4096)
            nl = np.flatnonzero(self.a[lo:start] == 0x0A)
            if nl.size:
                start = lo + int(nl[-1]) + 1
                break
            start = lo
        end = pos
        while end < self.size:
            hi = min(self.size, end + 4096)
            nl = np.flatnonzero(self.a[end:hi] == 0x0A)
            if nl.size:
                end = end + int(nl[0])
                break
            end = hi
        return start, end

    def text(self, lo: int, hi: int) -> bytes:
        return self.a[lo:hi].tobytes()

    def token_starts(self, lo: int, hi: int) -> np.ndarray:
        ns = self.a[lo:hi] > 0x20
        st = np.flatnonzero(ns[1:] > ns[:-1]) + 1
        if ns.size and ns[0]:
            st = np.concatenate((np.zeros(1, st.dtype), st))
        return st + lo

    def error(self, pos: int, msg: str) -> ModelError:
        return ModelError(f"{self.path}: line {self.line_of(pos)}: {msg}")


def _show(tok: bytes, limit: int = 40) -> str:
    s = tok.decode("ascii", errors="backslashreplace")
    return repr(s if len(s) <= limit else s[:limit] + "...")


# ---- header ----------------------------------------------------------------------------------
@dataclass
class _Header:
    version: str
    dims: dict[str, int]
    eps: float
    eps_text: str | None
    gelu_kind: str
    defaults: list[str]
    body_start: int


def _parse_header(src: _Source) -> _Header:
    if src.size == 0:
        raise ModelError(f"{src.path}: empty file (expected the magic line {MAGIC_V1} or "
                         f"{MAGIC_V2})")
    pos = 0
    lineno = 0
    version = None
    dims: dict[str, int] = {}
    seen: dict[str, int] = {}
    eps = None
    eps_txt = None
    gelu = None
    while pos < src.size:
        lineno += 1
        _, end = src.line_bounds(pos)
        raw = src.text(pos, end).strip(b" \t\r")
        if version is None:
            if raw not in (MAGIC_V1.encode(), MAGIC_V2.encode()):
                hint = " (a binary file: read it as NFP_BINARY_V1)" if raw.startswith(
                    b"NFP_BINARY_V1") else ""
                raise ModelError(f"{src.path}: line 1: bad magic: expected {MAGIC_V1} or "
                                 f"{MAGIC_V2}, found {_show(raw)}{hint}")
            version = raw.decode()
        elif raw and _SECTION_START.match(raw):
            break
        elif raw:
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError:
                raise ModelError(f"{src.path}: line {lineno}: header: non-ASCII text "
                                 f"{_show(raw)}") from None
            if "=" not in line:
                raise ModelError(
                    f"{src.path}: line {lineno}: header: expected key=value or the first section "
                    f"(TOKENS, EMBEDDINGS or LAYER 0), found {_show(raw)}")
            key, value = (s.strip() for s in line.split("=", 1))
            canon = key if key in DIM_KEYS else _KEY_ALIASES.get(key)
            if canon is None:
                raise ModelError(
                    f"{src.path}: line {lineno}: header: unknown key {key!r} (accepted: "
                    f"{', '.join(DIM_KEYS)}, layer_norm_eps (eps), gelu_kind (gelu_deriv))")
            if canon in seen:
                raise ModelError(f"{src.path}: line {lineno}: header: {key} given twice "
                                 f"(first on line {seen[canon]})")
            seen[canon] = lineno
            if canon in DIM_KEYS:
                if not value.isascii() or not value.isdigit() or int(value) <= 0:
                    raise ModelError(f"{src.path}: line {lineno}: header {key}: expected a "
                                     f"positive integer, found {value!r}")
                dims[canon] = int(value)
            elif canon == "layer_norm_eps":
                ok = NUMBER_RE.fullmatch(value.encode())
                v = float(value) if ok else float("nan")
                if not (np.isfinite(v) and v > 0):
                    raise ModelError(f"{src.path}: line {lineno}: header {key}: expected a "
                                     f"positive finite number, found {value!r}")
                eps, eps_txt = v, value
            else:
                g = GELU_NAMES.get(value.lower())
                if g is None:
                    raise ModelError(
                        f"{src.path}: line {lineno}: header {key}: expected one of "
                        f"{', '.join(GELU_NAMES)}, found {value!r}")
                gelu = g
        pos = end + 1
    else:
        raise ModelError(f"{src.path}: no sections after the header (expected TOKENS, "
                         f"EMBEDDINGS or LAYER 0 by line {lineno + 1})")
    missing = [k for k in _REQUIRED_DIMS if k not in dims]
    if missing:
        raise ModelError(f"{src.path}: header: missing {', '.join(missing)} (before line "
                         f"{lineno})")
    defaults = []
    if eps is None:
        eps = DEFAULT_EPS
        defaults.append("layer_norm_eps")
    if gelu is None:
        gelu = "tanh"
        defaults.append("gelu_kind")
    return _Header(version, dims, eps, eps_txt, gelu, defaults, pos)


# ---- body ------------------------------------------------------------------------------------
@dataclass
class _Item:
    name: str
    index: int | None
    tok: int  # token index of the marker word
    pos: int  # byte offset of the marker word
    line_end: int  # byte offset of the end of its line
    text: bytes = b""  # the word, for junk items


_JUNK = "?"  # name of an item that is a stray word, not a marker


class _Walker:
    """Walks the marker lines in order and hands out the numbers between them."""

    def __init__(self, src: _Source, body_start: int, threads: int | None, chunk_bytes: int):
        self.src = src
        self.where = ""  # " (layer l, head h)" while walking those sections
        parsed = parse_tokens(src.a, body_start, src.size, threads=threads,
                              chunk_bytes=chunk_bytes)
        if parsed.bad_control >= 0:
            c = int(src.a[parsed.bad_control])
            raise src.error(parsed.bad_control, f"control character 0x{c:02x} in the text")
        self.values = parsed.values
        self.float32_origin = parsed.float32_origin
        self.n_tokens = parsed.values.size
        self.items: list[_Item] = []
        for tok, pos, text in zip(parsed.word_idx.tolist(), parsed.word_pos.tolist(),
                                  parsed.word_text, strict=True):
            item = self._marker(tok, pos, text)
            self.items.append(item or _Item(_JUNK, None, tok, pos, pos, text))
        self.i = 0

    def _marker(self, tok: int, pos: int, text: bytes) -> _Item | None:
        try:
            name = text.decode("ascii")
        except UnicodeDecodeError:
            return None
        if name not in MARKERS:
            return None
        start, end = self.src.line_bounds(pos)
        words = self.src.text(start, end).split()
        if self.src.a[start:pos].max(initial=0) > 0x20:
            return None  # not first on its line
        if name in _INDEXED:
            if len(words) != 2 or not words[1].isdigit():
                raise self.src.error(pos, f"expected '{name} <index>' alone on its line, found "
                                          f"{_show(b' '.join(words), 60)}")
            return _Item(name, int(words[1]), tok, pos, end)
        if len(words) != 1:
            raise self.src.error(pos, f"the marker {name} must be alone on its line, found "
                                      f"{_show(b' '.join(words), 60)}")
        return _Item(name, None, tok, pos, end)

    def _junk(self, item: _Item, context: str) -> ModelError:
        pos, text = item.pos, item.text
        if _NONFINITE.fullmatch(text):
            return self.src.error(pos, f"in {context}: non-finite value {_show(text)} "
                                       f"(NaN/Inf are not allowed)")
        if NUMBER_RE.fullmatch(text):
            return self.src.error(pos, f"in {context}: {_show(text)} is outside the float64 "
                                       f"range")
        return self.src.error(pos, f"in {context}: expected a number, found {_show(text)}")

    def describe(self, item: _Item) -> str:
        if item.name in _INDEXED:
            return f"{item.name} {item.index}"
        return f"section {item.name}{self.where}"

    # -- navigation --
    def peek(self) -> str | None:
        return self.items[self.i].name if self.i < len(self.items) else None

    def take(self, *names: str, what: str | None = None) -> _Item:
        want = what or " or ".join(names)
        if self.i >= len(self.items):
            raise ModelError(f"{self.src.path}: expected {want}{self.where}, found the end of "
                             f"the file")
        item = self.items[self.i]
        if item.name == _JUNK:
            prev = self.items[self.i - 1] if self.i else None
            raise self._junk(item, self.describe(prev) if prev else "the first section")
        if item.name not in names:
            raise self.src.error(item.pos, f"expected {want}{self.where}, found {item.name}")
        self.i += 1
        return item

    def _span(self, item: _Item) -> tuple[int, int, int, int]:
        """(first token, end token, first byte, end byte) of the item's payload."""
        first = item.tok + (2 if item.name in _INDEXED else 1)
        if self.i < len(self.items):
            nxt = self.items[self.i]
            if nxt.name == _JUNK:
                raise self._junk(nxt, self.describe(item))
            return first, nxt.tok, item.line_end, nxt.pos
        return first, self.n_tokens, item.line_end, self.src.size

    def no_payload(self, item: _Item) -> None:
        t0, t1, b0, b1 = self._span(item)
        if t1 > t0:
            p = int(self.src.token_starts(b0, b1)[0])
            raise self.src.error(p, f"unexpected numbers after {self.describe(item)}")

    def floats(self, item: _Item, shape: tuple[int, ...]) -> np.ndarray:
        t0, t1, b0, b1 = self._span(item)
        need = int(np.prod(shape))
        got = t1 - t0
        if got != need:
            dims = "x".join(str(s) for s in shape)
            msg = (f"{self.describe(item)} (starting line {self.src.line_of(item.pos)}): "
                   f"expected {need} numbers ({dims}), found {got}")
            if got > need:
                p = int(self.src.token_starts(b0, b1)[need])
                end = self.src.line_bounds(p)[1]
                tok = _TOKEN_RE.match(self.src.text(p, min(end, p + 64)) + b" ").group()
                msg += f"; the first extra one is {_show(tok)} on line {self.src.line_of(p)}"
            else:
                nxt = self.items[self.i].name if self.i < len(self.items) else "end of file"
                msg += f" before {nxt} on line {self.src.line_of(b1)}"
            raise ModelError(f"{self.src.path}: {msg}")
        return self.values[t0:t1].reshape(shape)

    def ints(self, item: _Item, n: int, vocab: int) -> np.ndarray:
        t0, t1, b0, b1 = self._span(item)
        if t1 - t0 != n:
            raise self.src.error(item.pos, f"{self.describe(item)}: expected {n} token ids "
                                           f"(seq_len), found {t1 - t0}")
        out = np.empty(n, np.int64)
        for i, p in enumerate(self.src.token_starts(b0, b1).tolist()):
            tok = _TOKEN_RE.match(self.src.text(p, p + 64) + b" ").group()
            if not tok.isdigit():
                kind = "negative" if re.fullmatch(rb"-[0-9]+", tok) else "non-integer"
                raise self.src.error(p, f"TOKENS: {kind} token id {_show(tok)} at index {i}")
            out[i] = int(tok)
            if out[i] >= vocab:
                raise self.src.error(p, f"TOKENS: token id {out[i]} at index {i} is >= "
                                        f"vocab_size {vocab}")
        return out

    def expect_end(self) -> None:
        if self.i < len(self.items):
            item = self.items[self.i]
            if item.name == _JUNK:
                raise self._junk(item, "the end of the file")
            raise self.src.error(item.pos, f"unexpected {item.name} after the last section")


def read_nfpt_text(path: str | os.PathLike, *, threads: int | None = None,
                   chunk_bytes: int = 1 << 21) -> GPT2Weights:
    """Read an NFP_TEXT_V1/V2 file strictly into float64 :class:`GPT2Weights` (see module doc)."""
    src = _Source(path)
    hdr = _parse_header(src)
    dm = hdr.dims
    L, H, d, dh, dff, V = (dm[k] for k in _REQUIRED_DIMS)
    n = dm.get("seq_len")
    walk = _Walker(src, hdr.body_start, threads, chunk_bytes)
    v2 = hdr.version == MAGIC_V2
    tokens = emb = None
    missing: list[str] = []
    zero_filled: set[str] = set()

    def need_seq_len(item: _Item) -> int:
        if n is None:
            raise src.error(item.pos, f"{item.name} needs seq_len in the header")
        return n

    if walk.peek() == "TOKENS":
        it = walk.take("TOKENS")
        tokens = walk.ints(it, need_seq_len(it), V)
        if walk.peek() != "EMBEDDINGS":
            walk.take("EMBEDDINGS", what="EMBEDDINGS (after TOKENS)")
    if walk.peek() == "EMBEDDINGS":
        it = walk.take("EMBEDDINGS")
        emb = walk.floats(it, (need_seq_len(it), d))
    else:
        missing.append("EMBEDDINGS")
    z = np.zeros
    W = {k: z((L, H, d, dh)) for k in ("W_Q", "W_K", "W_V")}
    B = {k: z((L, H, dh)) for k in ("b_Q", "b_K", "b_V")}
    W_O = z((L, H, dh, d))
    vec = {k: z((L, d)) for k in ("b_O", "b_out")}
    ln = {k: (np.ones if k.endswith("g") else z)((L, d)) for k in ("ln1_g", "ln1_b", "ln2_g",
                                                                     "ln2_b")}
    W_in, b_in, W_out = z((L, d, dff)), z((L, dff)), z((L, dff, d))
    for layer in range(L):
        walk.where = ""
        it = walk.take("LAYER", what=f"LAYER {layer}")
        if it.index != layer:
            raise src.error(it.pos, f"expected LAYER {layer}, found LAYER {it.index}")
        walk.no_payload(it)
        for h in range(H):
            walk.where = f" (layer {layer})"
            it = walk.take("HEAD", what=f"HEAD {h}")
            if it.index != h:
                raise src.error(it.pos, f"expected HEAD {h} in layer {layer}, found HEAD "
                                        f"{it.index}")
            walk.no_payload(it)
            walk.where = f" (layer {layer}, head {h})"
            for wname, bname in (("W_Q", "b_Q"), ("W_K", "b_K"), ("W_V", "b_V")):
                W[wname][layer, h] = walk.floats(walk.take(wname), (d, dh))
                if walk.peek() == bname:
                    B[bname][layer, h] = walk.floats(walk.take(bname), (dh,))
                else:
                    zero_filled.add(bname)
            W_O[layer, h] = walk.floats(walk.take("W_O"), (dh, d))
        walk.where = f" (layer {layer})"
        if walk.peek() == "ATTN_BIAS":
            vec["b_O"][layer] = walk.floats(walk.take("ATTN_BIAS"), (d,))
            walk.no_payload(walk.take("MLP"))
        else:
            zero_filled.add("ATTN_BIAS")
            walk.no_payload(walk.take("MLP", what="ATTN_BIAS or MLP"))
        W_in[layer] = walk.floats(walk.take("W_in"), (d, dff))
        it = walk.take("b_in", "W_out")
        if it.name == "b_in":
            b_in[layer] = walk.floats(it, (dff,))
            W_out[layer] = walk.floats(walk.take("W_out"), (dff, d))
        else:
            W_out[layer] = walk.floats(it, (dff, d))
            b_in[layer] = walk.floats(walk.take("b_in"), (dff,))
        vec["b_out"][layer] = walk.floats(walk.take("b_out"), (d,))
        if v2:
            for key, name in (("ln1_g", "LN1_GAMMA"), ("ln1_b", "LN1_BETA"),
                              ("ln2_g", "LN2_GAMMA"), ("ln2_b", "LN2_BETA")):
                ln[key][layer] = walk.floats(walk.take(name), (d,))
    walk.where = ""
    lnf_g, lnf_b = np.ones(d), z(d)
    if v2 and walk.peek() == "LN_F_GAMMA":
        lnf_g = walk.floats(walk.take("LN_F_GAMMA"), (d,)).copy()
        lnf_b = walk.floats(walk.take("LN_F_BETA"), (d,)).copy()
    elif v2:
        missing += ["LN_F_GAMMA", "LN_F_BETA"]
    if walk.peek() == "UNEMBEDDING":
        W_U = walk.floats(walk.take("UNEMBEDDING"), (d, V))
    else:
        W_U = z((d, V))
        missing.append("UNEMBEDDING")
    walk.expect_end()

    origin = "float32" if walk.float32_origin else "float64-decimal"
    conv: Callable[[np.ndarray], np.ndarray]
    if origin == "float32":
        def conv(x):
            return x.astype(np.float32).astype(np.float64)
    else:
        def conv(x):
            return np.array(x, dtype=np.float64)
    attrs = {
        "source_path": os.path.abspath(src.path),
        "source_format": "nfpt-text",
        "format_version": hdr.version,
        "number_origin": origin,
        "missing_sections": missing,
        "zero_filled_sections": sorted(zero_filled),
        "header_defaults": hdr.defaults,
    }
    if n is not None:
        attrs["header_seq_len"] = n
    if hdr.eps_text is not None:
        attrs["eps_text"] = hdr.eps_text
    w = GPT2Weights(
        W_Q=conv(W["W_Q"]), b_Q=conv(B["b_Q"]), W_K=conv(W["W_K"]), b_K=conv(B["b_K"]),
        W_V=conv(W["W_V"]), b_V=conv(B["b_V"]), W_O=conv(W_O), b_O=conv(vec["b_O"]),
        ln1_g=conv(ln["ln1_g"]), ln1_b=conv(ln["ln1_b"]), ln2_g=conv(ln["ln2_g"]),
        ln2_b=conv(ln["ln2_b"]), W_in=conv(W_in), b_in=conv(b_in), W_out=conv(W_out),
        b_out=conv(vec["b_out"]), lnf_g=conv(lnf_g), lnf_b=conv(lnf_b), W_U=conv(W_U),
        eps=hdr.eps, gelu_kind=hdr.gelu_kind,
        embeddings=None if emb is None else conv(emb), tokens=tokens, attrs=attrs,
    )
    return w.validate(src.path)


# ---- writer ----------------------------------------------------------------------------------
def all_float32(w: GPT2Weights) -> bool:
    """True iff every float array of ``w`` holds exact float32 values."""
    for name, arr in w.array_fields().items():
        if name == "tokens":
            continue
        if not np.array_equal(arr.astype(np.float32).astype(np.float64), arr):
            return False
    return True


def _rows(f, arr: np.ndarray, fmt: str) -> None:
    arr = np.asarray(arr, dtype=np.float64)
    rows = arr.reshape(-1, arr.shape[-1]) if arr.ndim > 1 else arr.reshape(1, -1)
    if fmt == "%.9g":
        line = " ".join(["%.9g"] * rows.shape[1]) + "\n"
        for r in rows.tolist():
            f.write(line % tuple(r))
    else:
        for r in rows.tolist():
            f.write(" ".join(map(repr, r)) + "\n")


def header_lines(w: GPT2Weights, magic: str) -> list[str]:
    """Magic, the seven dims, layer_norm_eps and gelu_kind, one ``key=value`` per line."""
    dims = w.dims()
    if "seq_len" not in dims and w.embeddings is None and "header_seq_len" in w.attrs:
        dims["seq_len"] = int(w.attrs["header_seq_len"])
    lines = [magic] + [f"{k}={dims[k]}" for k in DIM_KEYS if k in dims]
    lines += [f"layer_norm_eps={eps_text(w.eps)}", f"gelu_kind={w.gelu_kind}"]
    return lines


def check_writable(w: GPT2Weights, fmt_name: str) -> None:
    """Refuse models whose baked prompt would be lost (HF-style wte/wpe without embeddings)."""
    if w.gelu_kind not in GELU_KINDS:
        raise ModelError(f"{fmt_name}: unknown gelu_kind {w.gelu_kind!r}")
    if w.embeddings is None and w.wte is not None:
        raise ModelError(
            f"{fmt_name} stores a baked prompt (EMBEDDINGS), not wte/wpe tables: bake one "
            f"first (nfp export --tokens ... or --seq-len N)")
    if w.tokens is not None and w.embeddings is None:
        raise ModelError(f"{fmt_name}: tokens without embeddings cannot be written")


def write_nfpt_text(w: GPT2Weights, path: str | os.PathLike) -> None:
    """Write ``w`` as NFP_TEXT_V2 (temp file + rename; see the module doc for the number format).

    Sections listed in ``attrs["missing_sections"]`` are left out, as in the source file.
    """
    w.validate("model to write")
    check_writable(w, "NFP_TEXT_V2")
    fmt = "%.9g" if all_float32(w) else "repr"
    missing = set(w.attrs.get("missing_sections", []))
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write("\n".join(header_lines(w, MAGIC_V2)) + "\n\n")
            if w.tokens is not None:
                f.write("TOKENS\n")
                t = w.tokens.tolist()
                for i in range(0, len(t), 64):
                    f.write(" ".join(map(str, t[i:i + 64])) + "\n")
                f.write("\n")
            _write_body(f, w, fmt, missing)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_body(f, w: GPT2Weights, fmt: str, missing: set[str]) -> None:
    if w.embeddings is not None:
        f.write("EMBEDDINGS\n")
        _rows(f, w.embeddings, fmt)
    for layer in range(w.n_layers):
        f.write(f"LAYER {layer}\n")
        for h in range(w.n_heads):
            f.write(f"HEAD {h}\n")
            for name in ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O"):
                f.write(name + "\n")
                _rows(f, getattr(w, name)[layer, h], fmt)
        for name, arr in (("ATTN_BIAS", w.b_O), ("MLP", None), ("W_in", w.W_in),
                          ("b_in", w.b_in), ("W_out", w.W_out), ("b_out", w.b_out),
                          ("LN1_GAMMA", w.ln1_g), ("LN1_BETA", w.ln1_b),
                          ("LN2_GAMMA", w.ln2_g), ("LN2_BETA", w.ln2_b)):
            f.write(name + "\n")
            if arr is not None:
                _rows(f, arr[layer], fmt)
    if not {"LN_F_GAMMA", "LN_F_BETA"} & missing:
        f.write("LN_F_GAMMA\n")
        _rows(f, w.lnf_g, fmt)
        f.write("LN_F_BETA\n")
        _rows(f, w.lnf_b, fmt)
    if "UNEMBEDDING" not in missing:
        f.write("UNEMBEDDING\n")
        _rows(f, w.W_U, fmt)
