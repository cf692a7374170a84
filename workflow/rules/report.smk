# Stage 8: Table 1 and Figure 2 of the paper.


localrules:
    table,


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
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        metrics=lambda wc, input: [f"{m}={p}" for m, p in zip(METHODS, input)],
        config=as_json({"baseline": config["evaluation"]["baseline"]}),
    shell:
        "ssimrecon table --metrics {params.metrics:q} --config-json {params.config:q} "
        "--csv {output.csv:q} --md {output.md:q} 2> {log:q}"


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
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        models=lambda wc, input: [f"{n}={p}" for n, p in zip(NETWORKS, input.models)],
        config=figure2_config(),
    shell:
        "ssimrecon figure2 --shards {input.shards:q} --model {params.models:q} "
        "--config-json {params.config:q} --png {output.png:q} --pdf {output.pdf:q} 2> {log:q}"
