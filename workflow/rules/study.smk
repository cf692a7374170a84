# A study (config `study:`): every run of common.smk's RUNS is scored on the test subjects; the
# aggregates read them all: study.csv (one row per run), figures/study.png and one Table 1 per
# acceleration from the metrics averaged over the seeds of each condition.


localrules:
    seed_average,
    study_table,
    study_figure,
    study_table1,


rule seed_average:
    input:
        slices=condition_metrics(".csv"),
        volumes=condition_metrics(".volumes.csv"),
    output:
        slices=f"{OUT}/metrics/test/seeds/{{condition}}.csv",
        volumes=f"{OUT}/metrics/test/seeds/{{condition}}.volumes.csv",
    log:
        f"{OUT}/logs/seed_average/{{condition}}.log",
    wildcard_constraints:
        condition=one_of(CONDITIONS),
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "ssimrecon seed-average --metrics {input.slices:q} --volumes {input.volumes:q} "
        "--output {output.slices:q} --output-volumes {output.volumes:q} 2> {log:q}"


rule study_table:
    input:
        slices=expand(f"{OUT}/metrics/test/{{run}}.csv", run=RUNS),
        volumes=expand(f"{OUT}/metrics/test/{{run}}.volumes.csv", run=RUNS),
        masks=[mask_path(label) for label in ACCELERATIONS],
    output:
        report(f"{OUT}/study.csv", caption="../report/study.rst", category="Study"),
    log:
        f"{OUT}/logs/study_table.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        metrics=lambda wc, input: [f"{r}={p}" for r, p in zip(RUNS, input.slices)],
        volumes=lambda wc, input: [f"{r}={p}" for r, p in zip(RUNS, input.volumes)],
        masks=lambda wc, input: [f"{r}={p}" for r, p in zip(ACCELERATIONS, input.masks)],
        config=study_config(),
    shell:
        "ssimrecon study-table --metrics {params.metrics:q} --volumes {params.volumes:q} "
        "--masks {params.masks:q} --config-json {params.config:q} --output {output:q} "
        "2> {log:q}"


rule study_figure:
    input:
        rules.study_table.output,
    output:
        report(
            f"{OUT}/figures/study.png",
            caption="../report/study_figure.rst",
            category="Study",
        ),
    log:
        f"{OUT}/logs/study_figure.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "ssimrecon study-figure --study {input:q} --output {output:q} 2> {log:q}"


rule study_table1:
    input:
        slices=study_metrics(".csv"),
        volumes=study_metrics(".volumes.csv"),
        mask=lambda wc: mask_path(STUDY_TABLES[wc.table_key][0]),
    output:
        csv=report(
            f"{OUT}/study/table1_{{table_key}}.csv",
            caption="../report/study_table1.rst",
            category="Study",
        ),
        md=f"{OUT}/study/table1_{{table_key}}.md",
        html=report(
            f"{OUT}/study/table1_{{table_key}}.html",
            caption="../report/study_table1.rst",
            category="Study",
        ),
    log:
        f"{OUT}/logs/study_table1_{{table_key}}.log",
    wildcard_constraints:
        table_key=one_of(STUDY_TABLES),
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        metrics=lambda wc, input: [
            f"{m}={p}" for m, p in zip(study_methods(wc.table_key), input.slices)
        ],
        volumes=lambda wc, input: [
            f"{m}={p}" for m, p in zip(study_methods(wc.table_key), input.volumes)
        ],
        config=lambda wc: table_config(
            study_baseline(wc.table_key),
            len(config["study"]["seeds"]),
        ),
        forward_model=lambda wc: STUDY_TABLES[wc.table_key][1],
    shell:
        "ssimrecon table --metrics {params.metrics:q} --volumes {params.volumes:q} "
        "--split test --config-json {params.config:q} "
        "--mask {input.mask:q} --forward-model {params.forward_model:q} "
        "--csv {output.csv:q} --md {output.md:q} --html {output.html:q} 2> {log:q}"
