# Results archive of one model (not part of the default run; ask for it by name):
#   snakemake --cores 2 archives/nfp-toy.tar.gz
# It runs whatever of the model's DAG is missing, then `nfp archive results/{model}`: every
# result file and stage log, the config, package versions, code version and a MANIFEST with the
# sha256 of every file and array. Check an archive later with `nfp archive --verify FILE`.


# The config file (one --configfile, or config.yaml), unless --config overrides changed it; the
# archive always holds the validated slice every stage ran with (config.used.json).
NFP_ARCHIVE_CONFIG = (
    f"--config {shlex.quote(str(workflow.configfiles[0]))}"
    if len(workflow.configfiles) == 1 and not workflow.config_settings.overwrite_config
    else ""
)


rule archive:
    input:
        model_targets,
    output:
        "archives/{model}.tar.gz",
    log:
        "logs/archive-{model}.log",
    shell:
        "{NFP_PYTHON} -m nfp_steps.cli archive {NFP_RESULTS:q}/{wildcards.model:q}"
        " --output {output:q} --logs logs/{wildcards.model:q} --force {NFP_ARCHIVE_CONFIG}"
        " > {log:q} 2>&1"
