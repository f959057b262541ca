"""``nfp induction MODEL``: rank induction head pairs, print the original's report layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "induction",
        help="rank candidate induction head pairs with rigorous per-head error bounds",
        description=(
            "Run the analysis pipeline in memory on MODEL (.nfpt text/binary file, Hugging Face "
            "GPT-2 folder, or weights .zarr store) and print ranked head pairs "
            "(L{l1}H{h1} -> L{l2}H{h2}) with heuristic scores and rigorous Error bounds."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="model path")
    p.add_argument("-v", "--verbose", action="store_true", help="more metrics per pair")
    p.add_argument("-d", "--diagnostics", action="store_true",
                   help="print per-layer bounds and the ε decomposition of the top pairs")
    p.add_argument("--diagTop", "--diag-top", dest="diag_top", type=int, default=None,
                   help="pairs to decompose under -d (default: config ranking.diag_top, 5)")
    p.add_argument("--correct", type=int, default=None, help="target token id (with --incorrect)")
    p.add_argument("--incorrect", type=int, default=None, help="competing token id")
    p.add_argument("-t", "--threshold", type=float, default=None,
                   help="keep pairs with Effect > T (default 0.0)")
    p.add_argument("--seqLen", "--seq-len", dest="seq_len", type=int, default=None,
                   help="prompt length for models that embed their own prompt (HF, Zarr); "
                        "default: config prompt.seq_len")
    p.add_argument("--seed", type=int, default=None, help="prompt seed (default: config)")
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
    p.add_argument("--config", default=None,
                   help="config YAML for prompt and bound settings (default: the repo's "
                        "config.yaml when present, else built-in defaults)")
    p.set_defaults(func=run)


def _config(args) -> dict:
    from nfp_steps.config import load_config

    path = Path(args.config) if args.config else DEFAULT_CONFIG
    if args.config and not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.exists():
        import yaml

        raw = yaml.safe_load(path.read_text()) or {}
    else:
        raw = {}
    raw["models"] = {"cli": str(args.model)}
    raw.setdefault("ranking", {})
    raw.setdefault("induction", {})
    raw.setdefault("prompt", {})
    if args.seq_len is not None:
        raw["prompt"]["seq_len"] = args.seq_len
    if args.seed is not None:
        raw["prompt"]["seed"] = args.seed
    if args.threshold is not None:
        raw["ranking"]["threshold"] = args.threshold
    if args.diag_top is not None:
        raw["ranking"]["diag_top"] = args.diag_top
    if (args.correct is None) != (args.incorrect is None):
        from nfp_steps.cli import UsageError

        raise UsageError("--correct and --incorrect must be given together")
    layers = raw.setdefault("bounds", {}).setdefault("layers", {})
    if args.krylov_steps is not None:
        layers["krylov_steps"] = args.krylov_steps
    ad = layers.setdefault("adaptive", {})
    if args.adaptive:
        ad["enabled"] = True
    for key in ("target_slack", "max_upgrades", "min_rel_improve"):
        if getattr(args, key) is not None:
            ad[key] = getattr(args, key)
    if args.adaptive_scope is not None:
        ad["scope"] = args.adaptive_scope
    if args.correct is not None:  # flags override the config file; absent flags keep it
        if args.correct == args.incorrect:
            from nfp_steps.cli import UsageError

            raise UsageError(f"--correct and --incorrect are the same token ({args.correct}): "
                             "the logit difference would be identically zero")
        raw["induction"]["correct"] = args.correct
        raw["induction"]["incorrect"] = args.incorrect
    origin = f"command-line flags + {path}" if path.exists() else "command-line flags"
    return load_config(raw, name=origin)


def run(args) -> int:
    import json

    from nfp_steps.pipeline import run_in_memory
    from nfp_steps.ranking import induction_report
    from nfp_steps.scores import TargetError
    from nfp_steps.stages.ranking import ranking_rows

    if not Path(args.model).exists():
        raise FileNotFoundError(f"model not found: {args.model}")
    cfg = _config(args)
    print("Loading model...")
    try:
        res = run_in_memory(cfg, "cli", until="layers")
        res.update(run_in_memory_scores(cfg, res))
    except TargetError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    w_ds = res["export"].dataset
    dims = json.loads(w_ds.attrs["dims"]) if isinstance(w_ds.attrs.get("dims"), str) else {}
    if dims:
        print(f"Model: {dims.get('num_layers')} layers, {dims.get('num_heads')} heads, "
              f"model_dim={dims.get('model_dim')}, head_dim={dims.get('head_dim')}")
    print()
    inputs = {k: v.dataset for k, v in res.items()}
    rows = ranking_rows(inputs, cfg)
    sc = inputs["scores"]
    rk = cfg["ranking"]
    text = induction_report(rows, sc.attrs["target_description"], rk["threshold"], rk["top"],
                            verbose=args.verbose, warnings=json.loads(sc.attrs["warnings"]))
    ly, hd = inputs["layers"], inputs["heads"]
    adaptive = bool(ly.attrs["adaptive"])
    if adaptive and (args.verbose or args.diagnostics):
        text = _insert_after_header(text, _scheduler_block(cfg, ly))
    sys.stdout.write(text)
    if args.diagnostics:
        from nfp_steps import diagnostics_text as D
        from nfp_steps.io.zarr_store import dataset_to_weights

        w = dataset_to_weights(inputs["export"])
        blocks = [D.layer_block(ly, adaptive)]
        if w.d_mlp:
            blocks.append(D.rect_gram_block(w.W_in[0], w.W_out[0]))
        blocks.append(D.eps_decomposition(rows[: rk["diag_top"]], hd, w.d_head))
        for block in blocks:
            print()
            print("\n".join(block))
    return 0


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


def run_in_memory_scores(cfg: dict, res: dict) -> dict:
    """The scores stage on the already computed upstream results."""
    from nfp_steps.stages.scores import run as stage_scores

    inputs = {k: v.dataset for k, v in res.items()}
    return {"scores": stage_scores(inputs, cfg, "cli")}
