# ssimrecon: Pawar et al., "Enforcing Structural Similarity in Deep Learning MR Image Reconstruction",
# ISMRM 2019. Data flows one way:
#   archive -> NIfTI -> subjects.csv -> split.csv -> k-space shards -> models -> per-slice metrics
#   -> table1 + figures + report
from snakemake.utils import min_version

min_version("9.19")


# ---- config: checked once, before any job (workflow/rules/common.smk)
configfile: "config.yaml"


# PATH is extended in common.smk so that jobs find the `ssimrecon` CLI beside this Snakemake.
envvars:
    "PATH",


include: "workflow/rules/common.smk"


wildcard_constraints:
    run=one_of(RUNS),
    # the ids QC makes: IXI ids, or file stems with runs of other characters turned into "-"
    subject=r"[A-Za-z0-9][A-Za-z0-9_-]*",


# ---- report and rules: the report's landing page, its `inlineimage` directive (inline_image.smk),
# then one rule file per stage
report: "workflow/report/workflow.rst"


include: "workflow/rules/inline_image.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/kspace.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/study.smk"
include: "workflow/rules/reader_study.smk"


# ---- target: everything the experiment makes
# The test subjects' shards are asked for here as well, so that they exist whatever the evaluation
# rules score (train selects the weights, val the checkpoint, test scores Table 1).
rule all:
    default_target: True
    input:
        final_outputs(),
        test_shards,
        READER_STUDY_OUTPUTS,
