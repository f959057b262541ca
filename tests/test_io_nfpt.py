"""The .nfpt text and binary formats: the shared fixture, exact round trips, number origin,
format variants, and a table of malformed files whose errors must name section and line/offset."""

from __future__ import annotations

import re

import numpy as np
import pytest
from io_helpers import FIXTURE_TEXT, SHARED_FIXTURE, assert_same, random_weights

from nfp_steps.io import decimal_text as dt
from nfp_steps.io.loader import load_model, require_sections
from nfp_steps.io.nfpt_binary import (
    header_bytes,
    layout,
    payload_bytes,
    read_nfpt_binary,
    write_nfpt_binary,
)
from nfp_steps.io.nfpt_text import read_nfpt_text, write_nfpt_text
from nfp_steps.io.zarr_store import read_weights_zarr, write_weights_zarr
from nfp_steps.model import ModelError


def _write(tmp_path, text: str, name: str = "m.nfpt"):
    p = tmp_path / name
    p.write_bytes(text.encode())
    return p


# ---- the shared fixture ----------------------------------------------------------------------
def test_shared_fixture_is_the_copy_used_here():
    if not SHARED_FIXTURE.exists():
        pytest.skip("shared/ not beside the repository")
    assert SHARED_FIXTURE.read_text() == FIXTURE_TEXT


def test_fixture_loads_weights_only_with_placeholders_marked(tmp_path):
    w = load_model(_write(tmp_path, FIXTURE_TEXT))
    dims = (w.n_layers, w.n_heads, w.d_model, w.d_head, w.d_mlp, w.vocab_size)
    assert dims == (1, 1, 4, 2, 4, 10)
    assert w.W_Q[0, 0].tolist() == [[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6], [0.7, -0.8]]
    assert w.b_Q[0, 0].tolist() == [0.01, -0.02]
    assert w.b_V[0, 0].tolist() == [0.001, -0.002]
    assert w.W_O[0, 0, 1].tolist() == [0.17, 0.18, -0.19, 0.20]
    assert w.b_O[0].tolist() == [0.001, 0.002, 0.003, 0.004]
    assert w.W_in[0, 2].tolist() == [-0.2, 0.3, 0.0, -0.1]
    assert w.W_out[0, 3].tolist() == [0.11, 0.12, -0.13, 0.14]
    assert w.b_out[0].tolist() == [0.0001, -0.0002, 0.0003, -0.0004]
    assert (w.ln1_g == 1).all() and (w.ln2_b == 0).all()
    assert w.embeddings is None and w.tokens is None and w.wte is None
    assert w.attrs["missing_sections"] == ["EMBEDDINGS", "LN_F_GAMMA", "LN_F_BETA", "UNEMBEDDING"]
    assert (w.W_U == 0).all() and (w.lnf_g == 1).all() and (w.lnf_b == 0).all()
    assert w.attrs["number_origin"] == "float64-decimal"  # '0.10' is not a '%.9g' float32
    assert w.attrs["header_defaults"] == ["layer_norm_eps", "gelu_kind"]
    assert (w.eps, w.gelu_kind, w.attrs["header_seq_len"]) == (1e-5, "tanh", 2)
    assert len(w.attrs["source_sha256"]) == 64
    with pytest.raises(ModelError, match="UNEMBEDDING.*weights-only"):
        require_sections(w)


def test_fixture_text_round_trip_keeps_sections_missing(tmp_path):
    w = read_nfpt_text(_write(tmp_path, FIXTURE_TEXT))
    write_nfpt_text(w, tmp_path / "out.nfpt")
    text = (tmp_path / "out.nfpt").read_text()
    assert "UNEMBEDDING" not in text and "LN_F_GAMMA" not in text and "EMBEDDINGS" not in text
    assert "layer_norm_eps=1e-5\ngelu_kind=tanh\n" in text and "seq_len=2\n" in text
    back = read_nfpt_text(tmp_path / "out.nfpt")
    assert_same(w, back, attrs=("missing_sections",))


def test_fixture_binary_size_matches_documented_formula(tmp_path):
    """Reference §1.8: with a baked prompt of n=2, 147 header + 1240 payload = 1387 bytes."""
    w = read_nfpt_text(_write(tmp_path, FIXTURE_TEXT))
    w.tokens = np.array([3, 1])
    w.embeddings = np.arange(8.0).reshape(2, 4) / 8
    w.attrs["missing_sections"] = []  # as if LN_F (1, 0) and the zero unembedding were real
    write_nfpt_binary(w, tmp_path / "b.nfpt")
    data = (tmp_path / "b.nfpt").read_bytes()
    assert len(header_bytes(w)) == 147 and payload_bytes(w.dims()) == 1240
    assert len(data) == 1387 and data.endswith(bytes(8 * 40))  # zero unembedding last
    assert_same(w, read_nfpt_binary(tmp_path / "b.nfpt"))


def test_binary_marks_placeholder_sections(tmp_path):
    w = read_nfpt_text(_write(tmp_path, FIXTURE_TEXT))
    w.tokens, w.embeddings = np.array([3, 1]), np.ones((2, 4))
    write_nfpt_binary(w, tmp_path / "b.nfpt")
    assert b"missing_sections=LN_F_GAMMA,LN_F_BETA,UNEMBEDDING\n" in header_bytes(w)
    back = read_nfpt_binary(tmp_path / "b.nfpt")
    assert back.attrs["missing_sections"] == ["LN_F_GAMMA", "LN_F_BETA", "UNEMBEDDING"]
    with pytest.raises(ModelError, match="weights-only"):
        require_sections(back)
    w.embeddings = w.tokens = None
    with pytest.raises(ModelError, match="baked prompt"):
        write_nfpt_binary(w, tmp_path / "c.nfpt")
    assert not (tmp_path / "c.nfpt").exists()


def test_binary_header_without_eps_and_gelu_uses_recorded_defaults(tmp_path):
    w = random_weights(2, L=1, H=1, d=2, dh=2, dff=3, V=4, n=2)
    w.eps, w.gelu_kind = 1e-3, "exact"
    write_nfpt_binary(w, tmp_path / "b.nfpt")
    data = (tmp_path / "b.nfpt").read_bytes()
    assert b"layer_norm_eps=0.001\ngelu_kind=exact\n" in data
    old = data.replace(b"layer_norm_eps=0.001\n", b"").replace(b"gelu_kind=exact\n", b"")
    (tmp_path / "old.nfpt").write_bytes(old)
    r = read_nfpt_binary(tmp_path / "old.nfpt")
    assert (r.eps, r.gelu_kind) == (1e-5, "tanh")
    assert r.attrs["header_defaults"] == ["layer_norm_eps", "gelu_kind"]
    (tmp_path / "alias.nfpt").write_bytes(data.replace(b"layer_norm_eps=", b"eps="))
    assert read_nfpt_binary(tmp_path / "alias.nfpt").eps == 1e-3


def test_loader_names_the_accepted_formats(tmp_path):
    (tmp_path / "folder").mkdir()
    for path in (tmp_path / "folder", _write(tmp_path, "hello", "x.nfpt")):
        with pytest.raises(ModelError, match="expected a Hugging Face GPT-2 folder .*BINARY_V1"):
            load_model(path)
    with pytest.raises(ModelError, match="empty file"):
        load_model(_write(tmp_path, "", "e.nfpt"))


# ---- exact round trips -----------------------------------------------------------------------
@pytest.mark.parametrize("float32", [False, True])
def test_text_binary_text_zarr_text_chain_is_bit_exact(tmp_path, float32):
    w = random_weights(3, float32=float32)
    w.b_Q[0, 0, 0] = -0.0  # the sign of zero survives too
    write_nfpt_text(w, tmp_path / "a.nfpt")
    a = read_nfpt_text(tmp_path / "a.nfpt")
    assert a.attrs["number_origin"] == ("float32" if float32 else "float64-decimal")
    write_nfpt_binary(a, tmp_path / "b.nfpt")
    b = read_nfpt_binary(tmp_path / "b.nfpt")
    write_nfpt_text(b, tmp_path / "c.nfpt")
    c = read_nfpt_text(tmp_path / "c.nfpt")
    write_weights_zarr(c, tmp_path / "d.zarr")
    d = read_weights_zarr(tmp_path / "d.zarr")
    write_nfpt_text(d, tmp_path / "e.nfpt")
    e = read_nfpt_text(tmp_path / "e.nfpt")
    for x in (a, b, c, d, e):
        assert_same(w, x)
    assert (tmp_path / "a.nfpt").read_bytes() == (tmp_path / "e.nfpt").read_bytes()


def test_float32_weights_are_written_as_9_significant_digits(tmp_path):
    w = random_weights(4, float32=True)
    write_nfpt_text(w, tmp_path / "a.nfpt")
    words = (tmp_path / "a.nfpt").read_text().split()
    digits = [len(re.sub(r"[-+.]|e.*", "", t).lstrip("0")) for t in words if t[0] in "-0123456789"]
    assert max(digits) <= 9


# ---- number origin (DESIGN §5) ---------------------------------------------------------------
def test_float32_origin_stores_the_exporters_float32(tmp_path):
    w = random_weights(5, float32=True)
    write_nfpt_text(w, tmp_path / "a.nfpt")
    text = (tmp_path / "a.nfpt").read_text()
    r = read_nfpt_text(tmp_path / "a.nfpt")
    assert r.attrs["number_origin"] == "float32"
    tok = text.split("W_in\n")[1].split()[0]
    as_double = float(tok)
    assert float(np.float32(as_double)) != as_double  # the decimal is not the float32 ...
    assert r.W_in[0, 0, 0] == float(np.float32(as_double))  # ... but the float32 is stored
    # one decimal that no float32 prints as: the whole file is float64-decimal
    text2 = text.replace("\nW_in\n" + tok, "\nW_in\n0.1", 1)
    r2 = read_nfpt_text(_write(tmp_path, text2, "b.nfpt"))
    assert r2.attrs["number_origin"] == "float64-decimal"
    assert r2.W_in[0, 0, 0] == 0.1 and r2.W_in[0, 0, 1] == float(text.split("W_in\n")[1].split()[1])


def test_decimal_parser_is_correctly_rounded(tmp_path):
    rng = np.random.default_rng(7)
    f32 = (rng.standard_normal(3000) * 10.0 ** rng.integers(-30, 30, 3000)).astype(np.float32)
    f64 = rng.standard_normal(500) * 10.0 ** rng.integers(-300, 300, 500)
    toks = [f"{v:.9g}" for v in f32.tolist()] + [repr(v) for v in f64.tolist()]
    toks += ["0", "-0", "+0.0", ".5", "5.", "-.5e-3", "1E5", "1e+05", "00012.50", "0.1", "7e-2",
             "9007199254740993", "123456789012345", "1234567890123456", "1e22", "1e23", "1e-22",
             "1e-23", "4.9e-324", "2.4703282292062328e-324", "1.7976931348623157e308", "1e-400"]
    rng.shuffle(toks)
    text = ("\n".join(" ".join(toks[i:i + 7]) for i in range(0, len(toks), 7)) + "\n").encode()
    a = dt.padded_buffer(text)
    ref = np.array([float(t) for t in toks])
    for chunk, threads in ((97, 1), (4096, 2), (1 << 20, 1)):
        got = dt.parse_tokens(a, 0, len(text), chunk_bytes=chunk, threads=threads)
        assert got.word_idx.size == 0
        assert np.array_equal(got.values.view(np.int64), ref.view(np.int64))


def test_decimal_parser_reports_words_with_offsets():
    text = b"1 W_Q 2.5\t-x nan 1e999 3\r\n1.2.3 -- 1e 0x10 1_0 .e5 +-1"
    got = dt.parse_tokens(dt.padded_buffer(text), 0, len(text), chunk_bytes=8, threads=2)
    words = [w.decode() for w in got.word_text]
    assert words == ["W_Q", "-x", "nan", "1e999", "1.2.3", "--", "1e", "0x10", "1_0", ".e5", "+-1"]
    assert [text[p:p + len(w)].decode() for p, w in zip(got.word_pos, words, strict=True)] == words
    assert got.values[[0, 2, 6]].tolist() == [1.0, 2.5, 3.0]
    assert np.isnan(got.values[got.word_idx]).all()


POW10_F32 = [np.float32(float(f"1e{e}")) for e in range(-44, 38)]
TRICKY = ([f"{float(p):.9g}" for p in POW10_F32] + [f"1e{e}" for e in range(-44, 38)]
          + [f"{float(np.nextafter(p, np.float32(0))):.9g}" for p in POW10_F32[4:]]
          + ["1234567.12", "1234567.13", "1234567.125", "16777217", "16777216", "0.1", "2.5e-5",
             "0.100000001", "3.40282347e+38", "3.4028236e+38", "1.40129846e-45", "1e-46", "-0"])


@pytest.mark.parametrize("tok", TRICKY)
def test_float32_origin_decision_matches_the_definition(tok):
    data = f"{tok} 0.5".encode()
    got = dt.parse_tokens(dt.padded_buffer(data), 0, len(data), threads=1)
    assert got.float32_origin == dt.float32_canonical(float(tok))


# ---- format variants -------------------------------------------------------------------------
def _base_text(tmp_path, **kw) -> str:
    w = random_weights(1, L=1, H=1, d=2, dh=2, dff=3, V=4, n=2, **kw)
    write_nfpt_text(w, tmp_path / "base.nfpt")
    return (tmp_path / "base.nfpt").read_text()


def _drop_section(text: str, name: str) -> str:
    """Remove the marker line ``name`` and the number lines after it."""
    return re.sub(rf"\n{name}\n(?:[^A-Za-z\n][^\n]*\n)*", "\n", text, count=1)


def test_v1_has_identity_layernorm_and_legacy_mlp_order_and_crlf(tmp_path):
    text = _base_text(tmp_path)
    base = read_nfpt_text(_write(tmp_path, text, "v2.nfpt"))
    v1 = text.replace("NFP_TEXT_V2", "NFP_TEXT_V1")
    for name in ("LN1_GAMMA", "LN1_BETA", "LN2_GAMMA", "LN2_BETA", "LN_F_GAMMA", "LN_F_BETA"):
        v1 = _drop_section(v1, name)
    r = read_nfpt_text(_write(tmp_path, v1, "v1.nfpt"))
    assert (r.ln1_g == 1).all() and (r.ln2_b == 0).all() and (r.lnf_g == 1).all()
    assert r.attrs["missing_sections"] == [] and r.attrs["format_version"] == "NFP_TEXT_V1"
    assert np.array_equal(r.W_U, base.W_U) and np.array_equal(r.W_out, base.W_out)
    with pytest.raises(ModelError, match="line 52: unexpected LN1_GAMMA"):
        read_nfpt_text(_write(tmp_path, text.replace("NFP_TEXT_V2", "NFP_TEXT_V1"), "bad.nfpt"))
    # legacy MLP order W_in, W_out, b_in, b_out
    b_in = re.search(r"\nb_in\n(?:[^A-Za-z\n][^\n]*\n)*", text).group()
    legacy = text.replace(b_in, "\n").replace("\nb_out\n", b_in + "b_out\n")
    assert legacy.index("W_out") < legacy.index("b_in")
    assert_same(base, read_nfpt_text(_write(tmp_path, legacy, "legacy.nfpt")))
    crlf = _write(tmp_path, text.replace("\n", "\r\n"), "crlf.nfpt")
    assert_same(base, read_nfpt_text(crlf))


def test_absent_bias_sections_are_zeros_and_recorded(tmp_path):
    text = _base_text(tmp_path)
    for name in ("b_Q", "b_K", "b_V", "ATTN_BIAS"):
        text = _drop_section(text, name)
    r = read_nfpt_text(_write(tmp_path, text))
    assert (r.b_Q == 0).all() and (r.b_K == 0).all() and (r.b_V == 0).all() and (r.b_O == 0).all()
    assert r.attrs["zero_filled_sections"] == ["ATTN_BIAS", "b_K", "b_Q", "b_V"]


def test_header_aliases(tmp_path):
    text = _base_text(tmp_path).replace("layer_norm_eps=1e-5", "eps=0.001")
    r = read_nfpt_text(_write(tmp_path, text.replace("gelu_kind=tanh", "gelu_deriv=GELU_EXACT")))
    assert (r.eps, r.gelu_kind, r.attrs["header_defaults"]) == (0.001, "exact", [])


# ---- malformed text files --------------------------------------------------------------------
def _sub(pattern: str, repl: str):
    return lambda t: re.sub(pattern, repl, t, count=1, flags=re.M)


BAD_TEXT = [
    ("empty", lambda t: "", "empty file"),
    ("bad magic", _sub("NFP_TEXT_V2", "NFP_TEXT_V3"), "line 1: bad magic: expected NFP_TEXT_V1"),
    ("bad header value", _sub("num_heads=1", "num_heads=one"),
     "line 3: header num_heads: expected a positive integer, found 'one'"),
    ("zero dim", _sub("model_dim=2", "model_dim=0"), "line 4: header model_dim"),
    ("unknown key", _sub("seq_len=2", "seq_len=2\ncolor=red"),
     "line 9: header: unknown key 'color'"),
    ("duplicate key", _sub("gelu_kind=tanh", "gelu_kind=tanh\ngelu_deriv=exact"),
     "line 11: header: gelu_deriv given twice"),
    ("bad gelu", _sub("gelu_kind=tanh", "gelu_kind=relu"), "line 10: header gelu_kind"),
    ("bad eps", _sub("layer_norm_eps=1e-5", "layer_norm_eps=-1"), "line 9: header layer_norm_eps"),
    ("missing dim", _sub("vocab_size=4\n", ""), "missing vocab_size"),
    ("short section", _sub(r"^(W_Q\n\S+) \S+", r"\1"),
     "section W_Q (layer 0, head 0) (starting line 20): expected 4 numbers (2x2), found 3 before "
     "b_Q on line 23"),
    ("long section", _sub(r"^(b_Q\n.*)$", r"\1 0.25"),
     "section b_Q (layer 0, head 0) (starting line 23): expected 2 numbers (2), found 3; the "
     "first extra one is '0.25' on line 24"),
    ("stray word", _sub(r"^(W_K\n\S+) \S+", r"\1 abc"),
     "line 26: in section W_K (layer 0, head 0): expected a number, found 'abc'"),
    ("nan", _sub(r"^(W_V\n)\S+", r"\1nan"),
     "line 31: in section W_V (layer 0, head 0): non-finite"),
    ("inf", _sub(r"^(EMBEDDINGS\n\S+) \S+", r"\1 -Infinity"),
     "line 16: in section EMBEDDINGS: non-finite value '-Infinity'"),
    ("overflow", _sub(r"^(W_in\n)\S+", r"\g<1>1e999"),
     "line 42: in section W_in (layer 0): '1e999' is outside the float64 range"),
    ("missing section", lambda t: _drop_section(t, "LN2_BETA"),
     "line 58: expected LN2_BETA (layer 0), found LN_F_GAMMA"),
    ("out of order", lambda t: t.replace("\nW_K\n", "\nW_X\n").replace("\nW_V\n", "\nW_K\n")
     .replace("\nW_X\n", "\nW_V\n"), "line 25: expected W_K (layer 0, head 0), found W_V"),
    ("negative token", _sub(r"^(TOKENS\n)\S+", r"\1-1"),
     "line 13: TOKENS: negative token id '-1' at index 0"),
    ("non-integer token", _sub(r"^(TOKENS\n\S+) \S+", r"\1 2.0"),
     "line 13: TOKENS: non-integer token id '2.0' at index 1"),
    ("token out of vocab", _sub(r"^(TOKENS\n)\S+", r"\g<1>4"), "token id 4 at index 0 is >= vocab"),
    ("short tokens", _sub(r"^(TOKENS\n)\S+ ", r"\1"),
     "line 12: section TOKENS: expected 2 token ids (seq_len), found 1"),
    ("marker with text", _sub("^W_O$", "W_O 0.5"), "line 35: the marker W_O must be alone"),
    ("wrong layer index", _sub("^LAYER 0$", "LAYER 1"), "line 18: expected LAYER 0, found LAYER 1"),
    ("numbers after MLP", _sub("^MLP$", "MLP\n1.0"),
     "line 41: unexpected numbers after section MLP"),
    ("control char", _sub(r"^(W_in\n\S+) ", "\\1\x0b"), "line 42: control character 0x0b"),
    ("extra section", lambda t: t + "W_Q\n1 2\n", "line 67: unexpected W_Q after the last section"),
    ("stray word at end", lambda t: t + "junk\n", "line 67: in section UNEMBEDDING: expected a "
     "number, found 'junk'"),
    ("no sections", lambda t: t.split("\nTOKENS")[0] + "\n", "no sections after the header"),
    ("tokens without embeddings", lambda t: _drop_section(t, "EMBEDDINGS"),
     "line 15: expected EMBEDDINGS (after TOKENS), found LAYER"),
]


@pytest.mark.parametrize("case", BAD_TEXT, ids=[c[0] for c in BAD_TEXT])
def test_malformed_text_is_rejected_with_section_and_line(tmp_path, case):
    _, mutate, message = case
    text = mutate(_base_text(tmp_path))
    path = _write(tmp_path, text)
    with pytest.raises(ModelError) as err:
        read_nfpt_text(path)
    assert str(err.value).startswith(str(path)), err.value
    assert message in str(err.value), err.value


# ---- malformed binary files ------------------------------------------------------------------
def _binary(tmp_path) -> tuple[bytes, int]:
    w = random_weights(2, L=1, H=1, d=2, dh=2, dff=3, V=4, n=2)
    write_nfpt_binary(w, tmp_path / "ok.nfpt")
    return (tmp_path / "ok.nfpt").read_bytes(), len(header_bytes(w))


def _poke(data: bytes, offset: int, raw: bytes) -> bytes:
    return data[:offset] + raw + data[offset + len(raw):]


def _at(name: str, h: int, k: int = 0) -> int:
    """Byte offset of float k of array ``name`` in the file made by :func:`_binary`."""
    dims = dict(num_layers=1, num_heads=1, model_dim=2, head_dim=2, hidden_dim=3, vocab_size=4,
                seq_len=2)
    return h + dict((e[0], e[1]) for e in layout(dims))[name] + 8 * k


BAD_BINARY = [
    ("empty", lambda d, h: b"", "empty file"),
    ("bad magic", lambda d, h: d.replace(b"NFP_BINARY_V1", b"NFP_BINARY_V2"), "bad magic"),
    ("no sentinel", lambda d, h: d.replace(b"BINARY_START", b"BINARY_BEGIN"), "BINARY_START"),
    ("bad header value", lambda d, h: d.replace(b"num_layers=1\n", b"num_layers=x\n"),
     "header line 2: num_layers: expected a positive integer, found 'x'"),
    ("missing dim", lambda d, h: d.replace(b"seq_len=2\n", b""), "missing seq_len"),
    ("bad gelu", lambda d, h: d.replace(b"gelu_kind=tanh", b"gelu_kind=relu"), "gelu_kind"),
    ("unknown key", lambda d, h: d.replace(b"gelu_kind=tanh\n", b"gelu_kind=tanh\nfoo=1\n"),
     "unknown key 'foo'"),
    ("truncated", lambda d, h: d[:-12],
     "payload is 516 bytes, expected 528 (header {h} bytes + 528 = {t}): the data ends at byte "
     "offset {e} inside array UNEMBEDDING (which starts at byte offset {u})"),
    ("truncated in W_in", lambda d, h: d[:_at("L0.W_in", h, 2)],
     "the data ends at byte offset {x} inside array L0.W_in (which starts at byte offset {w})"),
    ("extra bytes", lambda d, h: d + b"\0" * 5,
     "5 extra byte(s) after the last array (UNEMBEDDING) at byte offset {t}"),
    ("nan", lambda d, h: _poke(d, _at("L0.W_in", h, 4), np.array([np.nan]).tobytes()),
     "non-finite value nan at byte offset {n} in array L0.W_in at index (1, 1)"),
    ("inf", lambda d, h: _poke(d, _at("embeddings", h, 2), np.array([-np.inf]).tobytes()),
     "non-finite value -inf at byte offset {i} in array embeddings at index (1, 0)"),
    ("negative token", lambda d, h: _poke(d, h + 4, np.array([-5], "<i4").tobytes()),
     "negative token id -5 at index 1"),
]


@pytest.mark.parametrize("case", BAD_BINARY, ids=[c[0] for c in BAD_BINARY])
def test_malformed_binary_is_rejected_with_offsets(tmp_path, case):
    _, mutate, message = case
    data, h = _binary(tmp_path)
    path = tmp_path / "bad.nfpt"
    path.write_bytes(mutate(data, h))
    message = message.format(h=h, t=h + 528, e=len(data) - 12, u=_at("UNEMBEDDING", h),
                             x=_at("L0.W_in", h, 2), w=_at("L0.W_in", h), n=_at("L0.W_in", h, 4),
                             i=_at("embeddings", h, 2))
    with pytest.raises(ModelError) as err:
        read_nfpt_binary(path)
    assert message in str(err.value), err.value
