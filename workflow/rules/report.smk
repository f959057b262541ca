# Stage "report": Summary text (and plots) over all stages; writes summary.txt.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule report:
    input:
        **stage_input("report"),
    output:
        **stage_output("report"),
    params:
        **stage_params("report"),
    log:
        stage_log("report"),
    benchmark:
        stage_benchmark("report")
    threads: stage_threads("report")
    resources:
        mem_mb=stage_mem_mb("report"),
    shell:
        NFP_STAGE_SHELL
