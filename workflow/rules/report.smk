# Stage 8: Table 1 (test split, and the same table on the validation split) and Figure 2.


localrules:
    table,


rule table:
    input:
        slices=table_metrics(".csv"),
        volumes=table_metrics(".volumes.csv"),
        mask=mask_path(ACCELERATIONS[0]),
    output:
        csv=report(f"{OUT}/{{table}}.csv", caption="../report/table1.rst", category="Table 1"),
        md=f"{OUT}/{{table}}.md",
        html=report(f"{OUT}/{{table}}.html", caption="../report/table1.rst", category="Table 1"),
    log:
        f"{OUT}/logs/{{table}}.log",
    wildcard_constraints:
        table="|".join(TABLES),
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        split=lambda wc: TABLES[wc.table],
        metrics=lambda wc, input: [f"{m}={p}" for m, p in zip(METHODS, input.slices)],
        volumes=lambda wc, input: [f"{m}={p}" for m, p in zip(METHODS, input.volumes)],
        config=table_config(),
        forward_model=FORWARD_MODEL,
    shell:
        "ssimrecon table --metrics {params.metrics:q} --volumes {params.volumes:q} "
        "--split {params.split:q} --config-json {params.config:q} "
        "--mask {input.mask:q} --forward-model {params.forward_model:q} "
        "--csv {output.csv:q} --md {output.md:q} --html {output.html:q} 2> {log:q}"


rule figure2:
    input:
        shards=shards_of("test"),
        models=expand(f"{OUT}/models/{{run}}/best.pt", run=RUNS),
        mask=mask_path(ACCELERATIONS[0]),
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
        models=lambda wc, input: [f"{n}={p}" for n, p in zip(RUNS, input.models)],
        config=figure2_config(),
    shell:
        "ssimrecon figure2 --shards {input.shards:q} --mask {input.mask:q} "
        "--model {params.models:q} "
        "--config-json {params.config:q} --png {output.png:q} --pdf {output.pdf:q} 2> {log:q}"
