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
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        config=as_json({"min_signal_fraction": config["evaluation"]["min_signal_fraction"]}),
    shell:
        "ssimrecon evaluate --zero-filled --shards {input.shards:q} "
        "--config-json {params.config:q} --output {output:q} 2> {log:q}"


# inference over every validation slice: a GPU makes it minutes instead of hours
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
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        config=as_json({"min_signal_fraction": config["evaluation"]["min_signal_fraction"]}),
    shell:
        "ssimrecon evaluate --model {input.model:q} --shards {input.shards:q} "
        "--config-json {params.config:q} --output {output:q} 2> {log:q}"
