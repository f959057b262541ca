# Stage "verify": Ablate the top pairs' heads; writes verify.tsv.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule verify:
    input:
        **stage_input("verify"),
    output:
        **stage_output("verify"),
    params:
        **stage_params("verify"),
    log:
        stage_log("verify"),
    benchmark:
        stage_benchmark("verify")
    threads: stage_threads("verify")
    resources:
        mem_mb=stage_mem_mb("verify"),
    shell:
        NFP_STAGE_SHELL
