# Stage 1-3: get the archive, extract it safely, check every volume, split subjects.


rule demo_archive:
    output:
        archive=f"{OUT}/source/IXI-T1-demo.tar",
        md5=f"{OUT}/source/IXI-T1-demo.tar.md5",
    log:
        f"{OUT}/logs/demo_archive.log",
    benchmark:
        f"{OUT}/benchmarks/demo_archive.tsv"
    conda:
        CONDA_ENV
    params:
        subjects=lambda wc: config["source"]["demo"]["subjects"],
        seed=lambda wc: config["source"]["demo"]["seed"],
        shape=lambda wc: " ".join(map(str, config["source"]["demo"]["shape"])),
    shell:
        "ssimrecon demo-archive --output {output.archive} --subjects {params.subjects} "
        "--seed {params.seed} --shape {params.shape} 2> {log}"


rule download:
    input:
        download_inputs,
    output:
        f"{OUT}/raw/{archive_name()}",
    log:
        f"{OUT}/logs/download.log",
    benchmark:
        f"{OUT}/benchmarks/download.tsv"
    conda:
        CONDA_ENV
    params:
        url=lambda wc: source_settings()["url"],
        checksum=checksum_option,
    shell:
        "ssimrecon download --url {params.url:q} --output {output} {params.checksum} 2> {log}"


rule extract:
    input:
        rules.download.output,
    output:
        directory(f"{OUT}/nifti"),
    log:
        f"{OUT}/logs/extract.log",
    benchmark:
        f"{OUT}/benchmarks/extract.tsv"
    conda:
        CONDA_ENV
    shell:
        "ssimrecon extract --archive {input} --output-dir {output} 2> {log}"


rule qc:
    input:
        rules.extract.output,
    output:
        f"{OUT}/subjects.csv",
    log:
        f"{OUT}/logs/qc.log",
    benchmark:
        f"{OUT}/benchmarks/qc.tsv"
    conda:
        CONDA_ENV
    params:
        exclude=lambda wc: " ".join(f"--exclude {s}" for s in config["exclude"]),
    shell:
        "ssimrecon qc --input-dir {input} --output {output} {params.exclude} 2> {log}"


checkpoint split:
    input:
        rules.qc.output,
    output:
        f"{OUT}/split.csv",
    log:
        f"{OUT}/logs/split.log",
    conda:
        CONDA_ENV
    params:
        n_train=config["split"]["n_train"],
        n_val=config["split"]["n_val"],
        seed=config["split"]["seed"],
    shell:
        "ssimrecon split --subjects {input} --n-train {params.n_train} --n-val {params.n_val} "
        "--seed {params.seed} --output {output} 2> {log}"
