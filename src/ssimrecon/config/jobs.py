"""What each command's ``--config-json`` holds, built from the checked experiment config.

One home for these values: ``workflow/rules/common.smk`` hands them to the rules, and
:mod:`ssimrecon_bench.gpu_demo` (the demo pipeline run without Snakemake on a bare GPU machine)
hands the same ones to the same commands.  Every function takes the config after
:func:`ssimrecon.config.check.check_config` (defaults filled) and returns plain JSON values.
"""

from __future__ import annotations

import json
from typing import Any

from ssimrecon.config.runs import Run, number_label


def as_json(value: Any) -> str:
    """Stable JSON: the same value always gives the same string (Snakemake params compare it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def network_model(config: dict[str, Any], network: str) -> dict[str, Any]:
    """Top-level model settings with the network's own overrides applied."""
    return {**config["model"], **config["networks"][network].get("model", {})}


#: ``preprocessing.image_size`` that stands for the size QC finds (ssimrecon.kspace.image_size)
AUTO = "auto"

#: ``training:`` keys that are the job's, not the run's: they change neither the weights nor the
#: run's fingerprint (threads: the job's CPU threads; tensorboard: logging for watching the run)
JOB_ONLY_TRAINING_KEYS = ("threads", "tensorboard")


def training_settings(config: dict[str, Any]) -> dict[str, Any]:
    """``training:`` without :data:`JOB_ONLY_TRAINING_KEYS`: what TrainSettings holds."""
    return {k: v for k, v in config["training"].items() if k not in JOB_ONLY_TRAINING_KEYS}


def train_job(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """``ssimrecon train``: model, loss and the training options that change results
    (:func:`training_settings`); a study's run brings its own loss weights and training seed."""
    training = training_settings(config)
    if config.get("study"):
        training["seed"] = run.seed
    model = {**network_model(config, run.network), "data_consistency": run.data_consistency}
    return {"model": model, "loss": run.loss, "training": training}


def shard_job(config: dict[str, Any], forward_model: str) -> dict[str, Any]:
    """``ssimrecon shard``: the preprocessing section with the forward model of the shard (a
    study's forward-model axis replaces ``preprocessing.forward_model``)."""
    return {**config["preprocessing"], "forward_model": forward_model}


def max_depth(config: dict[str, Any]) -> int:
    """The deepest U-Net of the experiment (``model.depth`` or a network's override): image
    sizes must be multiples of 2 ** this."""
    default = config["model"]["depth"]
    overrides = [net.get("model", {}).get("depth", default) for net in config["networks"].values()]
    return max([default, *overrides])


def image_size_job(config: dict[str, Any]) -> dict[str, Any]:
    """``ssimrecon image-size``: the preprocessing keys the slice size depends on, and the depth."""
    prep = config["preprocessing"]
    keys = ("readout_axis", "downsample")
    return {**{k: prep[k] for k in keys}, "depth": max_depth(config)}


def mask_job(config: dict[str, Any], label: str) -> dict[str, Any]:
    """``ssimrecon mask``: the mask section at the acceleration of path label ``label`` (``10``,
    ``2.5``) and the image size (H, W) in pixels it covers."""
    study = config.get("study")
    values = study["accelerations"] if study else [config["mask"]["acceleration"]]
    acceleration = next(r for r in values if number_label(r) == label)
    return {
        **config["mask"],
        "acceleration": acceleration,
        "image_size": config["preprocessing"]["image_size"],
    }


def figure2_job(config: dict[str, Any]) -> dict[str, Any]:
    """``ssimrecon figure2``: the figure section and which slices may be shown."""
    return {**config["figure"], "min_signal_fraction": config["evaluation"]["min_signal_fraction"]}


def evaluation_job(config: dict[str, Any]) -> dict[str, Any]:
    """``ssimrecon evaluate``: the slice filter recorded beside every slice."""
    return {"min_signal_fraction": config["evaluation"]["min_signal_fraction"]}


def forward_model_job(config: dict[str, Any]) -> str:
    """The forward model of the experiment without a forward-model axis."""
    return str(config["preprocessing"]["forward_model"])


def table_job(
    config: dict[str, Any], baseline: str | None = None, seeds: int = 1
) -> dict[str, Any]:
    """``ssimrecon table``: baseline (``evaluation.baseline`` unless given), slice filter, intensity
    scale, the number of seeds it states and the statistics plan."""
    return {
        "baseline": baseline or config["evaluation"]["baseline"],
        "min_signal_fraction": config["evaluation"]["min_signal_fraction"],
        "scale_percentile": config["preprocessing"]["scale_percentile"],
        "seeds": seeds,
        **statistics_plan(config),
    }


def statistics_plan(config: dict[str, Any]) -> dict[str, Any]:
    """``evaluation.primary`` and ``evaluation.bootstrap``: the statistics plan of Table 1 and
    the study."""
    return {k: config["evaluation"][k] for k in ("primary", "bootstrap")}
