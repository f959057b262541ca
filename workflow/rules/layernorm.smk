# Stage "layernorm": Rigorous LayerNorm Jacobian bounds per layer and row.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule layernorm:
    input:
        **stage_input("layernorm"),
    output:
        **stage_output("layernorm"),
    params:
        **stage_params("layernorm"),
    log:
        stage_log("layernorm"),
    benchmark:
        stage_benchmark("layernorm")
    threads: stage_threads("layernorm")
    resources:
        mem_mb=stage_mem_mb("layernorm"),
    shell:
        NFP_STAGE_SHELL
