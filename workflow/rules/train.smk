# Stage 6: one training job per network (GPU-resourced on a cluster, see profiles/).


rule train:
    input:
        train=shards_of("train"),
        val=shards_of("val"),
    output:
        best=f"{OUT}/models/{{network}}/best.pt",
        history=f"{OUT}/models/{{network}}/history.csv",
    log:
        f"{OUT}/logs/train/{{network}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{network}}.tsv"
    conda:
        CONDA_ENV
    threads: config["training"]["threads"]
    params:
        model=lambda wc: as_json(network_model(wc.network)),
        loss=lambda wc: as_json(config["networks"][wc.network]["loss"]),
        training=lambda wc: as_json(training_settings()),
        # The resumable state lives outside the outputs, so Snakemake keeps it when a job fails.
        state_dir=lambda wc: f"{OUT}/state/{wc.network}",
    shell:
        "ssimrecon train --network {wildcards.network} --train-shards {input.train} --val-shards {input.val} "
        "--model-json {params.model:q} --loss-json {params.loss:q} --training-json {params.training:q} "
        "--threads {threads} --best {output.best} --history {output.history} "
        "--state-dir {params.state_dir} 2>> {log}"


rule curves:
    input:
        expand(f"{OUT}/models/{{network}}/history.csv", network=NETWORKS),
    output:
        report(
            f"{OUT}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
        ),
    log:
        f"{OUT}/logs/curves.log",
    conda:
        CONDA_ENV
    params:
        histories=lambda wc, input: " ".join(f"{n}={p}" for n, p in zip(NETWORKS, input)),
    shell:
        "ssimrecon curves --history {params.histories} --output {output} 2> {log}"
