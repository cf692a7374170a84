# Stage 7: per-slice metrics on every validation slice, for zero-filled and each network.


rule evaluate_zero_filled:
    input:
        shards=shards_of("val"),
    output:
        f"{OUT}/metrics/zero-filled.csv",
    log:
        f"{OUT}/logs/evaluate/zero-filled.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/zero-filled.tsv"
    conda:
        CONDA_ENV
    params:
        min_signal=config["evaluation"]["min_signal_fraction"],
    shell:
        "ssimrecon evaluate --zero-filled --shards {input.shards} "
        "--min-signal-fraction {params.min_signal} --output {output} 2> {log}"


rule evaluate:
    input:
        shards=shards_of("val"),
        model=f"{OUT}/models/{{network}}/best.pt",
    output:
        f"{OUT}/metrics/{{network}}.csv",
    log:
        f"{OUT}/logs/evaluate/{{network}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{network}}.tsv"
    conda:
        CONDA_ENV
    params:
        min_signal=config["evaluation"]["min_signal_fraction"],
    shell:
        "ssimrecon evaluate --model {input.model} --shards {input.shards} "
        "--min-signal-fraction {params.min_signal} --output {output} 2> {log}"
