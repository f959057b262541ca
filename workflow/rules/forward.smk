# Stage "forward": Float64 forward pass: residuals, LayerNorm inputs, attention patterns, logits.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule forward:
    input:
        **stage_input("forward"),
    output:
        **stage_output("forward"),
    params:
        **stage_params("forward"),
    log:
        stage_log("forward"),
    benchmark:
        stage_benchmark("forward")
    threads: stage_threads("forward")
    resources:
        mem_mb=stage_mem_mb("forward"),
    shell:
        NFP_STAGE_SHELL
