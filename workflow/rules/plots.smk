# Stage "plots": SVG figures for `snakemake --report` in results/{model}/plots/.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule plots:
    input:
        **stage_input("plots"),
    output:
        **stage_output("plots"),
    params:
        **stage_params("plots"),
    log:
        stage_log("plots"),
    benchmark:
        stage_benchmark("plots")
    threads: stage_threads("plots")
    resources:
        mem_mb=stage_mem_mb("plots"),
    shell:
        NFP_STAGE_SHELL
