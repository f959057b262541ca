"""``nfp train-toy``: train the embedded toy induction model and write an HF GPT-2 folder."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, fields

from nfp_steps.commands.output import add_output_flags, emit
from nfp_steps.train import ToyConfig

_HELP = {
    "seed": "seed of the initialisation and of the training/monitoring data",
    "steps": "phase-1 steps: attention only, MLP outputs frozen at zero",
    "mlp_steps": "phase-2 steps: all weights, circuit re-checked every --eval-every steps "
                 "(0: skip; the MLPs then stay inactive with zero output weights)",
    "layers": "transformer blocks (>= 2)",
    "width": "model width d (divisible by --heads)",
    "heads": "attention heads per layer",
    "mlp_ratio": "MLP width = mlp-ratio x width",
    "vocab": "vocabulary size",
    "seq_len": "training sequence length = context length n_positions",
    "batch": "sequences per step",
    "qk_init_std": "standard deviation of the initial W_Q and W_K (larger than GPT-2's 0.02 "
                   "to leave the uniform-attention plateau)",
    "lr": "phase-1 AdamW learning rate",
    "mlp_lr": "phase-2 AdamW learning rate",
    "weight_decay": "AdamW weight decay",
    "warmup": "linear learning-rate warm-up steps per phase",
    "eval_every": "steps between circuit measurements on held-out data",
    "eval_batches": "held-out monitoring data, in batches",
    "threads": "torch threads (the result is bitwise reproducible for a fixed count)",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-toy",
        help="train the small embedded GPT-2 with an induction circuit (models/nfp-toy)",
        description=(
            "Train a small GPT-2-architecture model from a seed on random tokens with repeated "
            "segments at random distances: phase 1 attention only, phase 2 briefly with MLPs "
            "while checking on held-out non-periodic data that the previous-token -> induction "
            "circuit survives. Writes config.json, model.safetensors (float32, tied "
            "embeddings) and TRAINING.md (command, scores) to --output."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--output", "-o", required=True,
                   help="output folder; an existing one is refused unless --force")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --output model folder (one with config.json; "
                        "the whole folder, once training is done)")
    for f in fields(ToyConfig):
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=type(f.default),
            default=f.default,
            help=_HELP.get(f.name, f.name),
        )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    add_output_flags(p, output=False)  # --output is the model folder here
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nfp_steps.cli import UsageError
    from nfp_steps.train import train_toy, write_toy_folder

    if os.path.lexists(args.output):  # refused before any training (exit 1, like export)
        if not args.force:
            print(f"Error: --output {args.output} already exists: choose a new path, or pass "
                  "--force to replace it (the whole folder is replaced)", file=sys.stderr)
            return 1
        if not os.path.isfile(os.path.join(args.output, "config.json")):
            print(f"Error: --output {args.output} exists and is not a Hugging Face model "
                  "folder (no config.json): --force replaces only a model folder",
                  file=sys.stderr)
            return 1
    cfg = ToyConfig(**{f.name: getattr(args, f.name) for f in fields(ToyConfig)})
    try:
        cfg.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def log(line: str) -> None:
        if not args.quiet:  # progress: stdout for text, stderr under --json (one document)
            print(line, flush=True, file=sys.stderr if args.json else sys.stdout)

    res = train_toy(cfg, log=log)
    out = write_toy_folder(res, cfg, args.output)
    rep = res.report
    text = (f"wrote {out} ({'circuit formed' if rep.passes else 'NO circuit'}): "
            f"{rep.line()}")
    emit(text, {"command": "train-toy", "output": str(out), "circuit_formed": bool(rep.passes),
                "summary": rep.line(), "config": asdict(cfg),
                "prev_head": list(rep.prev_head), "ind_head": list(rep.ind_head),
                "prev_tok": float(rep.prev_tok[rep.prev_head]),
                "ind_score": float(rep.ind_score[rep.ind_head]), "repeated_loss": rep.loss,
                "ablation_increase": rep.ablation_increase}, args)
    return 0
