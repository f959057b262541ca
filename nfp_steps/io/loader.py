"""One entry point for every model source: format detection, provenance, saving, prompt baking.

Accepted sources: a Hugging Face GPT-2 folder (has ``config.json``), a weights Zarr store (has
``zarr.json``), an ``.nfpt`` file starting with ``NFP_TEXT_V1``/``NFP_TEXT_V2`` (text) or
``NFP_BINARY_V1`` (binary), whatever its name. ``attrs["source_sha256"]`` is the sha256 of the
file, or for a folder of its relevant files' relative names and bytes in sorted order (HF:
``config.json`` and the weight file; Zarr: every file of the store); ``source_path`` and
``source_format`` say what was read. A store keeps the provenance of the model it was made from
under ``attrs["origin"]``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import numpy as np

from nfp_steps.model import GPT2Weights, ModelError

FORMATS = ("hf", "nfpt-text", "nfpt-binary", "zarr")
LOGIT_SECTIONS = ("LN_F_GAMMA", "LN_F_BETA", "UNEMBEDDING")
_ACCEPTED = ("a Hugging Face GPT-2 folder (config.json + model.safetensors or "
             "pytorch_model.bin), a weights Zarr store (folder with zarr.json), or an .nfpt file "
             "starting with NFP_TEXT_V1, NFP_TEXT_V2 or NFP_BINARY_V1")


def detect_format(path: str | os.PathLike) -> str:
    """Which reader ``path`` needs (one of :data:`FORMATS`); ModelError if none."""
    p = os.fspath(path)
    if os.path.isdir(p):
        if os.path.isfile(os.path.join(p, "config.json")):
            return "hf"
        if os.path.isfile(os.path.join(p, "zarr.json")):
            return "zarr"
        raise ModelError(f"{p}: folder is not a model: expected {_ACCEPTED}")
    if not os.path.exists(p):
        raise ModelError(f"{p}: no such file or folder")
    with open(p, "rb") as f:
        head = f.read(16)
    if not head:
        raise ModelError(f"{p}: empty file: expected {_ACCEPTED}")
    if head.startswith((b"NFP_TEXT_V1", b"NFP_TEXT_V2")):
        return "nfpt-text"
    if head.startswith(b"NFP_BINARY_V1"):
        return "nfpt-binary"
    raise ModelError(f"{p}: unknown format (starts with {head[:16]!r}): expected {_ACCEPTED}")


def _hash_files(root: str, names: Iterable[str]) -> str:
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode() + b"\0")
        with open(os.path.join(root, name), "rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def source_sha256(path: str | os.PathLike, fmt: str) -> str:
    """sha256 of a model source (see the module doc for folders)."""
    p = os.fspath(path)
    if fmt == "hf":
        from nfp_steps.io.hf import weight_file

        return _hash_files(p, ["config.json", os.path.basename(weight_file(p))])
    if fmt == "zarr":
        names = [os.path.relpath(os.path.join(d, f), p)
                 for d, _, files in os.walk(p) for f in files]
        return _hash_files(p, names)
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def load_model(path: str | os.PathLike) -> GPT2Weights:
    """Read any accepted model source, record its provenance, validate."""
    p = os.fspath(path)
    fmt = detect_format(p)
    if fmt == "hf":
        from nfp_steps.io.hf import read_hf_folder as read
    elif fmt == "zarr":
        from nfp_steps.io.zarr_store import read_weights_zarr as read
    elif fmt == "nfpt-text":
        from nfp_steps.io.nfpt_text import read_nfpt_text as read
    else:
        from nfp_steps.io.nfpt_binary import read_nfpt_binary as read
    w = read(p)
    if fmt == "zarr":
        prev = {k: w.attrs.pop(f"source_{k}", None) for k in ("sha256", "path", "format")}
        w.attrs.setdefault("origin", prev)
    w.attrs["source_path"] = os.path.abspath(p)
    w.attrs["source_format"] = fmt
    w.attrs["source_sha256"] = source_sha256(p, fmt)
    return w.validate(p)


def guess_format(path: str | os.PathLike) -> str:
    """Output format from a destination name: ``.nfpt`` text, ``.zarr`` store, else HF folder."""
    p = os.fspath(path).rstrip("/\\")
    if p.endswith(".nfpt"):
        return "nfpt-text"
    if p.endswith(".zarr"):
        return "zarr"
    return "hf"


def save_model(w: GPT2Weights, path: str | os.PathLike, fmt: str | None = None,
               dtype: str | None = None) -> str:
    """Write ``w`` in ``fmt`` (default: :func:`guess_format`); returns the format used.

    ``dtype`` (float32|float64) applies to HF folders only; the other formats are float64.
    """
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise ModelError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    if dtype is not None and fmt != "hf":
        raise ModelError(f"dtype applies to Hugging Face output only; {fmt} stores float64")
    if fmt == "hf":
        from nfp_steps.io.hf import write_hf_folder

        write_hf_folder(w, path, dtype=dtype or "float64")
    elif fmt == "zarr":
        from nfp_steps.io.zarr_store import write_weights_zarr

        write_weights_zarr(w, path)
    elif fmt == "nfpt-text":
        from nfp_steps.io.nfpt_text import write_nfpt_text

        write_nfpt_text(w, path)
    else:
        from nfp_steps.io.nfpt_binary import write_nfpt_binary

        write_nfpt_binary(w, path)
    return fmt


def bake_prompt(w: GPT2Weights, tokens: np.ndarray) -> GPT2Weights:
    """A copy of an HF-style model with ``embeddings = wte[tokens] + wpe[:n]`` (float64) baked in,
    as the ``.nfpt`` formats need."""
    if w.wte is None or w.wpe is None:
        raise ModelError("cannot bake a prompt: the model has no wte/wpe tables (its .nfpt "
                         "source already fixed one prompt)")
    t = np.asarray(tokens)
    if t.ndim != 1 or t.size == 0 or not np.issubdtype(t.dtype, np.integer):
        raise ModelError("tokens must be a non-empty list of integers")
    if t.min() < 0 or t.max() >= w.vocab_size:
        i = int(np.argmax((t < 0) | (t >= w.vocab_size)))
        raise ModelError(f"token id {int(t[i])} at index {i} is outside 0..{w.vocab_size - 1}")
    if t.size > w.wpe.shape[0]:
        raise ModelError(f"{t.size} tokens exceed the model's context of {w.wpe.shape[0]}")
    from dataclasses import replace

    t = t.astype(np.int64)
    emb = w.wte[t] + w.wpe[: t.size]
    return replace(w, embeddings=emb, tokens=t, attrs=dict(w.attrs))


def require_sections(w: GPT2Weights, needed: Iterable[str] = LOGIT_SECTIONS,
                     purpose: str = "logits") -> None:
    """Refuse a model whose sections ``needed`` are placeholders (weights-only ``.nfpt``)."""
    gone = [s for s in needed if s in w.attrs.get("missing_sections", [])]
    if gone:
        raise ModelError(
            f"{w.attrs.get('source_path', 'model')}: {purpose} need section(s) "
            f"{', '.join(gone)}, which the source file does not have (weights-only file)")
