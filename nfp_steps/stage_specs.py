"""The DAG's stages as data: names, upstream stages, config slices and code they depend on.

Light on purpose (no numpy/torch/xarray import): the Snakefile imports it to build rule params,
and the stage runner uses it to find each stage's function.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage of the DAG.

    ``func`` is ``"module:function"`` inside ``nfp_steps`` (``stages.<name>:run``); it is called as
    ``func(inputs: dict[str, xr.Dataset], cfg: dict, model: str) -> StageResult`` where ``inputs``
    maps each upstream stage name to its store and ``cfg`` holds the stage's config slice (the
    workflow passes only that, so reading another key fails loudly instead of missing reruns).
    ``config_keys`` are dotted config paths whose values the stage reads (its rerun slice);
    ``modules`` are the ``nfp_steps`` module paths (relative, no suffix) whose source it runs.
    ``files`` are report files written beside the store in ``results/<model>/``.
    """

    name: str
    inputs: tuple[str, ...]
    config_keys: tuple[str, ...]
    modules: tuple[str, ...]
    func: str
    files: tuple[str, ...] = ()


# Modules every stage runs: the runner, storage, config, progress, and stages/common (which reads
# the weights store through io/zarr_store, which uses io/hf's directory replacement).
_CORE = ("model", "stage_specs", "storage", "run_stage", "config", "stages/common",
         "io/zarr_store", "io/hf", "progress")

# The rigorous-bounds modules (bounds imports the others).
_BOUNDS = ("rigor", "bounds", "opnorm", "softmax_bounds", "elementary", "forward")

STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "export",
            (),
            ("models.{model}",),
            (*_CORE, "io/nfpt_text", "io/decimal_text", "io/nfpt_binary", "io/loader",
             "stages/export"),
            "stages.export:run",
        ),
        Stage(
            "prompt",
            ("export",),
            # prompt.batch only concerns the scores and verify stages: editing it must not rerun
            # the analysed prompt and the bound stages downstream of it
            ("prompt.kind", "prompt.seq_len", "prompt.seed", "prompt.period", "prompt.tokens"),
            (*_CORE, "prompt", "data", "stages/prompt"),
            "stages.prompt:run",
        ),
        Stage(
            "forward",
            ("export", "prompt"),
            ("forward",),
            (*_CORE, "forward", "stages/forward"),
            "stages.forward:run",
        ),
        Stage(
            "layernorm",
            ("export", "forward"),
            ("bounds.layernorm",),
            (*_CORE, *_BOUNDS,
             "stages/layernorm"),
            "stages.layernorm:run",
        ),
        Stage(
            "heads",
            ("export", "forward", "layernorm"),
            ("bounds.heads",),
            (*_CORE, *_BOUNDS, "layer_lower", "ball", "elementary", "jacobian_diag",
             "torch_gpt2", "stages/heads"),
            "stages.heads:run",
            ("heads.tsv",),
        ),
        Stage(
            "layers",
            ("export", "forward", "layernorm", "heads"),
            ("bounds.layers",),
            (*_CORE, *_BOUNDS, "jacobian_diag", "torch_gpt2",
             "layer_lower", "ball", "elementary", "scheduler", "stages/layers"),
            "stages.layers:run",
            ("layers.tsv",),
        ),
        Stage(
            "scores",
            ("export", "prompt", "forward"),
            ("induction", "prompt"),  # the prompt slice draws the scoring batch
            (*_CORE, "scores", "forward", "prompt", "data", "stages/scores"),
            "stages.scores:run",
        ),
        Stage(
            "ranking",
            ("export", "prompt", "forward", "heads", "layers", "scores"),
            # ranking.diag_top only sets the CLI's -d block: editing it must not rerun anything
            ("ranking.threshold", "ranking.min_prev_tok", "ranking.min_ind_score",
             "ranking.top"),
            (*_CORE, *_BOUNDS, "ranking", "stages/ranking"),
            "stages.ranking:run",
            ("ranking.tsv", "induction.txt"),
        ),
        Stage(
            "verify",
            ("export", "prompt", "forward", "scores", "ranking"),
            ("verify",),
            (*_CORE, "forward", "verify", "scores", "data",
             "stages/verify"),
            "stages.verify:run",
            ("verify.tsv",),
        ),
        Stage(
            "certificate",
            ("export", "prompt", "forward", "layers", "scores", "ranking"),
            ("certificate",),
            (*_CORE, *_BOUNDS, "certificate", "global_cert", "induction_cert", "local_cert",
             "check", "check_local",
             "io/loader", "io/nfpt_text", "io/decimal_text", "io/nfpt_binary",
             "stages/certificate"),
            "stages.certificate:run",
            ("certificate.json", "certificate.txt"),
        ),
        Stage(
            "plots",
            ("prompt", "forward", "heads", "layers", "scores", "ranking"),
            (),
            (*_CORE, "plots", "stages/plots"),
            "stages.plots:run",
            ("plots/layer_bounds.svg", "plots/head_eps.svg", "plots/prev_tok.svg",
             "plots/ind_score.svg", "plots/top_pair_attention.svg"),
        ),
        Stage(
            "report",
            ("ranking", "layers", "heads", "verify", "certificate"),
            ("report",),
            (*_CORE, *_BOUNDS, "report", "ranking", "stages/report"),
            "stages.report:run",
            ("summary.txt",),
        ),
    )
}


@dataclass
class StageResult:
    """What a stage function returns: its store (an ``xr.Dataset``) and its report files.

    ``files`` maps a file name from ``Stage.files`` to its full text content.
    """

    dataset: object
    files: dict[str, str]
