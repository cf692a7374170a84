"""Config validation with messages that name the offending key, run before any job is scheduled.

:func:`check_config` runs :func:`check_schema` (types, ranges, unknown keys), lets Snakemake fill
in the schema's defaults (``workflow/schemas/config.schema.yaml``, the only source of defaults)
and then runs :func:`check_consistency`: the rules that span several keys, and the rules that
belong to the objects which use the values (the loss weights, the training section), applied by
calling those objects, so that each rule is stated once and still stops the run before any job.
``workflow/rules/common.smk`` calls it before any job, and ``ssimrecon bench`` on the config files
it measures.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml

from ssimrecon.config.jobs import AUTO, max_depth, training_settings
from ssimrecon.config.runs import expand_runs, forward_model_axis
from ssimrecon.config.sections import settings_from
from ssimrecon.config.stages import TrainSettings
from ssimrecon.data.bids import participant_of
from ssimrecon.data.sources import SourceFile, list_source, source_fingerprint
from ssimrecon.errors import ConfigError, SsimreconError, VolumeError
from ssimrecon.functional.weights import check_weight, check_weights

Owned = TypeVar("Owned")

#: the config keys of local sources, read in place (bids, folder, fastmri) or extracted (tar)
LOCAL_SOURCES = ("bids", "folder", "tar", "fastmri")


def _unexpected_keys(error: jsonschema.ValidationError) -> list[str]:
    """Keys of an additionalProperties error that match neither a property nor a pattern."""
    known = set(error.schema.get("properties", {}))
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    return sorted(
        k for k in error.instance if k not in known and not any(p.search(k) for p in patterns)
    )


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        # jsonschema reports the parent; name the unexpected key itself.
        extra = _unexpected_keys(error)
        if extra:
            return ".".join(parts + [extra[0]])
    if error.validator == "required":
        return ".".join(parts + [str(error.message).split("'")[1]])
    return ".".join(parts) or "<top level>"


def load_schema(path: Path) -> dict[str, Any]:
    """Read the YAML JSON-schema."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def check_schema(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise ConfigError for the first schema violation, naming the key (e.g. ``split.n_train``)."""
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    first = errors[0]
    key = _key_path(first)
    patterns = list(first.schema.get("patternProperties", {})) if first.schema else []
    if first.validator == "additionalProperties" and patterns:
        message = f"config key '{key}': the name must match {' or '.join(patterns)}"
    elif first.validator == "additionalProperties":
        message = f"unknown key '{key}'"
    elif (
        "then" in first.schema_path
        and isinstance(first.schema, dict)
        and first.schema.get("description")
    ):
        # a rule between keys (if/then): the sub-schema's description says it
        message = f"config key '{key}': {first.schema['description']}"
    else:
        message = f"config key '{key}': {first.message}"
    raise ConfigError(message)


def fill_defaults(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Set every ``default`` of ``schema`` that ``config`` lacks, in place, at every level the
    config reaches (what Snakemake's ``validate(set_default=True)`` does, without Snakemake: the
    jsonschema FAQ's validator whose ``properties`` keyword sets defaults before descending)."""
    base = jsonschema.validators.validator_for(schema)
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):  # noqa: ANN001
        for name, property_schema in properties.items():
            if "default" in property_schema and isinstance(instance, dict):
                instance.setdefault(name, property_schema["default"])
        yield from validate_properties(validator, properties, instance, subschema)

    filling = jsonschema.validators.extend(base, {"properties": set_defaults})
    for _ in filling(schema).iter_errors(config):
        pass  # check_schema has reported the first error already


def merge_config(config: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Merge ``overlay`` over ``config`` key by key, in place (mappings recursively, any other
    value replaced), as Snakemake merges ``--configfile A B``; returns ``config``."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            merge_config(config[key], value)
        else:
            config[key] = copy.deepcopy(value)
    return config


def check_config(config: dict[str, Any], schema_path: Path | str) -> dict[str, Any]:
    """Check ``config`` against the schema at ``schema_path``, fill its defaults in place, then run
    the cross-key checks; returns ``config``. Raises ConfigError naming the first bad key."""
    schema = load_schema(Path(schema_path))
    check_schema(config, schema)
    fill_defaults(config, schema)
    check_consistency(config)
    return config


def check_consistency(config: dict[str, Any]) -> None:
    """On a config the schema accepted and whose defaults are filled in (:func:`check_config` does
    both): cross-key checks the schema cannot express (split vs. subjects, baseline, source, study
    runs, image size vs. depth), then the rules of the objects that will use the values, applied
    here so that they stop the run before any job: every run's loss weights
    (:func:`~ssimrecon.functional.weights.check_weights`) and the training section
    (:class:`~ssimrecon.config.stages.TrainSettings`, its crop against the image size)."""
    _check_source(config)
    baseline = config["evaluation"]["baseline"]
    if baseline not in config["networks"]:
        raise ConfigError(
            f"config key 'evaluation.baseline': {baseline!r} is not one of the networks "
            f"{sorted(config['networks'])}"
        )
    if "zero-filled" in config["networks"]:
        raise ConfigError(
            "config key 'networks.zero-filled': the name is reserved for the zero-filled baseline"
        )
    for name, network in config["networks"].items():
        _owned(check_weights, network["loss"], f"networks.{name}.loss")
    if config.get("study"):
        _check_study(config)
    size = config["preprocessing"]["image_size"]
    factor = 2 ** max_depth(config)
    if size != AUTO and any(s % factor for s in size):
        raise ConfigError(
            f"config key 'preprocessing.image_size': {size} must be divisible by 2**depth = "
            f"{factor}"
        )
    training = training_settings(config)
    settings = _owned(settings_from, TrainSettings, training, "training")
    if size != AUTO:  # auto: the Trainer checks the crop against the shards' slices
        _owned(settings.check_crop, size, factor)
    _check_physics(config)
    _check_fastmri(config)


def _check_fastmri(config: dict[str, Any]) -> None:
    """Measured multi-coil k-space (``source.fastmri``) is multicoil data at its own resolution,
    one axial stack per file: every run's forward model multicoil, no downsampling, slices along
    readout_axis 2; names the key."""
    if not (config.get("source") or {}).get("fastmri"):
        return
    models = sorted({r.forward_model for r in expand_runs(config).values()} - {"multicoil"})
    if models:
        key = (
            "study.forward_models" if forward_model_axis(config) else "preprocessing.forward_model"
        )
        raise ConfigError(
            f"config key '{key}': source.fastmri holds measured multi-coil k-space; set "
            f"forward_model: multicoil (not {', '.join(models)})"
        )
    if config["mask"]["center_size"] < 1:
        raise ConfigError(
            "config key 'mask.center_size': source.fastmri estimates the coil sensitivities from "
            "the fully sampled centre square; set it to at least 1"
        )
    prep = config["preprocessing"]
    for key, want in (("downsample", 1), ("readout_axis", 2)):
        if prep.get(key, want) != want:
            raise ConfigError(
                f"config key 'preprocessing.{key}': source.fastmri files are axial stacks at the "
                f"recon matrix; set {key}: {want}"
            )


def _check_physics(config: dict[str, Any]) -> None:
    """Data consistency needs whole slices (no training crop), and a complex or multicoil forward
    model simulates its own phase (no ``preprocessing.phase: smooth``); names the keys."""
    runs = expand_runs(config)
    dc = sorted(r.name for r in runs.values() if r.data_consistency)
    if dc and config["training"].get("crop") is not None:
        raise ConfigError(
            "config key 'training.crop': data consistency (model.data_consistency or "
            f"study.data_consistency, run {dc[0]}) needs whole slices; set training.crop: null"
        )
    models = {r.forward_model for r in runs.values()} - {"magnitude"}
    if models and config["preprocessing"].get("phase", "none") != "none":
        raise ConfigError(
            "config key 'preprocessing.phase': 'smooth' contradicts the forward model(s) "
            f"{sorted(models)} (study.forward_models), which simulate their own phase; set "
            "phase: none"
        )


def _owned(check: Callable[..., Owned], *args: Any) -> Owned:
    """``check(*args)``: a rule of the object that uses the values, applied before any job; its
    error ``<key>: <problem>`` becomes ConfigError ``config key '<key>': <problem>``."""
    try:
        return check(*args)
    except SsimreconError as exc:
        key, _, problem = str(exc).partition(": ")
        raise ConfigError(f"config key '{key}': {problem}") from None


def local_source(source: dict[str, Any]) -> tuple[str, Path] | None:
    """(layout, path) of the local source (``source.bids``, ``.folder``, ``.tar`` or
    ``.fastmri.dir``; ``~`` expanded), or None when the source is ``url`` or ``demo``."""
    for layout in LOCAL_SOURCES:
        value = source.get(layout)
        if value:
            return layout, Path(value["dir"] if isinstance(value, dict) else value).expanduser()
    return None


def _check_source(config: dict[str, Any]) -> None:
    """One source given, a local one existing (a BIDS dataset or folder holding volumes); split
    sizes against the subjects it holds (``n_subjects``, the demo's count, or, with
    ``n_subjects: null``, the volumes a BIDS dataset or folder holds now)."""
    source = config.get("source", {})
    local = local_source(source)
    if not source.get("demo") and not source.get("url") and local is None:
        raise ConfigError(
            "config key 'source.url': required unless 'source.demo', 'source.bids', "
            "'source.folder', 'source.tar' or 'source.fastmri' is set"
        )
    split, exclude = config["split"], set(config.get("exclude", []))
    n_subjects = source["demo"]["subjects"] if source.get("demo") else source.get("n_subjects")
    found = _local_volumes(*local) if local is not None else None
    if n_subjects is None and found is not None:
        key, files = f"source.{local[0]}", found
        kept = [f for f in files if not f.names() & exclude]
        people = {participant_of(f.subject, f.source_name) for f in kept}
        origin = f"the {len(people)} participants found under '{key}' ({len(kept)} volumes after "
        origin += f"{len(files) - len(kept)} excluded)"
        _check_split_counts(split, len(people), origin)
    elif n_subjects is not None:
        available = n_subjects - len(exclude)
        origin = f"the {available} subjects available ('source.n_subjects' {n_subjects} minus "
        origin += f"{len(exclude)} excluded)"
        _check_split_counts(split, available, origin)


def _local_volumes(layout: str, path: Path) -> list[SourceFile] | None:
    """The volumes of a BIDS dataset or folder (None for a tar: the extract job lists its
    members); ConfigError naming ``source.<layout>`` and the path when it is missing, of the
    wrong kind, holds no volume or a volume that cannot be reached."""
    key = "source.fastmri.dir" if layout == "fastmri" else f"source.{layout}"
    if not (path.is_file() if layout == "tar" else path.is_dir()):
        what = "file" if layout == "tar" else "folder"
        problem = "does not exist" if not path.exists() else f"is not a {what}"
        raise ConfigError(f"config key '{key}': {path} {problem}")
    if layout == "tar":
        return None
    try:
        files = list_source(layout, path)
        source_fingerprint(files)  # every volume can be reached (a dangling link is named)
        return files
    except VolumeError as exc:
        raise ConfigError(f"config key '{key}': {exc}") from None


def _check_study(config: dict[str, Any]) -> None:
    """Every swept term belongs to some network but not to the baseline, every swept weight and
    every run's loss follows the loss's rule (:mod:`ssimrecon.functional.weights`), and the run
    names (``%g`` numbers) are distinct."""
    study, networks = config["study"], config["networks"]
    baseline = config["evaluation"]["baseline"]
    for term in study["sweep"]:
        owners = sorted(n for n, spec in networks.items() if term in spec["loss"])
        if not owners:
            raise ConfigError(
                f"config key 'study.sweep.{term}': no network's loss has the term '{term}'"
            )
        if baseline in owners:
            raise ConfigError(
                f"config key 'study.sweep.{term}': the baseline network {baseline!r} "
                "(evaluation.baseline) has this term; the baseline is not swept"
            )
    for term, weights in study["sweep"].items():
        for weight in weights:
            _owned(check_weight, weight, f"study.sweep.{term}")
    runs = expand_runs(config)
    for run in runs.values():
        _owned(check_weights, run.loss, f"study.sweep (run {run.name})")
    expected = 0
    physics = len(study.get("forward_models") or [1]) * len(study.get("data_consistency") or [1])
    for spec in networks.values():
        combos = 1
        for term, weights in study["sweep"].items():
            combos *= len(weights) if term in spec["loss"] else 1
        expected += combos * len(study["accelerations"]) * len(study["seeds"]) * physics
    if len(runs) != expected:
        raise ConfigError(
            "config key 'study': two weights or accelerations print alike with 6 significant "
            f"digits ({expected} runs make {len(runs)} names)"
        )


def _check_split_counts(split: dict[str, Any], available: int, origin: str) -> None:
    """Train + val + test (at least one test subject) must fit in the ``available`` subjects
    (``origin`` says where that count comes from)."""
    wanted = split["n_train"] + split["n_val"]
    if wanted >= available:
        raise ConfigError(
            f"config keys 'split.n_train' + 'split.n_val' = {split['n_train']} + "
            f"{split['n_val']} = {wanted} leave no test subject of {origin}; a test set is required"
        )
    n_test = split.get("n_test")
    if n_test is not None and wanted + n_test > available:
        raise ConfigError(
            f"config key 'split.n_test' = {n_test}: only {available - wanted} of {origin} are left "
            f"after 'split.n_train' + 'split.n_val' = {wanted}"
        )
