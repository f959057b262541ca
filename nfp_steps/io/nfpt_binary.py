"""Reader and writer of the original's NFP_BINARY_V1 ``.nfpt`` files (reference §1.8).

Layout: ASCII header lines ``NFP_BINARY_V1``, ``num_layers=`` ... ``seq_len=`` (seven dims),
``layer_norm_eps=<x>`` (alias ``eps``), ``gelu_kind=tanh|exact``, then ``BINARY_START``; the
payload follows immediately, little-endian, row-major, no padding: tokens ``n x int32``,
embeddings ``n*d`` float64, per layer (per head ``W_Q, b_Q, W_K, b_K, W_V, b_V, W_O``; then
``ATTN_BIAS, W_in, b_in, W_out, b_out, LN1_GAMMA, LN1_BETA, LN2_GAMMA, LN2_BETA``), ``LN_F_GAMMA,
LN_F_BETA``, ``UNEMBEDDING (d x V)``. Payload size: ``4n + 8(nd + L*perLayer + 2d + dV)`` with
``perLayer = H(4 d dh + 3 dh) + 2 d dff + dff + 6d``.

Strict reading: all seven dims are required and positive; the payload size must match exactly
(short: the error names the array and byte offset where the data runs out; long: the number of
extra bytes); NaN/Inf name the array and byte offset; negative or >= vocab token ids name the
index. ``layer_norm_eps``/``gelu_kind`` may be absent (the earliest files lack them): defaults
1e-5 / tanh are used and recorded in ``attrs["header_defaults"]``. Unknown header keys are errors.

The layout has no optional parts. The writer therefore needs a baked prompt (tokens and
embeddings). A model whose ``LN_F``/``UNEMBEDDING`` are missing (weights-only text files) is
written with the placeholder values it holds (gamma 1, beta 0, zero unembedding, as the original's
converter did) **and** an extra header line ``missing_sections=LN_F_GAMMA,LN_F_BETA,UNEMBEDDING``
that this reader turns back into ``attrs["missing_sections"]``, so the placeholders are never
mistaken for weights. Floats are float64 bit for bit: ``attrs["number_origin"]`` is
``"float64-binary"`` (the values are exactly the model).
"""

from __future__ import annotations

import os
import re

import numpy as np

from nfp_steps.io.nfpt_text import (
    DEFAULT_EPS,
    DIM_KEYS,
    GELU_NAMES,
    check_writable,
    eps_text,
)
from nfp_steps.model import GPT2Weights, ModelError

MAGIC = "NFP_BINARY_V1"
SENTINEL = b"BINARY_START\n"
_OPTIONAL_MISSING = ("LN_F_GAMMA", "LN_F_BETA", "UNEMBEDDING")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def layout(dims: dict[str, int]) -> list[tuple[str, int, tuple[int, ...]]]:
    """The payload as (name, byte offset from payload start, shape) in file order.

    Names are ``tokens``, ``embeddings``, ``L{l}.H{h}.W_Q`` ..., ``L{l}.ATTN_BIAS`` ...,
    ``LN_F_GAMMA``, ``LN_F_BETA``, ``UNEMBEDDING``.
    """
    L, H, d, dh, dff, V, n = (dims[k] for k in DIM_KEYS)
    out = []
    off = 0

    def add(name, shape, item=8):
        nonlocal off
        out.append((name, off, shape))
        off += item * int(np.prod(shape))

    add("tokens", (n,), 4)
    add("embeddings", (n, d))
    for layer in range(L):
        for h in range(H):
            for name, shape in (("W_Q", (d, dh)), ("b_Q", (dh,)), ("W_K", (d, dh)), ("b_K", (dh,)),
                                ("W_V", (d, dh)), ("b_V", (dh,)), ("W_O", (dh, d))):
                add(f"L{layer}.H{h}.{name}", shape)
        for name, shape in (("ATTN_BIAS", (d,)), ("W_in", (d, dff)), ("b_in", (dff,)),
                            ("W_out", (dff, d)), ("b_out", (d,)), ("LN1_GAMMA", (d,)),
                            ("LN1_BETA", (d,)), ("LN2_GAMMA", (d,)), ("LN2_BETA", (d,))):
            add(f"L{layer}.{name}", shape)
    add("LN_F_GAMMA", (d,))
    add("LN_F_BETA", (d,))
    add("UNEMBEDDING", (d, V))
    out.append(("end", off, ()))
    return out


def payload_bytes(dims: dict[str, int]) -> int:
    """Payload size by the formula of the reference (§1.8)."""
    L, H, d, dh, dff, V, n = (dims[k] for k in DIM_KEYS)
    per_layer = H * (4 * d * dh + 3 * dh) + 2 * d * dff + dff + 6 * d
    return 4 * n + 8 * (n * d + L * per_layer + 2 * d + d * V)


def _parse_header(path: str, head: bytes) -> tuple[dict, float, str, dict]:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: header: non-ASCII byte at offset {exc.start}") from None
    lines = text.split("\n")
    if lines[0].rstrip("\r") != MAGIC:
        raise ModelError(f"{path}: bad magic: expected {MAGIC} on the first line, found "
                         f"{lines[0][:40]!r}")
    dims: dict[str, int] = {}
    eps, gelu = None, None
    extra: dict = {"header_defaults": []}
    seen = set()
    for i, line in enumerate(lines[1:-1], start=2):
        line = line.strip(" \t\r")
        if not line:
            continue
        key, sep, value = (s.strip() for s in line.partition("="))
        where = f"{path}: header line {i}"
        if not sep:
            raise ModelError(f"{where}: expected key=value, found {line[:60]!r}")
        canon = {"eps": "layer_norm_eps", "gelu_deriv": "gelu_kind"}.get(key, key)
        if canon in seen:
            raise ModelError(f"{where}: {key} given twice")
        seen.add(canon)
        if canon in DIM_KEYS:
            if not (value.isascii() and value.isdigit() and int(value) > 0):
                raise ModelError(f"{where}: {key}: expected a positive integer, found {value!r}")
            dims[canon] = int(value)
        elif canon == "layer_norm_eps":
            v = float(value) if _NUMBER.fullmatch(value) else float("nan")
            if not (np.isfinite(v) and v > 0):
                raise ModelError(f"{where}: {key}: expected a positive finite number, found "
                                 f"{value!r}")
            eps = v
            extra["eps_text"] = value
        elif canon == "gelu_kind":
            gelu = GELU_NAMES.get(value.lower())
            if gelu is None:
                raise ModelError(f"{where}: {key}: expected one of {', '.join(GELU_NAMES)}, "
                                 f"found {value!r}")
        elif canon == "missing_sections":
            names = [s for s in value.split(",") if s]
            bad = [s for s in names if s not in _OPTIONAL_MISSING]
            if bad:
                raise ModelError(f"{where}: missing_sections: unknown section(s) {bad}")
            extra["missing_sections"] = names
        else:
            raise ModelError(f"{where}: unknown key {key!r} (accepted: {', '.join(DIM_KEYS)}, "
                             f"layer_norm_eps (eps), gelu_kind, missing_sections)")
    missing = [k for k in DIM_KEYS if k not in dims]
    if missing:
        raise ModelError(f"{path}: header: missing {', '.join(missing)}")
    if eps is None:
        eps = DEFAULT_EPS
        extra["header_defaults"].append("layer_norm_eps")
    if gelu is None:
        gelu = "tanh"
        extra["header_defaults"].append("gelu_kind")
    return dims, eps, gelu, extra


def read_nfpt_binary(path: str | os.PathLike) -> GPT2Weights:
    """Read an NFP_BINARY_V1 file exactly (float64 bit for bit) and strictly (module doc)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ModelError(f"{path}: empty file (expected the magic line {MAGIC})")
    k = data.find(SENTINEL)
    if k < 0:
        raise ModelError(f"{path}: missing the BINARY_START line that ends the header")
    if k == 0 or data[k - 1:k] != b"\n":
        raise ModelError(f"{path}: BINARY_START must be on a line of its own after the header")
    dims, eps, gelu, extra = _parse_header(path, data[:k])
    start = k + len(SENTINEL)
    lay = layout(dims)
    expected = lay[-1][1]
    assert expected == payload_bytes(dims)
    found = len(data) - start
    if found < expected:
        name, off, _ = next(e for e in reversed(lay) if e[1] <= found)
        raise ModelError(
            f"{path}: payload is {found} bytes, expected {expected} (header {start} bytes + "
            f"{expected} = {start + expected}): the data ends at byte offset {start + found} "
            f"inside array {name} (which starts at byte offset {start + off})")
    if found > expected:
        raise ModelError(
            f"{path}: payload is {found} bytes, expected {expected}: {found - expected} extra "
            f"byte(s) after the last array (UNEMBEDDING) at byte offset {start + expected}")
    L, H, d, dh, dff, V, n = (dims[k] for k in DIM_KEYS)
    tokens = np.frombuffer(data, "<i4", n, start).astype(np.int64)
    floats = np.frombuffer(data, "<f8", (expected - 4 * n) // 8, start + 4 * n)
    bad = ~np.isfinite(floats)
    if bad.any():
        i = int(np.argmax(bad))
        off = 4 * n + 8 * i
        name, aoff, shape = next(e for e in reversed(lay) if e[1] <= off)
        idx = np.unravel_index((off - aoff) // 8, shape)
        raise ModelError(f"{path}: non-finite value {float(floats[i])!r} at byte offset "
                         f"{start + off} in array {name} at index {tuple(int(j) for j in idx)}")
    if (tokens < 0).any() or (tokens >= V).any():
        i = int(np.argmax((tokens < 0) | (tokens >= V)))
        what = "negative token id" if tokens[i] < 0 else f"token id >= vocab_size {V}:"
        raise ModelError(f"{path}: {what} {int(tokens[i])} at index {i} (byte offset "
                         f"{start + 4 * i})")
    pos = n * d
    emb = floats[:pos].reshape(n, d)
    per_head = 4 * d * dh + 3 * dh
    per_layer = H * per_head + 2 * d * dff + dff + 6 * d
    layers = floats[pos:pos + L * per_layer].reshape(L, per_layer)
    pos += L * per_layer
    heads = layers[:, :H * per_head].reshape(L, H, per_head)
    cuts = np.cumsum([0, d * dh, dh, d * dh, dh, d * dh, dh, dh * d])
    hp = [heads[:, :, cuts[i]:cuts[i + 1]] for i in range(7)]
    rest = layers[:, H * per_head:]
    rc = np.cumsum([0, d, d * dff, dff, dff * d, d, d, d, d, d])
    rp = [rest[:, rc[i]:rc[i + 1]] for i in range(9)]
    lnf_g = floats[pos:pos + d]
    lnf_b = floats[pos + d:pos + 2 * d]
    W_U = floats[pos + 2 * d:].reshape(d, V)
    c = np.array  # copies: the weights must not keep the whole file alive
    attrs = {
        "source_path": os.path.abspath(path),
        "source_format": "nfpt-binary",
        "format_version": MAGIC,
        "number_origin": "float64-binary",
        "missing_sections": extra.pop("missing_sections", []),
        "zero_filled_sections": [],
        "header_seq_len": n,
        **extra,
    }
    w = GPT2Weights(
        W_Q=c(hp[0].reshape(L, H, d, dh)), b_Q=c(hp[1]), W_K=c(hp[2].reshape(L, H, d, dh)),
        b_K=c(hp[3]), W_V=c(hp[4].reshape(L, H, d, dh)), b_V=c(hp[5]),
        W_O=c(hp[6].reshape(L, H, dh, d)), b_O=c(rp[0]), W_in=c(rp[1].reshape(L, d, dff)),
        b_in=c(rp[2]), W_out=c(rp[3].reshape(L, dff, d)), b_out=c(rp[4]), ln1_g=c(rp[5]),
        ln1_b=c(rp[6]), ln2_g=c(rp[7]), ln2_b=c(rp[8]), lnf_g=c(lnf_g), lnf_b=c(lnf_b),
        W_U=c(W_U), eps=eps, gelu_kind=gelu, embeddings=c(emb), tokens=tokens, attrs=attrs,
    )
    return w.validate(path)


def header_bytes(w: GPT2Weights) -> bytes:
    """The header the writer emits for ``w`` (up to and including ``BINARY_START\\n``)."""
    lines = [MAGIC] + [f"{k}={v}" for k, v in w.dims().items()]
    lines += [f"layer_norm_eps={eps_text(w.eps)}", f"gelu_kind={w.gelu_kind}"]
    missing = [s for s in _OPTIONAL_MISSING if s in w.attrs.get("missing_sections", [])]
    if missing:
        lines.append("missing_sections=" + ",".join(missing))
    return ("\n".join(lines) + "\n").encode("ascii") + SENTINEL


def write_nfpt_binary(w: GPT2Weights, path: str | os.PathLike) -> None:
    """Write ``w`` as NFP_BINARY_V1 (temp file + rename). Needs tokens and embeddings."""
    w.validate("model to write")
    check_writable(w, MAGIC)
    if w.tokens is None or w.embeddings is None:
        raise ModelError(f"{MAGIC} needs a baked prompt (TOKENS and EMBEDDINGS); this model has "
                         f"none (weights-only): bake one with nfp export --tokens/--seq-len")
    gone = set(w.attrs.get("missing_sections", [])) - set(_OPTIONAL_MISSING) - {"EMBEDDINGS"}
    if gone:
        raise ModelError(f"{MAGIC} cannot mark section(s) {sorted(gone)} as missing")
    L, H = w.n_layers, w.n_heads
    heads = np.concatenate(
        [getattr(w, k).reshape(L, H, -1) for k in ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V",
                                                    "W_O")], axis=2)
    layers = np.concatenate(
        [heads.reshape(L, -1), w.b_O, w.W_in.reshape(L, -1), w.b_in, w.W_out.reshape(L, -1),
         w.b_out, w.ln1_g, w.ln1_b, w.ln2_g, w.ln2_b], axis=1)
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(header_bytes(w))
            f.write(np.ascontiguousarray(w.tokens, dtype="<i4").tobytes())
            for arr in (w.embeddings, layers, w.lnf_g, w.lnf_b, w.W_U):
                f.write(np.ascontiguousarray(arr, dtype="<f8").tobytes())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
