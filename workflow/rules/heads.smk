# Stage "heads": Rigorous per-head bounds (value term, pattern term, epsilon); writes heads.tsv.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule heads:
    input:
        **stage_input("heads"),
    output:
        **stage_output("heads"),
    params:
        **stage_params("heads"),
    log:
        stage_log("heads"),
    benchmark:
        stage_benchmark("heads")
    threads: stage_threads("heads")
    resources:
        mem_mb=stage_mem_mb("heads"),
    shell:
        NFP_STAGE_SHELL
