"""Shared report output of every ``nfp`` command: text or one JSON document, stdout or a file.

How a command uses it (the lead applies the same two calls to certify/check/archive):

1. in ``register``: ``add_output_flags(parser)`` adds ``--json`` and ``-o/--output FILE``
   (``add_output_flags(parser, output=False)`` when ``--output`` already means something else,
   e.g. the destination of ``nfp export``/``nfp train-toy``: only ``--json`` is added);
2. in ``run``: build the whole report first, then ``emit(text, doc, args)`` once. ``text`` is
   the human report, ``doc`` a JSON-able dict with the same numbers. Nothing may be printed to
   stdout before ``emit`` (progress goes to stderr), so ``--json`` output is exactly one
   document.

JSON conventions (README "JSON output"): every document has ``command`` (the subcommand name)
and ``nfp_version``; floats are plain JSON numbers, and the non-finite ones, which JSON lacks,
are the strings ``"NaN"``, ``"inf"`` and ``"-inf"`` (the text report's spelling); numpy scalars
and arrays become numbers and lists. With ``-o F`` the report (text or JSON) is written to F
(through a temporary file and a rename, so a failure leaves no partial file) and one line
``Report written to F`` goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np


def add_output_flags(p: argparse.ArgumentParser, output: bool = True) -> None:
    """Add ``--json`` (and ``-o/--output FILE``, stored as ``args.report_output``,
    unless ``output`` is False) to a parser."""
    p.add_argument("--json", action="store_true",
                   help="print one JSON document instead of the text report (README: JSON output)")
    if output:
        p.add_argument("-o", "--output", dest="report_output", default=None, metavar="FILE",
                       help="write the report (text, or JSON with --json) to FILE, not stdout")


def plain(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones and non-finite floats as "NaN"/"inf"/"-inf"."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON")


def to_json(doc: dict) -> str:
    """The JSON text of a report document (see :func:`plain`), newline-terminated."""
    return json.dumps(plain(doc), ensure_ascii=False, allow_nan=False, indent=1) + "\n"


def emit(text: str, doc: dict, args: argparse.Namespace) -> None:
    """Write the report: JSON if ``args.json`` else ``text``; to ``args.report_output`` (the
    ``-o/--output`` of :func:`add_output_flags`) if set, else to stdout."""
    from nfp_steps import __version__

    if getattr(args, "json", False):
        full = {"command": doc.get("command", getattr(args, "command", None)),
                "nfp_version": __version__, **doc}
        out = to_json(full)
    else:
        out = text if text.endswith("\n") else text + "\n"
    dest = getattr(args, "report_output", None)
    if dest:
        path = Path(dest)
        if path.is_dir():
            raise IsADirectoryError(f"--output {dest} is a directory; give a file name")
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            tmp.write_text(out, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        print(f"Report written to {dest}", file=sys.stderr)
    else:
        sys.stdout.write(out)
