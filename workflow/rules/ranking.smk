# Stage "ranking": Rank candidate head pairs; writes ranking.tsv and the seed-style induction.txt.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule ranking:
    input:
        **stage_input("ranking"),
    output:
        **stage_output("ranking"),
    params:
        **stage_params("ranking"),
    log:
        stage_log("ranking"),
    benchmark:
        stage_benchmark("ranking")
    threads: stage_threads("ranking")
    resources:
        mem_mb=stage_mem_mb("ranking"),
    shell:
        NFP_STAGE_SHELL
