"""``nfp export`` through ``nfp_steps.cli.main``: conversions, baked prompts, and failures that
exit non-zero without leaving any output (or temp) file behind."""

from __future__ import annotations

import numpy as np
import pytest
from io_helpers import FIXTURE_TEXT, assert_same, random_weights

from nfp_steps.cli import main
from nfp_steps.io.hf import write_hf_folder
from nfp_steps.io.loader import load_model
from nfp_steps.io.nfpt_text import read_nfpt_text, write_nfpt_text


@pytest.fixture()
def hf(tmp_path):
    """An HF folder of a random float32 model with wte/wpe (written by our writer)."""
    w = random_weights(11, L=2, H=2, d=4, dh=2, dff=6, V=9, n_ctx=8, float32=True)
    write_hf_folder(w, tmp_path / "hf", dtype="float32")
    return tmp_path / "hf", w


def _fails(capsys, argv, message, out):
    before = sorted(p.name for p in out.parent.iterdir())
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err, err
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == before  # no temp file either


def test_hf_to_nfpt_bakes_the_given_tokens(tmp_path, hf, capsys):
    src, w = hf
    out = tmp_path / "m.nfpt"
    assert main(["export", str(src), "--output", str(out), "--tokens", "3 1,4 1"]) == 0
    assert "wrote" in capsys.readouterr().out
    r = read_nfpt_text(out)
    assert r.tokens.tolist() == [3, 1, 4, 1]
    assert np.array_equal(r.embeddings, w.wte[[3, 1, 4, 1]] + w.wpe[:4])
    # wte + wpe in float64 is not a float32, so the file is written with repr (17 digits at
    # most) and read back bit-exactly as float64 decimals
    assert r.attrs["number_origin"] == "float64-decimal"
    for name in ("W_Q", "b_V", "W_O", "W_U", "ln2_g"):
        assert np.array_equal(getattr(r, name), getattr(w, name)), name


def test_random_prompt_is_seeded(tmp_path, hf):
    src, w = hf
    a, b, c = (tmp_path / f"{k}.nfpt" for k in "abc")
    for out, seed in ((a, 5), (b, 5), (c, 6)):
        assert main(["export", str(src), "-o", str(out), "--seq-len", "6", "--seed", str(seed),
                     "--format", "nfpt-binary"]) == 0
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    toks = load_model(a).tokens
    assert toks.size == 6 and toks.max() < w.vocab_size


def test_chain_through_every_format_is_exact(tmp_path, hf):
    src, w = hf
    steps = [(src, tmp_path / "w.zarr", []), (tmp_path / "w.zarr", tmp_path / "hf64", []),
             (tmp_path / "hf64", tmp_path / "hf32", ["--dtype", "float32"])]
    for a, b, extra in steps:
        assert main(["export", str(a), "-o", str(b), *extra]) == 0
    assert_same(w, load_model(tmp_path / "hf32"))
    assert_same(w, load_model(tmp_path / "w.zarr"))


def test_weights_only_text_exports_to_text_and_zarr(tmp_path):
    (tmp_path / "f.nfpt").write_text(FIXTURE_TEXT)
    assert main(["export", str(tmp_path / "f.nfpt"), "-o", str(tmp_path / "g.nfpt")]) == 0
    assert main(["export", str(tmp_path / "g.nfpt"), "-o", str(tmp_path / "g.zarr")]) == 0
    back = load_model(tmp_path / "g.zarr")
    assert back.attrs["missing_sections"] == ["EMBEDDINGS", "LN_F_GAMMA", "LN_F_BETA",
                                              "UNEMBEDDING"]
    assert_same(load_model(tmp_path / "f.nfpt"), back)


def test_failures_exit_1_and_leave_nothing(tmp_path, hf, capsys):
    src, _ = hf
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01 not a model")
    (tmp_path / "f.nfpt").write_text(FIXTURE_TEXT)
    bad = tmp_path / "bad.nfpt"
    bad.write_text(FIXTURE_TEXT.replace("0.31 -0.41", "0.31 nan"))
    out = tmp_path / "out" / "m.nfpt"
    out.parent.mkdir()
    _fails(capsys, ["export", str(src), "-o", str(out)], "pass --tokens", out)
    _fails(capsys, ["export", str(tmp_path / "junk.bin"), "-o", str(out)], "unknown format", out)
    _fails(capsys, ["export", str(tmp_path / "missing"), "-o", str(out)], "no such file", out)
    _fails(capsys, ["export", str(bad), "-o", str(out)],
           "line 21: in section W_K (layer 0, head 0): non-finite value 'nan'", out)
    _fails(capsys, ["export", str(src), "-o", str(out), "--tokens", "1 99"],
           "token id 99 at index 1 is outside 0..8", out)
    _fails(capsys, ["export", str(src), "-o", str(out), "--tokens", "1 -2"],
           "--tokens: expected non-negative integers, found '-2'", out)
    _fails(capsys, ["export", str(src), "-o", str(out), "--seq-len", "9"],
           "9 tokens exceed the model's context of 8", out)
    _fails(capsys, ["export", str(src), "-o", str(out), "--tokens", "1", "--dtype", "float32"],
           "--dtype applies to HF output only", out)
    _fails(capsys, ["export", str(tmp_path / "f.nfpt"), "-o", str(out.parent / "hf")],
           "no wte/wpe tables", out.parent / "hf")
    _fails(capsys, ["export", str(tmp_path / "f.nfpt"), "-o", str(out), "--seq-len", "2"],
           "no wte/wpe tables to embed new tokens", out)
    _fails(capsys, ["export", str(tmp_path / "f.nfpt"), "-o", str(out),
                    "--format", "nfpt-binary"], "needs a baked prompt", out)
    _fails(capsys, ["export", str(src), "-o", str(out.parent / "w.zarr"), "--tokens", "1"],
           "keeps the embedding tables", out.parent / "w.zarr")


def test_existing_foreign_output_is_not_replaced(tmp_path, hf, capsys):
    src, _ = hf
    precious = tmp_path / "notes.zarr"
    precious.write_text("keep me")
    assert main(["export", str(src), "-o", str(precious)]) == 1
    assert "already exists" in capsys.readouterr().err and precious.read_text() == "keep me"
    # even with --force, a file that is not a model store is never replaced
    assert main(["export", str(src), "-o", str(precious), "--force"]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert precious.read_text() == "keep me"
    folder = tmp_path / "plain"
    folder.mkdir()
    assert main(["export", str(src), "-o", str(folder), "--force"]) == 1
    assert "not a Hugging Face model folder" in capsys.readouterr().err
    assert list(folder.iterdir()) == []
    # an HF folder with other files: refused without --force, nothing deleted
    (src / "NOTES.md").write_text("mine")
    other = tmp_path / "other"
    assert main(["export", str(src), "-o", str(other)]) == 0
    (other / "NOTES.md").write_text("mine")
    assert main(["export", str(src), "-o", str(other)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (other / "NOTES.md").read_text() == "mine"


def test_text_export_overwrites_atomically_only_when_forced(tmp_path, capsys):
    w = random_weights(12)
    write_nfpt_text(w, tmp_path / "m.nfpt")
    assert main(["export", str(tmp_path / "m.nfpt"), "-o", str(tmp_path / "m.nfpt"),
                 "--force"]) == 1
    assert "is the source itself" in capsys.readouterr().err
    write_nfpt_text(random_weights(13), tmp_path / "old.nfpt")
    assert main(["export", str(tmp_path / "m.nfpt"), "-o", str(tmp_path / "old.nfpt")]) == 1
    assert main(["export", str(tmp_path / "m.nfpt"), "-o", str(tmp_path / "old.nfpt"),
                 "--force"]) == 0
    assert_same(w, read_nfpt_text(tmp_path / "old.nfpt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nfpt", "old.nfpt"]
