# NFP workflow: find induction-head circuits and bound them rigorously, one job per stage and model.
#
#   snakemake --cores 2                 # every model in config.yaml -> results/{model}/
#   snakemake --cores 2 --config 'ranking={top: 20}'   # reruns ranking and what depends on it
#   snakemake --cores 2 train_toy       # retrain the embedded toy model (not in the default run)
#
# The config is validated (workflow/schemas/config.schema.yaml) before any job runs. The stages,
# their inputs, config slices and code come from nfp_steps/stage_specs.py; each rule's params are
# the digest of its config slice and of its code, so an edit reruns exactly the affected stages.
# Every stage writes results/{model}/{stage}.zarr and, last, {stage}.manifest.json, the declared
# output (the .zarr is never declared: Snakemake would write .snakemake_timestamp into it).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# `snakemake --report report.html`: this text heads the report; every plot and table has a
# caption in workflow/report/<file name>.rst.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


rule all:
    default_target: True
    input:
        all_targets(),


include: "workflow/rules/export.smk"
include: "workflow/rules/prompt.smk"
include: "workflow/rules/forward.smk"
include: "workflow/rules/layernorm.smk"
include: "workflow/rules/heads.smk"
include: "workflow/rules/layers.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/ranking.smk"
include: "workflow/rules/verify.smk"
include: "workflow/rules/certificate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/archive.smk"
include: "workflow/rules/train_toy.smk"

_missing = [name for name in STAGES if not hasattr(rules, name)]
if _missing:
    raise WorkflowError(f"stages without a rule in workflow/rules/: {', '.join(_missing)}")
