"""What the analysis commands (induction, analyze) share: model/prompt/target flags, the config
they build from them, and the in-memory pipeline run."""

from __future__ import annotations

import argparse
from pathlib import Path

# without --config: ./config.yaml (the working copy the user edits), else the repository's
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def default_config() -> Path:
    """The config file used without --config."""
    here = Path("config.yaml")
    return here if here.is_file() else REPO_CONFIG


def add_pipeline_flags(p: argparse.ArgumentParser) -> None:
    """MODEL, target, prompt, scoring and config flags (camelCase flags have kebab aliases)."""
    p.add_argument("model", metavar="MODEL",
                   help="model path: .nfpt text/binary file, HF GPT-2 folder or weights .zarr")
    p.add_argument("--correct", type=int, default=None,
                   help="target token id (with --incorrect); default: from the prompt's "
                        "induction history")
    p.add_argument("--incorrect", type=int, default=None, help="competing token id")
    p.add_argument("--seqLen", "--seq-len", dest="seq_len", type=int, default=None,
                   help="prompt length for models whose prompt nfp generates (HF, Zarr; an "
                        ".nfpt file carries its own prompt); default: config prompt.seq_len")
    p.add_argument("--seed", type=int, default=None, help="prompt seed (default: config)")
    p.add_argument("--batch", type=int, default=None,
                   help="prompts the scores average over, seeds seed..seed+N-1 (default: "
                        "config prompt.batch, 4); the bounds use the first")
    p.add_argument("--kcomp", choices=("original", "ln_fold", "ln-fold"), default=None,
                   help="K-composition: original (raw W_Q/W_K) or ln_fold (LN1 γ folded into "
                        "the receiving head's W_Q/W_K; default: config induction.kcomp)")
    p.add_argument("--config", default=None,
                   help="config YAML for prompt and bound settings (default: ./config.yaml "
                        "when present, else the repository's config.yaml, else built-in "
                        "defaults)")


def build_config(args: argparse.Namespace, overrides: dict | None = None) -> dict:
    """The validated config: the config file (or defaults), then the command-line flags.

    ``overrides`` maps dotted keys (``ranking.threshold``) to values set by command-specific
    flags (None values are skipped).
    """
    from nfp_steps.cli import UsageError
    from nfp_steps.config import ConfigError, load_config, read_config_file

    path = Path(args.config) if args.config else default_config()
    if args.config and not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    raw = read_config_file(path) if path.exists() else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, found "
                          f"{type(raw).__name__}")
    raw["models"] = {"cli": str(args.model)}
    for sec in ("ranking", "induction", "prompt"):
        raw[sec] = raw.get(sec) or {}
    flat = {"prompt.seq_len": args.seq_len, "prompt.seed": args.seed,
            "prompt.batch": args.batch,
            "induction.kcomp": args.kcomp.replace("-", "_") if args.kcomp else None,
            **(overrides or {})}
    for key, value in flat.items():
        if value is None:
            continue
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    if (args.correct is None) != (args.incorrect is None):
        raise UsageError("--correct and --incorrect must be given together")
    if args.correct is not None:  # flags override the config file; absent flags keep it
        if args.correct == args.incorrect:
            raise UsageError(f"--correct and --incorrect are the same token ({args.correct}): "
                             "the logit difference would be identically zero")
        raw["induction"]["correct"] = args.correct
        raw["induction"]["incorrect"] = args.incorrect
    origin = f"command-line flags + {path}" if path.exists() else "command-line flags"
    return load_config(raw, name=origin)


def run_pipeline(cfg: dict, until: str) -> dict:
    """Every stage up to ``until`` in memory; returns ``{stage: xr.Dataset}``.

    The scores stage runs first (it needs only the forward pass), so a missing induction
    target stops the command (:class:`nfp_steps.scores.TargetError`, exit code 2) before the
    bound stages spend any time.
    """
    from nfp_steps.pipeline import run_in_memory

    early = run_in_memory(cfg, "cli", until="scores")
    return {k: v.dataset for k, v in run_in_memory(cfg, "cli", until=until, done=early).items()}


def check_model_path(model: str) -> None:
    """A clear error before any work when MODEL does not exist."""
    if not Path(model).exists():
        raise FileNotFoundError(f"model not found: {model}")


def require_verify_target(inputs: dict) -> None:
    """--verify needs a target token: from --correct or the prompt's TOKENS (else exit 2)."""
    from nfp_steps.scores import TargetError

    if inputs["scores"].attrs.get("target_source") == "fallback":
        raise TargetError("Cannot infer induction target token (need TOKENS or --correct).")


def model_line(inputs: dict) -> str:
    """``Model: L layers, H heads, model_dim=d, head_dim=dh, prompts=B (n tokens)``."""
    from nfp_steps.stages.common import weights

    dims = weights(inputs).dims()
    sc = inputs["scores"]
    n = inputs["prompt"].sizes["pos"]
    return (f"Model: {dims['num_layers']} layers, {dims['num_heads']} heads, "
            f"model_dim={dims['model_dim']}, head_dim={dims['head_dim']}; scores over "
            f"{int(sc.attrs['n_prompts'])} prompt(s) of {n} tokens (bounds: prompt 0)")
