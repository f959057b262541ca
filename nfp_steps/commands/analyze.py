"""``nfp analyze MODEL [--l1 L --h1 H --l2 L --h2 H]``: one pair in detail, or every candidate
pair in the original's "NFP Circuit Analysis Report" layout (see :mod:`nfp_steps.analyze`)."""

from __future__ import annotations

import argparse

from nfp_steps.commands.common import (
    add_pipeline_flags,
    build_config,
    check_model_path,
    model_line,
    require_verify_target,
    run_pipeline,
)
from nfp_steps.commands.output import add_output_flags, emit

PAIR_FLAGS = ("l1", "h1", "l2", "h2")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="analyse one head pair (scores, every bound and its decomposition) or all pairs",
        description=(
            "With --l1 --h1 --l2 --h2: the pair's heuristic scores (mean ± sd over the prompt "
            "batch), every rigorous bound with the candidate it used and why, ε₁, ε₂, the pair "
            "error, the per-layer constants from l1 to l2 and the pair error amplified along "
            "the path between the heads. Without them: every induction candidate pair in the "
            "original's analyze report layout (corrected). Exit codes: 0 ok, 1 errors and bad "
            "flags, 2 no induction target derivable."
        ),
    )
    add_pipeline_flags(p)
    for name, what in (("l1", "layer of head 1 (previous-token head)"),
                       ("h1", "head 1's index in its layer"),
                       ("l2", "layer of head 2 (induction head), above l1"),
                       ("h2", "head 2's index in its layer")):
        p.add_argument(f"--{name}", type=int, default=None, help=what + " (0-based)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="pair mode: the scores on each prompt of the batch; all pairs: the "
                        "scores of every candidate")
    p.add_argument("-d", "--diagnostics", action="store_true",
                   help="add the per-layer diagnostics of `nfp induction -d` (PI vs rigorous)")
    p.add_argument("-t", "--threshold", type=float, default=0.1,
                   help="mark whether the pair error (rigorous ub, dimensionless) is ≤ T "
                        "(default 0.1, the original's)")
    p.add_argument("--verify", action="store_true",
                   help="ablate the pair's heads (or the top config verify.top candidates): "
                        "zero/mean ablation, control head, the original's runtime checks")
    add_output_flags(p)
    p.set_defaults(func=run)


def _pair(args: argparse.Namespace, n_layers: int, n_heads: int) -> tuple[int, ...] | None:
    """The four pair flags (all or none), range-checked against the model."""
    from nfp_steps.cli import UsageError

    given = [getattr(args, f) for f in PAIR_FLAGS]
    if all(v is None for v in given):
        return None
    if any(v is None for v in given):
        missing = ", ".join(f"--{f}" for f, v in zip(PAIR_FLAGS, given, strict=True) if v is None)
        raise UsageError(f"give all of --l1 --h1 --l2 --h2 or none (missing {missing})")
    l1, h1, l2, h2 = given
    for name, v, hi in (("l1", l1, n_layers), ("l2", l2, n_layers), ("h1", h1, n_heads),
                        ("h2", h2, n_heads)):
        if not 0 <= v < hi:
            raise UsageError(f"--{name} {v} is out of range: the model has "
                             f"{n_layers} layers of {n_heads} heads (0-based indices)")
    if not l1 < l2:
        raise UsageError(f"--l1 {l1} must be below --l2 {l2} (head 1 feeds head 2)")
    return l1, h1, l2, h2


def _dims(model: str) -> tuple[int, int]:
    from nfp_steps.io.loader import load_model

    w = load_model(model)
    return w.n_layers, w.n_heads


def run(args: argparse.Namespace) -> int:
    from nfp_steps import analyze as A
    from nfp_steps.commands.induction import layers_doc, target_doc
    from nfp_steps.ranking import candidate_failures, pair_row
    from nfp_steps.stages.common import batch_tokens, table_rows, weights
    from nfp_steps.stages.ranking import ranking_rows, score_arrays

    check_model_path(args.model)
    from nfp_steps.cli import UsageError

    if any(getattr(args, f) is not None for f in PAIR_FLAGS):
        pair = _pair(args, *_dims(args.model))  # flag errors before any heavy work
    else:
        pair = None
    if args.threshold != args.threshold:
        raise UsageError("--threshold must be a number, got nan")
    cfg = build_config(args)
    inputs = run_pipeline(cfg, "verify" if args.verify and pair is None else "ranking")
    if args.verify:
        require_verify_target(inputs)
    w = weights(inputs)
    sc, hd, ly = inputs["scores"], inputs["heads"], inputs["layers"]
    rows = ranking_rows(inputs, cfg)
    n_prompts = int(sc.attrs["n_prompts"])
    doc: dict = {"command": "analyze", "model": args.model, **target_doc(sc),
                 "mode": "pair" if pair else "all"}
    import json

    warnings = json.loads(sc.attrs["warnings"])
    doc["warnings"] = warnings
    text = [model_line(inputs), *warnings, ""]
    if pair:
        l1, h1, l2, h2 = pair
        rank = next((r["rank"] for r in rows
                     if (r["l1"], r["h1"], r["l2"], r["h2"]) == pair), None)
        r = pair_row(score_arrays(inputs), hd["eps_ub"].values, l1, h1, l2, h2)
        rk = cfg["ranking"]
        fails = [] if rank is not None else candidate_failures(
            r, min_prev_tok=rk["min_prev_tok"], min_ind_score=rk["min_ind_score"],
            threshold=rk["threshold"])
        lines, pdoc = A.pair_report(args.model, r, rank, fails, hd, ly, w.d_head, w.d_model,
                                    n_prompts, sc.attrs["kcomp"], args.threshold,
                                    sc.attrs["target_description"])
        text += lines
        doc.update(pdoc)
        per = {k: sc[f"{k}_batch"].values for k in ("prevTok", "indScore", "delta", "effect")}
        doc["per_prompt"] = [{"prevTok": per["prevTok"][b, l1, h1],
                              "indScore": per["indScore"][b, l2, h2],
                              "delta": per["delta"][b, l2, h2], "effect": per["effect"][b, l2, h2]}
                             for b in range(n_prompts)]
        if args.verbose:
            from nfp_steps.ranking import fmt

            text += ["", "PER PROMPT (heuristic scores; prompt 0 is the analysed one)"]
            text += [f"  prompt {b}: " + "  ".join(f"{k}={fmt(v)}" for k, v in d.items())
                     for b, d in enumerate(doc["per_prompt"])]
        if args.verify:
            from nfp_steps.verify import verify_pairs

            vrows = verify_pairs(w, batch_tokens(inputs), [pair],
                                 int(sc.attrs["target_correct"]))
    else:
        lines, adoc = A.all_pairs_report(args.model, rows, ly, w.n_layers,
                                         w.n_layers * w.n_heads, args.threshold)
        text += lines
        doc.update(adoc)
        if args.verbose:
            from nfp_steps.ranking import pair_line

            text += ["", "Scores of every candidate (heuristic; ranking order):"]
            text += [pair_line(r, verbose=True) for r in rows]
        if args.verify:
            vrows = table_rows(inputs["verify"])
    if args.diagnostics:
        from nfp_steps import diagnostics_text as D

        text += [""] + D.layer_block(ly, bool(ly.attrs["adaptive"]))
        doc["all_layers"] = layers_doc(ly)
    if args.verify:
        from nfp_steps.verify_text import verify_block

        text += [""] + verify_block(vrows, n_prompts)
        doc["verify"] = vrows
    emit("\n".join(text) + "\n", doc, args)
    return 0
