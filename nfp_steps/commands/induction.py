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
    raw["induction"]["correct"] = args.correct
    raw["induction"]["incorrect"] = args.incorrect
    return load_config(raw, name=str(path))


def run(args) -> int:
    import json

    from nfp_steps.pipeline import run_in_memory
    from nfp_steps.ranking import fmt, induction_report
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
    sys.stdout.write(induction_report(rows, sc.attrs["target_description"], rk["threshold"],
                                      rk["top"], verbose=args.verbose,
                                      warnings=json.loads(sc.attrs["warnings"])))
    if args.diagnostics:
        ly, hd = inputs["layers"], inputs["heads"]
        print()
        # the original's block, plus the certified lower bound: PI is a heuristic
        # power-iteration estimate of ‖J_l − I‖₂, lb and ub are rigorous
        print("LAYER NORM DIAGNOSTICS (PI vs rigorous)")
        print("  (PI is diagnostics-only; lb (Krylov vector, certified) and ub are rigorous)")
        for i, c in enumerate(ly["C_ub"].values):
            pi, lb = float(ly["C_pi"].values[i]), float(ly["C_lb"].values[i])
            ratio = fmt(c / pi) if pi > 1e-12 else "inf"
            slack = fmt(c / lb) if lb > 1e-12 else "inf"
            a_ub, m_ub = fmt(ly["attn_ub"].values[i]), fmt(ly["mlp_ub"].values[i])
            print(f"  L{i}: PI≈{fmt(pi)}  ub={fmt(c)}  ub/PI={ratio}  lb={fmt(lb)}  ub/lb={slack}"
                  f"  (attn_ub={a_ub} mlp_ub={m_ub})")
        top = rows[: rk["diag_top"]]
        print()
        print(f"DIAGNOSTICS (ε decomposition) for top-{len(top)} candidates")
        for r in top:
            print(f"Candidate L{r['l1']}H{r['h1']} -> L{r['l2']}H{r['h2']}")
            for tag, (lay, h) in (("Head1", (r["l1"], r["h1"])), ("Head2", (r["l2"], r["h2"]))):
                print(f"  {tag} L{lay}H{h}:")
                for k in ("softmax_ub", "z_norm_ub", "qk_ub", "qk_lb", "vo_ub", "vo_lb",
                          "attn_norm_lb", "attn_norm_ub", "pattern_ub", "value_lb", "value_ub",
                          "eps_ub"):
                    print(f"    {k:<14} = {fmt(hd[k].values[lay, h])}")
            print("  Combined:")
            print(f"    ε1 = {fmt(r['eps1_ub'])}  ε2 = {fmt(r['eps2_ub'])}")
            print(f"    combinedError = (1+ε1)(1+ε2)-1 = {fmt(r['pairError_ub'])}")
    return 0


def run_in_memory_scores(cfg: dict, res: dict) -> dict:
    """The scores stage on the already computed upstream results."""
    from nfp_steps.stages.scores import run as stage_scores

    inputs = {k: v.dataset for k, v in res.items()}
    return {"scores": stage_scores(inputs, cfg, "cli")}
