# Stage 8: Table 1 and Figure 2 of the paper.


rule table:
    input:
        expand(f"{OUT}/metrics/{{method}}.csv", method=METHODS),
    output:
        csv=report(f"{OUT}/table1.csv", caption="../report/table1.rst", category="Table 1"),
        md=f"{OUT}/table1.md",
    log:
        f"{OUT}/logs/table.log",
    conda:
        CONDA_ENV
    params:
        metrics=lambda wc, input: " ".join(f"{m}={p}" for m, p in zip(METHODS, input)),
        baseline=config["evaluation"]["baseline"],
    shell:
        "ssimrecon table --metrics {params.metrics} --baseline {params.baseline} "
        "--csv {output.csv} --md {output.md} 2> {log}"


rule figure2:
    input:
        shards=shards_of("val"),
        models=expand(f"{OUT}/models/{{network}}/best.pt", network=NETWORKS),
    output:
        png=report(
            f"{OUT}/figures/figure2.png", caption="../report/figure2.rst", category="Figure 2"
        ),
        pdf=f"{OUT}/figures/figure2.pdf",
    log:
        f"{OUT}/logs/figure2.log",
    benchmark:
        f"{OUT}/benchmarks/figure2.tsv"
    conda:
        CONDA_ENV
    params:
        models=lambda wc, input: " ".join(f"{n}={p}" for n, p in zip(NETWORKS, input.models)),
        zoom_center=" ".join(map(str, config["figure"]["zoom_center"])),
        zoom_size=config["figure"]["zoom_size"],
        error_max=config["figure"]["error_max"],
        dpi=config["figure"]["dpi"],
        min_signal=config["evaluation"]["min_signal_fraction"],
    shell:
        "ssimrecon figure2 --shards {input.shards} --model {params.models} "
        "--zoom-center {params.zoom_center} --zoom-size {params.zoom_size} --error-max {params.error_max} "
        "--dpi {params.dpi} --min-signal-fraction {params.min_signal} "
        "--png {output.png} --pdf {output.pdf} 2> {log}"
