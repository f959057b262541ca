"""``nfp check CERT``: the independent certificate checker (exit 0 verified / 1 refuted /
2 unreadable)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nfp_steps.commands.output import add_output_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="verify a certificate.json independently with exact arithmetic",
        description=(
            "Re-read the model, verify its sha256, and re-derive every claim of CERT with "
            "exact integer/rational arithmetic in code that shares nothing with the bound "
            "producers (nfp_steps/check.py). Prints 'verified' or names the first failing "
            "claim. Exit code 0: verified; 1: refuted; 2: certificate or model unreadable."
        ),
    )
    p.add_argument("cert", metavar="CERT", help="certificate.json (from `nfp certify --json` or "
                                                "the workflow's results/<model>/)")
    p.add_argument("--model", default=None,
                   help="model path (default: the path recorded in the certificate)")
    add_output_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from nfp_steps.check import Refuted, Unreadable, check_file

    try:
        res = check_file(args.cert, args.model)
    except Refuted as exc:
        return _emit(args, "refuted", str(exc), [], [], 1)
    except Unreadable as exc:
        return _emit(args, "unreadable", str(exc), [], [], 2)
    return _emit(args, "verified", "", res.checked, res.notes, 0)


def _emit(args, status: str, reason: str, checked: list[str], notes: list[str], code: int) -> int:
    """The verdict as text or JSON; to -o/--output FILE if given (a refusal also on stderr)."""
    from nfp_steps import __version__

    if args.json:
        text = json.dumps({"command": "check", "nfp_version": __version__, "status": status,
                           "reason": reason or None, "checked": checked, "notes": notes,
                           "certificate": args.cert}, indent=1) + "\n"
    elif status == "verified":
        text = "".join([*(f"ok: {line}\n" for line in checked),
                        *(f"note: {line}\n" for line in notes), "verified\n"])
    else:
        text = f"{status}: {reason}\n"
    if args.report_output:
        Path(args.report_output).write_text(text)
        if status != "verified":
            print(f"{status}: {reason}", file=sys.stderr)
    elif status == "verified" or args.json:
        sys.stdout.write(text)
    else:
        sys.stderr.write(text)
    return code
