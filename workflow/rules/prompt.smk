# Stage "prompt": Build the analysed prompt: tokens and the induction positions.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule prompt:
    input:
        **stage_input("prompt"),
    output:
        **stage_output("prompt"),
    params:
        **stage_params("prompt"),
    log:
        stage_log("prompt"),
    benchmark:
        stage_benchmark("prompt")
    threads: stage_threads("prompt")
    resources:
        mem_mb=stage_mem_mb("prompt"),
    shell:
        NFP_STAGE_SHELL
