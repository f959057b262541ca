# results/summary.tsv: every model of the run side by side (top pair, its scores and ε, worst
# layer slack, certificate status). One job over all models, after each model's stages; it reads
# the stores (hash-checked), so it reruns whenever one of the manifests below is rewritten.

from nfp_steps.summary_table import STAGES_READ as SUMMARY_READS


rule summary:
    input:
        [stage_manifest(stage, model) for model in MODELS for stage in SUMMARY_READS],
    output:
        report(f"{NFP_RESULTS}/summary.tsv", caption="../report/summary.tsv.rst",
               category="All models", labels={"file": "summary.tsv"}),
    params:
        models=MODELS,
        code_digest=code_digest(["summary_table", "stages/plots", "storage", "config"]),
    log:
        "logs/summary.log",
    shell:
        "{NFP_PYTHON} -m nfp_steps.summary_table --results {NFP_RESULTS:q} --output {output:q}"
        " {params.models:q} > {log:q} 2>&1"
