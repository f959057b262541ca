# Stage "certificate": Exact-valued certificate.json and its text report certificate.txt.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule certificate:
    input:
        **stage_input("certificate"),
    output:
        **stage_output("certificate"),
    params:
        **stage_params("certificate"),
    log:
        stage_log("certificate"),
    benchmark:
        stage_benchmark("certificate")
    threads: stage_threads("certificate")
    resources:
        mem_mb=stage_mem_mb("certificate"),
    shell:
        NFP_STAGE_SHELL
