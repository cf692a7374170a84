# Stage 4-5: one undersampling mask per acceleration and one HDF5 k-space shard per subject.


localrules:
    mask,
    image_size,


rule image_size:
    input:
        rules.qc.output,
    output:
        IMAGE_SIZE_FILE,
    log:
        f"{OUT}/logs/image_size.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=image_size_config(),
    shell:
        "ssimrecon image-size --subjects {input:q} --config-json {params.config:q} "
        "--output {output:q} 2> {log:q}"


rule mask:
    input:
        image_size=image_size_input,
    output:
        mask=f"{OUT}/masks/R{{acceleration}}.npz",
        figure=report(
            f"{OUT}/figures/mask_R{{acceleration}}.png",
            caption="../report/mask.rst",
            category="Acquisition",
        ),
    log:
        f"{OUT}/logs/mask_R{{acceleration}}.log",
    wildcard_constraints:
        acceleration=one_of(ACCELERATIONS),
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=lambda wc: mask_config(wc.acceleration),
        image_size=image_size_option,
    shell:
        "ssimrecon mask --config-json {params.config:q} --output {output.mask:q} "
        "--figure {output.figure:q} {params.image_size:q} 2> {log:q}"


# One subject per job (and per forward model on a study's forward-model axis), bundled into group jobs (profiles/default: group-components). Each job uses
# one `parallel_shards`, a unit that profiles/slurm caps at 1 per group job, because the SLURM
# plugin (2.8) runs the jobs of a group one after another: a group job then asks for one shard's
# CPUs and memory and the sum of their runtimes, which is what it uses.
rule shard:
    input:
        subjects=rules.qc.output,
        image_size=image_size_input,
    output:
        SHARD_PATTERN,
    log:
        f"{OUT}/logs/{SHARD_JOB}.log",
    benchmark:
        f"{OUT}/benchmarks/{SHARD_JOB}.tsv"
    group:
        "shards"
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=5,
        parallel_shards=1,
    params:
        config=shard_config,
        # not passed to the command: a new shard format makes Snakemake rebuild old shards
        format_version=SHARD_FORMAT_VERSION,
        image_size=image_size_option,
    shell:
        "ssimrecon shard --subjects-csv {input.subjects:q} --subject {wildcards.subject:q} "
        "--config-json {params.config:q} --output {output:q} {params.image_size:q} 2> {log:q}"
