"""``nfp certify MODEL``: global and local layer constants and induction-head certificates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nfp_steps.commands.common import add_pipeline_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "certify",
        help="certificate: per-layer constants C_l, ∏(1 + C_l) (global and local) and "
             "induction-head bounds, checked by the independent checker",
        description=(
            "Compute a certificate for MODEL: per-layer constants C_l ≥ ‖J_l − I‖₂ and "
            "∏(1 + C_l) in a global form (weights only, every prompt up to the context length) "
            "and a local form (at the configured prompt), and for the top-ranked pairs an "
            "induction-head certificate (attention margins, value range, a lower bound on the "
            "head's direct logit-difference contribution). Every value is exact in "
            "certificate.json (--json); the independent checker (`nfp check`) verifies it "
            "before this command reports success. Exit code 0: certified and verified; 1: an "
            "error or a claim the checker refutes; 2: no valid target (--correct/--incorrect "
            "are checked before the pipeline runs)."
        ),
    )
    add_pipeline_flags(p)
    p.add_argument("--eps", type=float, default=None,
                   help="LayerNorm eps (default: the model's own; another value certifies that "
                        "variant of the model, and the certificate says so)")
    p.add_argument("--actDeriv", "--act-deriv", dest="act_deriv", type=float, default=None,
                   help="GELU′ bound (accepted for compatibility: the certified sup|GELU′| is "
                        "used unless this is larger)")
    p.add_argument("--pairs", type=int, default=None,
                   help="top pairs whose induction head is certified (default: config "
                        "certificate.pairs, 3)")
    p.add_argument("--no-global", dest="no_global", action="store_true",
                   help="skip the global (weight-only) constants")
    p.add_argument("--no-local", dest="no_local", action="store_true",
                   help="skip the local constants at the prompt (their check is slow for large "
                        "models)")
    p.add_argument("--json", action="store_true",
                   help="print certificate.json (exact values, witnesses) instead of the report")
    p.add_argument("-o", "--output", default=None,
                   help="write the report (or with --json the certificate) to this file")
    p.set_defaults(func=run)


def _cfg(args) -> dict:
    from nfp_steps.cli import UsageError
    from nfp_steps.commands.common import build_config

    if args.pairs is not None and args.pairs < 0:
        raise UsageError(f"--pairs must be >= 0, got {args.pairs}")
    return build_config(args, {"certificate.pairs": args.pairs,
                               "certificate.global": False if args.no_global else None,
                               "certificate.local": False if args.no_local else None})


def _check_target_flags(args) -> None:
    """--correct/--incorrect: both or neither, and different (TargetError: exit 2)."""
    from nfp_steps.scores import TargetError

    if (args.correct is None) != (args.incorrect is None):
        raise TargetError("--correct and --incorrect must be given together (or neither: the "
                          "target then comes from the prompt's induction history)")
    for name in ("correct", "incorrect"):
        v = getattr(args, name)
        if v is not None and v < 0:
            raise TargetError(f"--{name} {v} is outside the vocabulary: token ids are >= 0")
    if args.correct is not None and args.correct == args.incorrect:
        raise TargetError(f"--correct and --incorrect are the same token ({args.correct}): the "
                          "logit difference would be identically zero")


def _check_target_range(cfg: dict, vocab: int) -> None:
    """The target token ids (flags or config) inside the model's vocabulary, checked before
    any stage after the model read runs (TargetError: exit 2)."""
    from nfp_steps.scores import TargetError

    ind = cfg["induction"]
    for name in ("correct", "incorrect"):
        v = ind.get(name)
        if v is not None and not 0 <= v < vocab:
            raise TargetError(f"--{name} {v} is outside the model's vocabulary [0, {vocab})")


def run(args) -> int:
    import math

    from nfp_steps.certificate import dumps, report_text
    from nfp_steps.cli import UsageError
    from nfp_steps.commands.common import check_model_path
    from nfp_steps.pipeline import run_in_memory
    from nfp_steps.scores import TargetError
    from nfp_steps.stages.certificate import check_status, make_certificate
    from nfp_steps.stages.common import weights

    check_model_path(args.model)
    for flag, v in (("--eps", args.eps), ("--actDeriv", args.act_deriv)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UsageError(f"invalid {flag} {v!r}: must be a positive finite number")
    _check_target_flags(args)
    cfg = _cfg(args)
    res = run_in_memory(cfg, "cli", until="export")  # reads the model only
    _check_target_range(cfg, weights({"export": res["export"].dataset}).vocab_size)
    model_eps = float(res["export"].dataset.attrs["eps"])
    if args.eps is not None:
        res["export"].dataset.attrs["eps"] = float(args.eps)
    try:
        res = run_in_memory(cfg, "cli", until="ranking", done=res)
    except TargetError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    inputs = {k: v.dataset for k, v in res.items()}
    w = weights(inputs)
    cert = make_certificate(w, inputs, cfg, Path(args.model).name,
                            str(Path(args.model).resolve()), gelu_flag=args.act_deriv,
                            model_eps=model_eps)
    status = check_status(cert, w)
    if args.json:
        out = dumps(cert)
    else:
        out = report_text(cert) + f"Independent check: {status}\n"
    if args.output:
        Path(args.output).write_text(out)
        print(f"Report written to {args.output}" if not args.json
              else f"Certificate written to {args.output}")
    else:
        sys.stdout.write(out)
    if status != "verified":
        print(f"Error: the independent checker did not verify the certificate: {status}",
              file=sys.stderr)
        return 1
    return 0


