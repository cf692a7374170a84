# Stage 9, off unless reader_study.enabled: a blinded reader study of the test split (README:
# Reader study). The page goes to the readers, the key stays with you; their exported answers
# come back by hand, so `ssimrecon reader-study analyze` has no rule.
from ssimrecon.reader_study.settings import resolve_methods, settings_values

READER_STUDY = config["reader_study"]
READER_STUDY_DIR = f"{OUT}/reader_study"
try:
    READER_STUDY_METHODS = (
        resolve_methods(READER_STUDY, RUNS, STUDY) if READER_STUDY["enabled"] else []
    )
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None
#: the networks among the methods (zero-filled needs no model)
READER_STUDY_RUNS = [m for m in READER_STUDY_METHODS if m in RUNS]
READER_STUDY_PAGE = f"{READER_STUDY_DIR}/for_readers/reader-study.html"
READER_STUDY_KEY = f"{READER_STUDY_DIR}/key.csv"
#: what `rule all` asks for: the page and its key when the study is enabled
READER_STUDY_OUTPUTS = [READER_STUDY_PAGE, READER_STUDY_KEY] if READER_STUDY["enabled"] else []


rule reader_study:
    input:
        shards=shards_of(
            "test",
            RUNS[READER_STUDY_RUNS[0]].forward_model if READER_STUDY_RUNS else FORWARD_MODELS[0],
        ),
        models=[f"{OUT}/models/{run}/best.pt" for run in READER_STUDY_RUNS],
        mask=mask_path(
            RUNS[READER_STUDY_RUNS[0]].acceleration if READER_STUDY_RUNS else ACCELERATIONS[0]
        ),
    output:
        html=READER_STUDY_PAGE,
        key=READER_STUDY_KEY,
    log:
        f"{OUT}/logs/reader_study.log",
    benchmark:
        f"{OUT}/benchmarks/reader_study.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        models=lambda wc, input: [f"{n}={p}" for n, p in zip(READER_STUDY_RUNS, input.models)],
        config=as_json(
            settings_values(
                READER_STUDY, READER_STUDY_METHODS, config["evaluation"]["min_signal_fraction"]
            )
        ),
    shell:
        "ssimrecon reader-study make --shards {input.shards:q} --mask {input.mask:q} "
        "--model {params.models:q} --config-json {params.config:q} "
        "--html {output.html:q} --key {output.key:q} 2> {log:q}"
