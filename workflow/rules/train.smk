# Stage 6: one training job per run (a network, or a study's network x weights x acceleration x
# seed), with one GPU wherever the executor knows GPUs (SLURM).


from ssimrecon.training.torchrun import launch_command


localrules:
    curves,


# training.gpus > 1: one process per GPU, started by torchrun on the job's node; the global batch
# stays training.batch_size (ssimrecon.training.distributed).
GPUS = config["training"]["gpus"]


rule train:
    input:
        train=run_shards("train"),
        val=run_shards("val"),
        mask=run_mask,
    output:
        best=f"{OUT}/models/{{run}}/best.pt",
        history=f"{OUT}/models/{{run}}/history.csv",
    log:
        f"{OUT}/logs/train/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{run}}.tsv"
    conda:
        CONDA_ENV
    threads: config["training"]["threads"]
    # per GPU process: threads (config training.threads) for the loop + its data-loader workers
    # (training.num_workers).
    # A job killed by a time limit, scancel or a node failure is retried (profiles/slurm: retries)
    # and resumes from results/<exp>/state/<run>/last.pt, so each attempt only needs to make
    # progress, not to finish all epochs.
    resources:
        gpu=GPUS,
        cpus_per_task=lambda wc, threads: GPUS * (threads + config["training"]["num_workers"]),
        mem_mb=32000 * GPUS,
        runtime=1440,
    params:
        config=lambda wc: train_config(wc.run),
        # The resumable state lives outside the outputs, so Snakemake keeps it when a job fails.
        state_dir=lambda wc: f"{OUT}/state/{wc.run}",
        tensorboard=tensorboard_option,
        launcher=launch_command(GPUS, "python"),
    shell:
        "{params.launcher:q} train --network {wildcards.run:q} "
        "--train-shards {input.train:q} --val-shards {input.val:q} --mask {input.mask:q} "
        "--config-json {params.config:q} --threads {threads} --best {output.best:q} "
        "--history {output.history:q} --state-dir {params.state_dir:q} {params.tensorboard:q} "
        "2>> {log:q}"


rule curves:
    input:
        expand(f"{OUT}/models/{{run}}/history.csv", run=RUNS),
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
        histories=lambda wc, input: [f"{n}={p}" for n, p in zip(RUNS, input)],
    shell:
        "ssimrecon curves --history {params.histories:q} --output {output:q} 2> {log:q}"
