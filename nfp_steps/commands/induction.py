"""``nfp induction MODEL``: rank induction head pairs, print the original's report layout."""

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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "induction",
        help="rank candidate induction head pairs with rigorous per-head error bounds",
        description=(
            "Run the analysis pipeline in memory on MODEL (.nfpt text/binary file, Hugging Face "
            "GPT-2 folder, or weights .zarr store) and print ranked head pairs "
            "(L{l1}H{h1} -> L{l2}H{h2}) with heuristic scores and rigorous Error bounds. "
            "Exit codes: 0 ok, 1 errors and bad flags, 2 no induction target derivable."
        ),
    )
    add_pipeline_flags(p)
    p.add_argument("-v", "--verbose", action="store_true", help="more metrics per pair")
    p.add_argument("-d", "--diagnostics", action="store_true",
                   help="print per-layer bounds and the ε decomposition of the top pairs")
    p.add_argument("--diagTop", "--diag-top", dest="diag_top", type=int, default=None,
                   help="pairs to decompose under -d (default: config ranking.diag_top, 5)")
    p.add_argument("-t", "--threshold", type=float, default=None,
                   help="keep pairs with Effect > T (default 0.0)")
    p.add_argument("--verify", action="store_true",
                   help="ablate the top pairs' heads (zero and mean ablation, a same-layer "
                        "control, the original's runtime checks; config verify.top pairs)")
    a = p.add_argument_group("adaptive scheduler (tightens the per-layer bounds C_l)")
    a.add_argument("--adaptive", action="store_true",
                   help="start from the loosest valid bounds and upgrade the layer with the worst "
                        "ub/lb slack first; printed with -v or -d")
    a.add_argument("--targetSlack", "--target-slack", dest="target_slack", type=float,
                   default=None, help="stop when every ub/lb ≤ this (default 8)")
    a.add_argument("--maxUpgrades", "--max-upgrades", dest="max_upgrades", type=int,
                   default=None, help="upgrade attempts (default 200)")
    a.add_argument("--minRelImprove", "--min-rel-improve", dest="min_rel_improve", type=float,
                   default=None, help="smaller relative improvements stall a layer (default 0.01)")
    a.add_argument("--krylovSteps", "--krylov-steps", dest="krylov_steps", type=int,
                   default=None, help="Lanczos steps of the certified lower bounds (default 4)")
    a.add_argument("--adaptiveScope", "--adaptive-scope", dest="adaptive_scope",
                   choices=("layernorm", "all"), default=None,
                   help="factors the scheduler may upgrade (default layernorm)")
    add_output_flags(p)
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> dict:
    ad = "bounds.layers.adaptive."
    return build_config(args, {
        "ranking.threshold": args.threshold, "ranking.diag_top": args.diag_top,
        "bounds.layers.krylov_steps": args.krylov_steps,
        ad + "enabled": True if args.adaptive else None,
        ad + "target_slack": args.target_slack, ad + "max_upgrades": args.max_upgrades,
        ad + "min_rel_improve": args.min_rel_improve, ad + "scope": args.adaptive_scope,
    })


def run(args: argparse.Namespace) -> int:
    import json

    from nfp_steps.ranking import induction_report
    from nfp_steps.stages.ranking import ranking_rows

    check_model_path(args.model)
    cfg = _config(args)
    inputs = run_pipeline(cfg, "verify" if args.verify else "ranking")
    if args.verify:
        require_verify_target(inputs)
    rows = ranking_rows(inputs, cfg)
    sc = inputs["scores"]
    rk = cfg["ranking"]
    warnings = json.loads(sc.attrs["warnings"])
    text = induction_report(rows, sc.attrs["target_description"], rk["threshold"], rk["top"],
                            verbose=args.verbose, warnings=warnings,
                            n_prompts=int(sc.attrs["n_prompts"]))
    text = model_line(inputs) + "\n\n" + text
    doc: dict = {"command": "induction", "model": args.model, **target_doc(sc),
                 "warnings": warnings, "threshold": rk["threshold"],
                 "n_candidates": len(rows), "pairs": rows[: rk["top"]]}
    ly, hd = inputs["layers"], inputs["heads"]
    adaptive = bool(ly.attrs["adaptive"])
    if adaptive and (args.verbose or args.diagnostics):
        text = _insert_after_header(text, _scheduler_block(cfg, ly))
        doc["scheduler"] = {"settings": cfg["bounds"]["layers"]["adaptive"],
                            "steps": [str(v) for v in ly["scheduler_log"].values],
                            "stop": ly.attrs["scheduler_stop"]}
    if args.diagnostics:
        from nfp_steps import diagnostics_text as D
        from nfp_steps.stages.common import weights

        w = weights(inputs)
        top = rows[: rk["diag_top"]]
        blocks = [D.layer_block(ly, adaptive)]
        if w.d_mlp:
            blocks.append(D.rect_gram_block(w.W_in[0], w.W_out[0]))
        blocks.append(D.eps_decomposition(top, hd, w.d_head))
        text += "".join("\n" + "\n".join(b) + "\n" for b in blocks)
        doc["layers"] = layers_doc(ly)
        doc["diagnostics"] = [{"l1": r["l1"], "h1": r["h1"], "l2": r["l2"], "h2": r["h2"],
                               "head1": head_doc(hd, r["l1"], r["h1"]),
                               "head2": head_doc(hd, r["l2"], r["h2"]),
                               "eps1_ub": r["eps1_ub"], "eps2_ub": r["eps2_ub"],
                               "pairError_ub": r["pairError_ub"]} for r in top]
    if args.verify:
        from nfp_steps.stages.common import table_rows
        from nfp_steps.verify_text import verify_block

        vrows = table_rows(inputs["verify"])
        text += "\n" + "\n".join(verify_block(vrows, int(sc.attrs["n_prompts"]))) + "\n"
        doc["verify"] = vrows
    emit(text, doc, args)
    return 0


def target_doc(sc) -> dict:
    """The JSON fields naming the target and the prompt batch."""
    return {"target": {"correct": int(sc.attrs["target_correct"]),
                       "incorrect": int(sc.attrs["target_incorrect"]),
                       "description": sc.attrs["target_description"],
                       "source": sc.attrs["target_source"]},
            "n_prompts": int(sc.attrs["n_prompts"]), "kcomp": sc.attrs["kcomp"]}


def layers_doc(ly) -> list[dict]:
    """Per layer: the rigorous C_ub/C_lb and parts, the heuristic PI estimate, the tiers."""
    keys = ("attn_ub", "mlp_ub", "C_ub", "C_lb", "slack", "C_pi", "tier",
            "ln1_ub", "heads_ub", "ln2_ub", "w_in_ub", "gelu_ub", "w_out_ub")
    return [{"layer": i, **{k: ly[k].values[i].item() for k in keys if k in ly}}
            for i in range(ly.sizes["layer"])]


def head_doc(hd, layer: int, head: int) -> dict:
    """Every per-head number of the heads store (bounds, candidates, heuristics) for one head."""
    return {k: float(hd[k].values[layer, head]) for k in hd.data_vars
            if hd[k].dims == ("layer", "head")}


def _scheduler_block(cfg: dict, ly) -> list[str]:
    """The original's ADAPTIVE SCHEDULER lines (one per upgrade attempt) and the stop reason."""
    ad = cfg["bounds"]["layers"]["adaptive"]
    return ["", "ADAPTIVE SCHEDULER",
            f"  targetSlack={ad['target_slack']:.6f}  maxUpgrades={ad['max_upgrades']} "
            f"minRelImprove={ad['min_rel_improve']:.6f}  "
            f"krylovSteps={cfg['bounds']['layers']['krylov_steps']} scope={ad['scope']}",
            *[str(v) for v in ly["scheduler_log"].values],
            f"  stop: {ly.attrs['scheduler_stop']}"]


def _insert_after_header(text: str, block: list[str]) -> str:
    """Put ``block`` after the "Top Induction Head Pairs" header line (the original's place)."""
    lines = text.split("\n")
    at = next((i + 1 for i, line in enumerate(lines)
               if line.startswith("Top Induction Head Pairs")), len(lines))
    return "\n".join(lines[:at] + block + lines[at:])
