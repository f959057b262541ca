"""``nfp rope [MODEL]``: the RoPE Jacobian bounds. They depend on the sizes only: MODEL is
accepted because the original's README shows ``nfp rope MODEL`` (its CLI took none); it must
exist but is not read, and the report says so."""

from __future__ import annotations

import argparse

from nfp_steps.commands.output import add_output_flags, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rope",
        help="RoPE Jacobian bounds: the static ℓ∞ bound 2, the tight √2 and the spectral norm 1",
        description="Print the RoPE Jacobian bounds for the given sizes, with a numeric check "
                    "(see nfp_steps/rope.py for the derivation). The bounds depend on the "
                    "sizes only; a MODEL argument is accepted (as in the original's README) "
                    "but not read.",
    )
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="optional, not read (compatibility with the original's README)")
    p.add_argument("--seqLen", "--seq-len", dest="seq_len", type=int, default=4,
                   help="positions (default 4)")
    p.add_argument("--pairs", type=int, default=8, help="rotation pairs, dim = 2·pairs (default 8)")
    p.add_argument("--theta", type=float, default=10000.0, help="RoPE base (default 10000)")
    add_output_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nfp_steps.cli import UsageError
    from nfp_steps.rope import rope_numbers, rope_report

    if args.model is not None:
        from pathlib import Path

        if not Path(args.model).exists():
            raise FileNotFoundError(f"model not found: {args.model}")
    try:
        text = rope_report(args.seq_len, args.pairs, args.theta)
        doc = rope_numbers(args.seq_len, args.pairs, args.theta)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.model is not None:
        text += (f"  Model: {args.model} (not read: the RoPE Jacobian depends only on the sizes "
                 "above; GPT-2 models use learned positions, not RoPE)\n")
    emit(text, {"command": "rope", "model": args.model, **doc}, args)
    return 0
