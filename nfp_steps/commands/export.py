"""``nfp export``: convert a model between HF folders, ``.nfpt`` text/binary and Zarr stores.

The ``.nfpt`` formats store one baked prompt (``EMBEDDINGS = wte[tokens] + wpe``) instead of the
embedding tables, as the original's exporter did. Converting an HF folder (or a store made from
one) to ``.nfpt`` therefore needs the prompt: ``--tokens "1 2 3"`` or ``--seq-len N [--seed S]``
for the main job's default prompt kind (:func:`nfp_steps.prompt.repeated_segments_prompt`: random
tokens with repeated segments, ending in a copy whose last token occurred once before, so the
``induction`` command can derive its target) drawn with ``numpy.random.default_rng(S)``.
Outputs are written to a temporary path and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import re

import numpy as np

from nfp_steps.commands.output import add_output_flags, emit
from nfp_steps.io.loader import FORMATS

_NFPT = ("nfpt-text", "nfpt-binary")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="convert a model (HF folder, .nfpt text/binary, Zarr store) to another format",
        description=(
            "Read SRC (format detected from its content) and write it to --output. The format "
            "is --format, else guessed from the name: *.nfpt -> nfpt-text, *.zarr -> zarr, "
            "anything else -> an HF folder. HF/Zarr -> .nfpt needs a prompt to bake: --tokens "
            "or --seq-len (random tokens from --seed)."
        ),
    )
    p.add_argument("src", metavar="SRC", help="model: HF folder, .nfpt file or weights Zarr store")
    p.add_argument("--output", "-o", required=True, help="destination file or folder")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from --output)")
    p.add_argument("--dtype", choices=("float32", "float64"),
                   help="HF output tensor dtype (default float64; float32 only if exact)")
    p.add_argument("--tokens", help='prompt token ids to bake into .nfpt output, e.g. "1 2 3"')
    p.add_argument("--seq-len", "--seqLen", dest="seq_len", type=int,
                   help="bake N tokens of the default prompt kind (random tokens with repeated "
                        "segments) instead of --tokens")
    p.add_argument("--seed", type=int, default=0, help="seed of the --seq-len tokens (default 0)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --output (a file, or a whole model folder: every "
                        "file in it is removed); never allowed when --output is SRC")
    add_output_flags(p, output=False)  # --output is the destination here
    p.set_defaults(func=run)


def parse_tokens(text: str) -> np.ndarray:
    """Token ids from ``"1 2 3"`` or ``"1,2,3"``."""
    from nfp_steps.cli import UsageError

    parts = [s for s in re.split(r"[\s,]+", text.strip()) if s]
    bad = [s for s in parts if not s.isdigit()]
    if not parts or bad:
        found = bad[0] if bad else text
        raise UsageError(f"--tokens: expected non-negative integers, found {found!r}")
    return np.array([int(s) for s in parts], dtype=np.int64)


def run(args: argparse.Namespace) -> int:
    import os

    from nfp_steps.cli import UsageError
    from nfp_steps.io.loader import bake_prompt, guess_format, load_model, save_model

    fmt = args.format or guess_format(args.output)
    if os.path.exists(args.src) and os.path.exists(args.output) and \
            os.path.samefile(args.src, args.output):
        raise UsageError(f"--output {args.output} is the source itself: write elsewhere")
    if os.path.lexists(args.output) and not args.force:
        raise UsageError(f"--output {args.output} already exists: choose a new path, or pass "
                         "--force to replace it (a folder is replaced as a whole)")
    if args.dtype and fmt != "hf":
        raise UsageError(f"--dtype applies to HF output only ({fmt} stores float64)")
    if args.tokens is not None and args.seq_len is not None:
        raise UsageError("give --tokens or --seq-len, not both")
    if args.seq_len is not None and args.seq_len <= 0:
        raise UsageError(f"--seq-len must be positive, got {args.seq_len}")
    prompt_given = args.tokens is not None or args.seq_len is not None
    if prompt_given and fmt not in _NFPT:
        raise UsageError(f"--tokens/--seq-len bake a prompt into .nfpt output; {fmt} output "
                         f"keeps the embedding tables")
    w = load_model(args.src)
    if fmt in _NFPT and w.embeddings is None and w.wte is not None:
        if not prompt_given:
            raise UsageError(
                f"{fmt} stores one baked prompt (EMBEDDINGS), and {args.src} has none: pass "
                f'--tokens "1 2 3" or --seq-len N [--seed S]')
        if args.tokens is not None:
            toks = parse_tokens(args.tokens)
        else:
            from nfp_steps.prompt import repeated_segments_prompt

            toks = repeated_segments_prompt(np.random.default_rng(args.seed), args.seq_len,
                                            w.vocab_size)
        w = bake_prompt(w, toks)
    elif prompt_given:
        raise UsageError(f"{args.src} has no wte/wpe tables to embed new tokens (its prompt is "
                         f"already baked): drop --tokens/--seq-len")
    used = save_model(w, args.output, fmt, args.dtype)
    dims = w.dims()
    sha = w.attrs.get("source_sha256")
    text = (f"wrote {args.output} ({used}; {dims['num_layers']} layers, {dims['num_heads']} "
            f"heads, d={dims['model_dim']}, vocab={dims['vocab_size']}; source sha256 "
            f"{(sha or '?')[:16]}...)")
    emit(text, {"command": "export", "source": str(args.src), "output": str(args.output),
                "format": used, "dims": dims, "source_sha256": sha}, args)
    return 0
