# Retrain the embedded toy model into models/nfp-toy, reproducibly from a seed:
#   snakemake --cores 2 train_toy
# Deliberately declares no output: the shipped weights are export's *input*, and a rule that
# produced them would be pulled into every default run (and rerun whenever this rule's text
# changes). A rule without output runs exactly when asked for; the next default run then
# re-exports, because the weights' modification time changed.


rule train_toy:
    log:
        "logs/train_toy.log",
    threads: 2
    shell:
        "{NFP_PYTHON} -m nfp_steps.cli train-toy --output models/nfp-toy --force --seed 0 2>&1 | tee {log:q}"
