# Stage "layers": Rigorous per-layer bounds C_l and Krylov lower bounds; writes layers.tsv.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule layers:
    input:
        **stage_input("layers"),
    output:
        **stage_output("layers"),
    params:
        **stage_params("layers"),
    log:
        stage_log("layers"),
    benchmark:
        stage_benchmark("layers")
    threads: stage_threads("layers")
    resources:
        mem_mb=stage_mem_mb("layers"),
    shell:
        NFP_STAGE_SHELL
