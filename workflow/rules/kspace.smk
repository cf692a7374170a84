# Stage 4-5: the undersampling mask and one HDF5 k-space shard per subject.


rule mask:
    output:
        mask=f"{OUT}/mask.npz",
        figure=report(
            f"{OUT}/figures/mask.png", caption="../report/mask.rst", category="Acquisition"
        ),
    log:
        f"{OUT}/logs/mask.log",
    conda:
        CONDA_ENV
    params:
        shape=" ".join(map(str, config["preprocessing"]["image_size"])),
        acceleration=config["mask"]["acceleration"],
        center=config["mask"]["center_size"],
        seed=config["mask"]["seed"],
        power=config["mask"]["power"],
    shell:
        "ssimrecon mask --shape {params.shape} --acceleration {params.acceleration} "
        "--center-size {params.center} --seed {params.seed} --power {params.power} "
        "--output {output.mask} --figure {output.figure} 2> {log}"


rule shard:
    input:
        subjects=rules.qc.output,
        mask=rules.mask.output.mask,
    output:
        f"{OUT}/shards/{{subject}}.h5",
    log:
        f"{OUT}/logs/shards/{{subject}}.log",
    benchmark:
        f"{OUT}/benchmarks/shards/{{subject}}.tsv"
    group:
        "shards"
    conda:
        CONDA_ENV
    params:
        readout_axis=config["preprocessing"]["readout_axis"],
        image_size=" ".join(map(str, config["preprocessing"]["image_size"])),
        downsample=config["preprocessing"]["downsample"],
        slice_stride=config["preprocessing"]["slice_stride"],
        percentile=config["preprocessing"]["scale_percentile"],
        phase=config["preprocessing"]["phase"],
    shell:
        "ssimrecon shard --subjects-csv {input.subjects} --subject {wildcards.subject} --mask {input.mask} "
        "--readout-axis {params.readout_axis} --image-size {params.image_size} "
        "--downsample {params.downsample} --slice-stride {params.slice_stride} "
        "--scale-percentile {params.percentile} --phase {params.phase} --output {output} 2> {log}"
