# Stage 7: metrics of zero-filled and each network on every slice of a split (test or val): per
# slice in the whole frame and the head mask, with the slice filter recorded, and per volume in
# the fastMRI convention.


rule evaluate_zero_filled:
    input:
        shards=split_shards,
        mask=zero_filled_mask,
    output:
        slices=f"{OUT}/metrics/{{split}}/{{zero_filled}}.csv",
        volumes=f"{OUT}/metrics/{{split}}/{{zero_filled}}.volumes.csv",
    log:
        f"{OUT}/logs/evaluate/{{split}}/{{zero_filled}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{split}}/{{zero_filled}}.tsv"
    wildcard_constraints:
        split="|".join(EVAL_SPLITS),
        zero_filled=one_of(ZERO_FILLED.values()),
    conda:
        CONDA_ENV
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        config=evaluation_config(),
    shell:
        "ssimrecon evaluate --method {wildcards.zero_filled:q} --zero-filled "
        "--shards {input.shards:q} --mask {input.mask:q} "
        "--config-json {params.config:q} --output {output.slices:q} "
        "--volumes {output.volumes:q} 2> {log:q}"


# inference over every slice of a split: a GPU makes it minutes instead of hours
rule evaluate:
    input:
        shards=split_shards,
        model=f"{OUT}/models/{{run}}/best.pt",
        mask=run_mask,
    output:
        slices=f"{OUT}/metrics/{{split}}/{{run}}.csv",
        volumes=f"{OUT}/metrics/{{split}}/{{run}}.volumes.csv",
    log:
        f"{OUT}/logs/evaluate/{{split}}/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{split}}/{{run}}.tsv"
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
        "ssimrecon evaluate --method {wildcards.run:q} --model {input.model:q} "
        "--shards {input.shards:q} --mask {input.mask:q} "
        "--config-json {params.config:q} --output {output.slices:q} "
        "--volumes {output.volumes:q} 2> {log:q}"
