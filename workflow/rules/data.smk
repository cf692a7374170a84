# Stage 1-3: get the volumes, check every one, split subjects into train (weights), val
# (checkpoint) and test (Table 1). The source is one of: the IXI archive (download + extract), the
# demo archive, a local tar (extract), or a BIDS dataset / folder read in place (source_manifest).
# Every value that reaches the shell is quoted ({...:q}); config values travel as one JSON string.


localrules:
    source_manifest,
    split,


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
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=lambda wc: as_json(config["source"]["demo"]),
    shell:
        "ssimrecon demo-archive --output {output.archive:q} --config-json {params.config:q} "
        "2> {log:q}"


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
    resources:
        mem_mb=1000,
        runtime=240,  # the IXI T1 archive is 4.5 GB
    params:
        url=lambda wc: source_settings()["url"],
        checksum=checksum_option,
    shell:
        "ssimrecon download --url {params.url:q} --output {output:q} {params.checksum:q} "
        "2> {log:q}"


# A BIDS dataset or folder is never copied or written to: this rule lists its volumes and their
# subject ids. It has no input (Snakemake would see a folder's own mtime only); the params
# fingerprint (every file's path, size and mtime) makes it rerun when, and only when, a volume is
# added, removed, renamed or rewritten.
rule source_manifest:
    output:
        MANIFEST,
    log:
        f"{OUT}/logs/source_manifest.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        layout=lambda wc: LOCAL_SOURCE[0],
        root=lambda wc: str(LOCAL_SOURCE[1]),
        fingerprint=source_fingerprint_param,
    shell:
        "ssimrecon source-manifest --layout {params.layout:q} --root {params.root:q} "
        "--output {output:q} 2> {log:q}"


rule extract:
    input:
        archive_input,
    output:
        directory(f"{OUT}/nifti"),
    log:
        f"{OUT}/logs/extract.log",
    benchmark:
        f"{OUT}/benchmarks/extract.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "ssimrecon extract --archive {input:q} --output-dir {output:q} 2> {log:q}"


rule qc:
    input:
        qc_input,
    output:
        f"{OUT}/subjects.csv",
    log:
        f"{OUT}/logs/qc.log",
    benchmark:
        f"{OUT}/benchmarks/qc.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=60,  # reads every volume once
    params:
        source=qc_source_option,
        config=lambda wc: as_json({"exclude": config["exclude"]}),
    shell:
        "ssimrecon qc {params.source:q} --output {output:q} --config-json {params.config:q} "
        "2> {log:q}"


checkpoint split:
    input:
        rules.qc.output,
    output:
        f"{OUT}/split.csv",
    log:
        f"{OUT}/logs/split.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=as_json(config["split"]),
    shell:
        "ssimrecon split --subjects {input:q} --output {output:q} --config-json {params.config:q} "
        "2> {log:q}"
