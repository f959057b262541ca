"""``nfp`` command line: thin argparse front end over the stage functions.

Each command lives in ``nfp_steps/commands/<name>.py`` with ``register(subparsers)`` that adds its
parser and sets ``func`` (``args -> exit code``). Errors reach the user as one line on stderr and a
non-zero exit code, never a traceback: 1 for errors and bad flags, 2 when no induction target can
be derived (:class:`nfp_steps.scores.TargetError`). Report output (text, ``--json``, ``-o``) goes
through :mod:`nfp_steps.commands.output`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nfp_steps import __version__
from nfp_steps.model import ModelError

COMMANDS = ("induction", "analyze", "certify", "check", "export", "rope", "train_toy", "archive")


class UsageError(ValueError):
    """Bad flags or flag values (exit code 1, as in the original)."""


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 1 for usage errors (2 means "no induction target")."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nfp",
        description=(
            "NFP: find induction-head circuits in GPT-2-style transformers and report rigorous "
            "Jacobian bounds next to heuristic scores."
        ),
    )
    parser.add_argument("--version", action="version", version=f"nfp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"nfp_steps.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 1
    from nfp_steps.scores import TargetError

    try:
        return int(args.func(args) or 0)
    except TargetError as exc:  # no induction target derivable: exit 2, as the original
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except (ModelError, UsageError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # ConfigError and the stage functions' input errors
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, the traceback only on request
        import os

        if os.environ.get("NFP_TRACEBACK"):
            raise
        print(f"Error: internal error ({type(exc).__name__}: {exc}) - please report it; "
              "set NFP_TRACEBACK=1 for the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    # `python -m nfp_steps.cli` runs this file as __main__, a second copy of the module: call the
    # imported one, whose UsageError is the class the commands raise.
    from nfp_steps.cli import main as _main

    sys.exit(_main())
