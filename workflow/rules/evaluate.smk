# Stage 7: metrics of zero-filled and each network on every slice of a split (test or val): per
# slice in the whole frame and the head mask, with the slice filter recorded, and per volume in
# the fastMRI convention.


rule evaluate_zero_filled:
    input:
        shards=split_shards,
    output:
        slices=f"{OUT}/metrics/{{split}}/zero-filled.csv",
        volumes=f"{OUT}/metrics/{{split}}/zero-filled.volumes.csv",
    log:
        f"{OUT}/logs/evaluate/{{split}}/zero-filled.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{split}}/zero-filled.tsv"
    wildcard_constraints:
        split="|".join(EVAL_SPLITS),
    conda:
        CONDA_ENV
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        config=evaluation_config(),
    shell:
        "ssimrecon evaluate --zero-filled --shards {input.shards:q} "
        "--config-json {params.config:q} --output {output.slices:q} "
        "--volumes {output.volumes:q} 2> {log:q}"


# inference over every slice of a split: a GPU makes it minutes instead of hours
rule evaluate:
    input:
        shards=split_shards,
        model=f"{OUT}/models/{{network}}/best.pt",
    output:
        slices=f"{OUT}/metrics/{{split}}/{{network}}.csv",
        volumes=f"{OUT}/metrics/{{split}}/{{network}}.volumes.csv",
    log:
        f"{OUT}/logs/evaluate/{{split}}/{{network}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{split}}/{{network}}.tsv"
    wildcard_constraints:
        split="|".join(EVAL_SPLITS),
    conda:
        CONDA_ENV
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        config=evaluation_config(),
    shell:
        "ssimrecon evaluate --model {input.model:q} --shards {input.shards:q} "
        "--config-json {params.config:q} --output {output.slices:q} "
        "--volumes {output.volumes:q} 2> {log:q}"
