# Stage "export": Read the model source (HF folder, .nfpt, weights .zarr) into the weights store.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule export:
    input:
        model_source_files,
    output:
        **stage_output("export"),
    params:
        **stage_params("export"),
        source_digest=model_source_digest,
    log:
        stage_log("export"),
    benchmark:
        stage_benchmark("export")
    threads: stage_threads("export")
    resources:
        mem_mb=stage_mem_mb("export"),
    shell:
        NFP_STAGE_SHELL
