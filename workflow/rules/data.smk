# Stage 1-3: get the archive, extract it safely, check every volume, split subjects.


rule demo_archive:
    output:
        archive=f"{OUT}/source/IXI-T1-demo.tar",
        md5=f"{OUT}/source/IXI-T1-demo.tar.md5",
    params:
        subjects=lambda wc: config["source"]["demo"]["subjects"],
        seed=lambda wc: config["source"]["demo"]["seed"],
        shape=lambda wc: " ".join(map(str, config["source"]["demo"]["shape"])),
    conda:
        CONDA_ENV
    log:
        f"{OUT}/logs/demo_archive.log",
    benchmark:
        f"{OUT}/benchmarks/demo_archive.tsv"
    shell:
        "ssimrecon demo-archive --output {output.archive} --subjects {params.subjects} "
        "--seed {params.seed} --shape {params.shape} 2> {log}"


rule download:
    input:
        download_inputs,
    output:
        f"{OUT}/raw/{archive_name()}",
    params:
        url=lambda wc: source_settings()["url"],
        checksum=checksum_option,
    conda:
        CONDA_ENV
    log:
        f"{OUT}/logs/download.log",
    benchmark:
        f"{OUT}/benchmarks/download.tsv"
    shell:
        "ssimrecon download --url {params.url:q} --output {output} {params.checksum} 2> {log}"


rule extract:
    input:
        rules.download.output,
    output:
        directory(f"{OUT}/nifti"),
    conda:
        CONDA_ENV
    log:
        f"{OUT}/logs/extract.log",
    benchmark:
        f"{OUT}/benchmarks/extract.tsv"
    shell:
        "ssimrecon extract --archive {input} --output-dir {output} 2> {log}"


rule qc:
    input:
        rules.extract.output,
    output:
        f"{OUT}/subjects.csv",
    params:
        exclude=lambda wc: " ".join(f"--exclude {s}" for s in config["exclude"]),
    conda:
        CONDA_ENV
    log:
        f"{OUT}/logs/qc.log",
    benchmark:
        f"{OUT}/benchmarks/qc.tsv"
    shell:
        "ssimrecon qc --input-dir {input} --output {output} {params.exclude} 2> {log}"


checkpoint split:
    input:
        rules.qc.output,
    output:
        f"{OUT}/split.csv",
    params:
        n_train=config["split"]["n_train"],
        n_val=config["split"]["n_val"],
        seed=config["split"]["seed"],
    conda:
        CONDA_ENV
    log:
        f"{OUT}/logs/split.log",
    shell:
        "ssimrecon split --subjects {input} --n-train {params.n_train} --n-val {params.n_val} "
        "--seed {params.seed} --output {output} 2> {log}"
