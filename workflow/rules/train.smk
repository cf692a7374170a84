# Stage 6: one training job per network, with one GPU wherever the executor knows GPUs (SLURM).


localrules:
    curves,


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
    # threads (config training.threads) for the loop + 2 data-loader workers (training.num_workers).
    # A job killed by a time limit, scancel or a node failure is retried (profiles/slurm: retries)
    # and resumes from results/<exp>/state/<network>/last.pt, so each attempt only needs to make
    # progress, not to finish all epochs.
    resources:
        gpu=1,
        cpus_per_task=lambda wc, threads: threads + 2,
        mem_mb=32000,
        runtime=1440,
    params:
        config=lambda wc: train_config(wc.network),
        # The resumable state lives outside the outputs, so Snakemake keeps it when a job fails.
        state_dir=lambda wc: f"{OUT}/state/{wc.network}",
    shell:
        "ssimrecon train --network {wildcards.network:q} "
        "--train-shards {input.train:q} --val-shards {input.val:q} "
        "--config-json {params.config:q} --threads {threads} --best {output.best:q} "
        "--history {output.history:q} --state-dir {params.state_dir:q} 2>> {log:q}"


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
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        histories=lambda wc, input: [f"{n}={p}" for n, p in zip(NETWORKS, input)],
    shell:
        "ssimrecon curves --history {params.histories:q} --output {output:q} 2> {log:q}"
