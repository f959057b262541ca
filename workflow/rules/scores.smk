# Stage "scores": Heuristic induction scores: prevTok, indScore, kComp, delta, Effect.
# Inputs, outputs, params and the command come from nfp_steps.stage_specs.STAGES via common.smk.


rule scores:
    input:
        **stage_input("scores"),
    output:
        **stage_output("scores"),
    params:
        **stage_params("scores"),
    log:
        stage_log("scores"),
    benchmark:
        stage_benchmark("scores")
    threads: stage_threads("scores")
    resources:
        mem_mb=stage_mem_mb("scores"),
    shell:
        NFP_STAGE_SHELL
