"""``nfp check CERT``: the independent certificate checker (exit 0 verified / 1 refuted /
2 unreadable)."""

from __future__ import annotations

import argparse
import json
import sys


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
    p.add_argument("--json", action="store_true", help="print the outcome as one JSON document")
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
    if args.json:
        print(json.dumps({"status": status, "reason": reason or None, "checked": checked,
                          "notes": notes, "certificate": args.cert}, indent=1))
        return code
    if status == "verified":
        for line in checked:
            print(f"ok: {line}")
        for line in notes:
            print(f"note: {line}")
        print("verified")
    else:
        print(f"{status}: {reason}", file=sys.stderr)
    return code
