# Helpers shared by the workflow files, in stage order: the config (checked once), then one section
# per rule file (data, kspace, train, evaluate, report, study) with the paths and per-job settings
# its rules use, and last what `rule all` asks for.
#
# The one config path: config.yaml (+ --configfile overrides) -> checked here, once, before any
# job (ssimrecon.config.check), with the defaults of workflow/schemas/config.schema.yaml filled
# in -> each rule hands its stage the values it uses as ONE JSON string
# (`--config-json {params.config:q}`, built by the *_config() helpers below) -> the stage's
# command (src/ssimrecon/cli/) parses it with ssimrecon.config.sections.load_settings into a
# dataclass without defaults.
import os
import re
import sys
from urllib.parse import urlparse

import pandas as pd

from ssimrecon.config.check import check_config, local_source
from ssimrecon.config.jobs import (
    as_json,
    evaluation_job,
    figure2_job,
    forward_model_job,
    image_size_job,
    mask_job,
    shard_job,
    statistics_plan,
    table_job,
    train_job,
)
from ssimrecon.config.runs import (
    accelerations,
    expand_runs,
    forward_model_axis,
    forward_model_token,
    forward_models,
    number_label,
)
from ssimrecon.data.sources import list_source, source_fingerprint
from ssimrecon.errors import ConfigError
from ssimrecon.kspace.shards import FORMAT_VERSION as SHARD_FORMAT_VERSION

# Jobs call the `ssimrecon` CLI installed beside the running Snakemake, so `.venv/bin/snakemake` works
# without activating the venv (locally and in SLURM jobs, which re-read this file).
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
# The checkout whose Snakefile runs: envs/ssimrecon.post-deploy.sh installs the package from it into
# a conda environment (--software-deployment-method conda).
os.environ.update(SSIMRECON_REPO=os.path.abspath(workflow.basedir))

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")

# Our schema check first (its messages name the key), then Snakemake's validate fills in the
# defaults that the consistency checks rely on.
try:
    check_config(config, SCHEMA)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None


# ---- config: the experiment's runs and names
OUT = f"results/{config['experiment']}"


#: one environment for every rule: every stage is the ssimrecon CLI
CONDA_ENV = "../../envs/ssimrecon.yaml"


#: run name -> ssimrecon.config.runs.Run: the networks themselves, or a study's
#: <network>[_<term><weight>]_R<acceleration>_seed<seed> (one training job each)
RUNS = expand_runs(config)


STUDY = bool(config.get("study"))


#: accelerations trained at (mask.acceleration, or study.accelerations), as they appear in paths
ACCELERATIONS = [number_label(r) for r in accelerations(config)]


#: the forward models simulated (study.forward_models, or preprocessing.forward_model) and
#: whether the study varies them (then each has its own shards/<forward model>/ and name token)
FORWARD_MODELS = forward_models(config)
FORWARD_MODEL_AXIS = forward_model_axis(config)


#: (acceleration label, forward model) -> name of its zero-filled method ("zero-filled" without a
#: study; zero-filled_R<acc>[_<forward model>] in a study)
ZERO_FILLED = {
    (label, model): (
        f"zero-filled_R{label}{forward_model_token(config, model)}" if STUDY else "zero-filled"
    )
    for label in ACCELERATIONS
    for model in FORWARD_MODELS
}


#: zero-filled method name -> (acceleration label, forward model)
ZERO_FILLED_ACQUISITION = {name: key for key, name in ZERO_FILLED.items()}


#: methods of Table 1 without a study: zero-filled and the runs (= the networks)
METHODS = ["zero-filled"] + list(RUNS)


#: condition (a run without its seed) -> its runs, one per seed
CONDITIONS = {
    condition: [run.name for run in RUNS.values() if run.condition == condition]
    for condition in dict.fromkeys(run.condition for run in RUNS.values())
}


def one_of(names) -> str:
    """A wildcard constraint that matches exactly one of `names`."""
    return "|".join(re.escape(name) for name in names)


# ---- data (workflow/rules/data.smk): source, download, extract, QC, split
def source_settings() -> dict:
    """Where the archive comes from: the configured URL, or the demo archive built by rule demo_archive."""
    demo = config["source"].get("demo")
    if demo:
        return {
            "url": f"{OUT}/source/IXI-T1-demo.tar",
            "md5_file": f"{OUT}/source/IXI-T1-demo.tar.md5",
        }
    return {"url": config["source"].get("url"), "md5": config["source"].get("md5")}


def archive_name() -> str:
    """File name of the downloaded archive (a placeholder when the source is local)."""
    return os.path.basename(urlparse(source_settings()["url"] or "").path) or "archive.tar"


def download_inputs(wildcards) -> list[str]:
    source = source_settings()
    return [source["url"], source["md5_file"]] if "md5_file" in source else []


def checksum_option(wildcards) -> list[str]:
    """`--md5-file F`, `--md5 HEX` or nothing; a list, so that `{params.checksum:q}` quotes each."""
    source = source_settings()
    if "md5_file" in source:
        return ["--md5-file", source["md5_file"]]
    return ["--md5", source["md5"]] if source.get("md5") else []


#: (layout, path) of a local source (source.bids, .folder, .tar or .fastmri.dir), None for url
#: and demo
LOCAL_SOURCE = local_source(config["source"])


#: source.fastmri: measured multi-coil k-space (fastMRI HDF5) read in place; QC keeps the
#: configured acquisitions and the shard jobs make multicoil shards of the files
FASTMRI = LOCAL_SOURCE is not None and LOCAL_SOURCE[0] == "fastmri"


#: where QC's list of files comes from when the source is a BIDS dataset or a folder
MANIFEST = f"{OUT}/source/manifest.csv"


def reads_in_place() -> bool:
    """A BIDS dataset, folder or fastMRI folder: QC reads the files where they are, from the
    manifest."""
    return LOCAL_SOURCE is not None and LOCAL_SOURCE[0] in ("bids", "folder", "fastmri")


def source_fingerprint_param(wildcards) -> str:
    """Changes when a file of the local source is added, removed, renamed or rewritten, so that
    the source_manifest job (and everything after it) reruns then, and only then."""
    return source_fingerprint(list_source(*LOCAL_SOURCE))


def archive_input(wildcards) -> str:
    """What the extract job unpacks: the local source.tar (read in place) or the download."""
    if LOCAL_SOURCE is not None and LOCAL_SOURCE[0] == "tar":
        return str(LOCAL_SOURCE[1])
    return f"{OUT}/raw/{archive_name()}"


def qc_input(wildcards) -> str:
    return MANIFEST if reads_in_place() else f"{OUT}/nifti"


def qc_source_option(wildcards) -> list[str]:
    """`--manifest F` (fastMRI: and `--fastmri-acquisitions A,B`) or `--input-dir D`; a list, so
    that `{params.source:q}` quotes each."""
    if FASTMRI:
        acquisitions = ",".join(config["source"]["fastmri"]["acquisitions"])
        return ["--manifest", MANIFEST, "--fastmri-acquisitions", acquisitions]
    return ["--manifest", MANIFEST] if reads_in_place() else ["--input-dir", f"{OUT}/nifti"]


def split_subjects(which: str) -> list[str]:
    """Subjects of one split, read from the split checkpoint's output."""
    table = pd.read_csv(checkpoints.split.get().output[0], dtype=str)
    return sorted(table.loc[table["split"] == which, "subject"])


# ---- k-space (workflow/rules/kspace.smk): masks and shards
def mask_path(acceleration) -> str:
    """The mask file of one acceleration (a number or its path label)."""
    label = acceleration if isinstance(acceleration, str) else number_label(acceleration)
    return f"{OUT}/masks/R{label}.npz"


def run_mask(wildcards) -> str:
    """The mask of the {run} wildcard's acceleration."""
    return mask_path(RUNS[wildcards.run].acceleration)


#: preprocessing.image_size auto: the size comes from QC, through rule image_size's file
AUTO_IMAGE_SIZE = config["preprocessing"]["image_size"] == "auto"
IMAGE_SIZE_FILE = f"{OUT}/image_size.json"


def image_size_input(wildcards) -> list[str]:
    """image_size.json for the mask and shard jobs when the size is auto, else nothing."""
    return [IMAGE_SIZE_FILE] if AUTO_IMAGE_SIZE else []


def image_size_option(wildcards) -> list[str]:
    """`--image-size-file F` when the size is auto, else nothing (a list: `{...:q}` quotes each)."""
    return ["--image-size-file", IMAGE_SIZE_FILE] if AUTO_IMAGE_SIZE else []


def image_size_config() -> str:
    """`ssimrecon image-size --config-json`: readout axis, downsample and the U-Net depth."""
    return as_json(image_size_job(config))


def mask_config(label: str) -> str:
    """`ssimrecon mask --config-json` at the acceleration of path label `label`."""
    return as_json(mask_job(config, label))


def shard_dir(model: str) -> str:
    """Where the shards of forward model `model` live: shards/<model>/ on a study's forward-model
    axis, else shards/ (the paths of the default experiment)."""
    return f"{OUT}/shards/{model}" if FORWARD_MODEL_AXIS else f"{OUT}/shards"


#: the shard rule's output: with a forward-model axis the model is a wildcard
SHARD_PATTERN = (
    f"{OUT}/shards/{{forward_model}}/{{subject}}.h5"
    if FORWARD_MODEL_AXIS
    else f"{OUT}/shards/{{subject}}.h5"
)
#: the part of the shard rule's log and benchmark paths after logs/ or benchmarks/
SHARD_JOB = "shards/{forward_model}/{subject}" if FORWARD_MODEL_AXIS else "shards/{subject}"


def shard_config(wildcards) -> str:
    """`ssimrecon shard --config-json`: preprocessing with the shard's forward model (fastMRI:
    and the calibration square of the sensitivity estimate, mask.center_size)."""
    job = shard_job(config, wildcards.get("forward_model", FORWARD_MODELS[0]))
    if FASTMRI:
        job = {**job, "fastmri": {"calibration_size": config["mask"]["center_size"]}}
    return as_json(job)


def shards_of(which: str, model: str | None = None):
    """The shards of one split (of forward model `model`, default the first)."""

    def _shards(wildcards) -> list[str]:
        folder = shard_dir(model or FORWARD_MODELS[0])
        return [f"{folder}/{subject}.h5" for subject in split_subjects(which)]

    return _shards


def run_shards(which: str):
    """The shards of one split in the {run} wildcard's forward model."""

    def _shards(wildcards) -> list[str]:
        return shards_of(which, RUNS[wildcards.run].forward_model)(wildcards)

    return _shards


def test_shards(wildcards) -> list[str]:
    """Every forward model's test shards (rule all asks for them)."""
    return [path for model in FORWARD_MODELS for path in shards_of("test", model)(wildcards)]


# ---- training (workflow/rules/train.smk)
def tensorboard_option(wildcards) -> list[str]:
    """`--tensorboard <state>/<run>/tensorboard` when training.tensorboard, else nothing; a list, so
    that `{params.tensorboard:q}` quotes each word."""
    if not config["training"]["tensorboard"]:
        return []
    return ["--tensorboard", f"{OUT}/state/{wildcards.run}/tensorboard"]


def train_config(run: str) -> str:
    """`ssimrecon train --config-json` of one run (ssimrecon.config.jobs.train_job)."""
    return as_json(train_job(config, RUNS[run]))


# ---- evaluation (workflow/rules/evaluate.smk)
#: Table 1 output name -> the split it is computed on (the test split is the paper's table)
TABLES = {"table1": "test", "table1-validation": "val"}


#: splits the evaluation rules score
EVAL_SPLITS = sorted(set(TABLES.values()))


def split_shards(wildcards) -> list[str]:
    """Shards of the evaluation rules' {split} wildcard, in the {run}'s or {zero_filled}'s
    forward model."""
    if "run" in wildcards.keys():
        model = RUNS[wildcards.run].forward_model
    else:
        model = ZERO_FILLED_ACQUISITION[wildcards.zero_filled][1]
    return shards_of(wildcards.split, model)(wildcards)


def zero_filled_mask(wildcards) -> str:
    """The mask of the {zero_filled} method's acceleration."""
    return mask_path(ZERO_FILLED_ACQUISITION[wildcards.zero_filled][0])


def evaluation_config() -> str:
    """`ssimrecon evaluate --config-json`: the slice filter recorded beside every slice."""
    return as_json(evaluation_job(config))


# ---- report (workflow/rules/report.smk): Table 1 and the figures
def table_config(baseline: str | None = None, seeds: int = 1) -> str:
    """`ssimrecon table --config-json`: baseline (evaluation.baseline unless given), slice filter,
    intensity scale and number of seeds it states."""
    return as_json(table_job(config, baseline, seeds))


#: the forward model the experiment's Table 1 states (without a study)
FORWARD_MODEL = forward_model_job(config)


def table_metrics(suffix: str):
    """Per-method metrics files (`.csv` per slice, `.volumes.csv` per volume) of a table's split."""

    def _files(wildcards) -> list[str]:
        split = TABLES[wildcards.table]
        return [f"{OUT}/metrics/{split}/{method}{suffix}" for method in METHODS]

    return _files


def figure2_config() -> str:
    """`ssimrecon figure2 --config-json`: the figure section and which slices may be shown."""
    return as_json(figure2_job(config))


# ---- study (workflow/rules/study.smk)
#: a study's Table 1 per acquisition: key R<acc>[_<forward model>] -> (acceleration label,
#: forward model); data consistency is a network setting, so its conditions share the table
STUDY_TABLES = {
    f"R{label}{forward_model_token(config, model)}": (label, model)
    for label in ACCELERATIONS
    for model in FORWARD_MODELS
}


def study_outputs() -> list[str]:
    """What `rule all` asks for in a study."""
    tables = [
        f"{OUT}/study/table1_{key}.{ext}" for key in STUDY_TABLES for ext in ("csv", "md", "html")
    ]
    return [f"{OUT}/study.csv", f"{OUT}/figures/study.png", *tables]


def study_config() -> str:
    """`ssimrecon study-table --config-json`: the runs, the slice filter, the baseline and the
    statistics plan."""
    runs = {
        name: {
            "condition": run.condition,
            "network": run.network,
            "loss": run.loss,
            "acceleration": run.acceleration,
            "seed": run.seed,
            "swept": list(run.swept),
            "forward_model": run.forward_model,
            "data_consistency": run.data_consistency,
        }
        for name, run in RUNS.items()
    }
    return as_json(
        {
            "runs": runs,
            "min_signal_fraction": config["evaluation"]["min_signal_fraction"],
            "baseline": config["evaluation"]["baseline"],
            **statistics_plan(config),
        }
    )


def study_methods(key: str) -> list[str]:
    """Table 1 methods of acquisition `key` (STUDY_TABLES): zero-filled, the baseline network's
    first condition there, the other conditions."""
    label, model = STUDY_TABLES[key]
    here = [
        c
        for c, runs in CONDITIONS.items()
        if number_label(RUNS[runs[0]].acceleration) == label
        and RUNS[runs[0]].forward_model == model
    ]
    baseline = study_baseline(key)
    return [ZERO_FILLED[(label, model)], baseline, *(c for c in here if c != baseline)]


def study_baseline(key: str) -> str:
    """The condition Table 1 of acquisition `key` compares against: the baseline network's first
    (without data consistency when the study has both)."""
    label, model = STUDY_TABLES[key]
    baseline = config["evaluation"]["baseline"]
    return next(
        c
        for c, runs in CONDITIONS.items()
        if RUNS[runs[0]].network == baseline
        and number_label(RUNS[runs[0]].acceleration) == label
        and RUNS[runs[0]].forward_model == model
    )


def study_metrics(suffix: str):
    """Metrics files of the methods of the {table_key} wildcard's Table 1."""

    def _files(wildcards) -> list[str]:
        methods = study_methods(wildcards.table_key)
        zero_filled = [f"{OUT}/metrics/test/{methods[0]}{suffix}"]
        return zero_filled + [f"{OUT}/metrics/test/seeds/{m}{suffix}" for m in methods[1:]]

    return _files


def condition_metrics(suffix: str):
    """Metrics files of the runs (one per seed) of the {condition} wildcard."""

    def _files(wildcards) -> list[str]:
        return [f"{OUT}/metrics/test/{run}{suffix}" for run in CONDITIONS[wildcards.condition]]

    return _files


# ---- rule all (Snakefile)
def final_outputs() -> list[str]:
    masks = [f"{OUT}/figures/mask_R{label}.png" for label in ACCELERATIONS]
    if STUDY:
        return [*masks, *study_outputs()]
    tables = [f"{OUT}/{name}.{ext}" for name in TABLES for ext in ("csv", "md", "html")]
    return [
        *tables,
        f"{OUT}/figures/figure2.png",
        f"{OUT}/figures/figure2.pdf",
        f"{OUT}/figures/training_curves.png",
        *masks,
    ]
