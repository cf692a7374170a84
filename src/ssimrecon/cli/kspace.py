"""Commands of workflow/rules/kspace.smk: mask, shard (library imported after parsing)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ssimrecon.cli.arguments import (
    add_config_json,
    add_image_size_file,
    config_json_with_image_size,
)
from ssimrecon.config.sections import load_settings
from ssimrecon.config.stages import MaskSettings

log = logging.getLogger(__name__)


def mask(argv: list[str]) -> int:
    """``ssimrecon mask --config-json {mask + image_size} --output mask.npz [--figure F.png]``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon mask", description="Make a seeded 2D variable-density mask."
    )
    add_config_json(
        parser, "mask (acceleration, center_size, seed, power) and preprocessing.image_size"
    )
    parser.add_argument("--output", required=True, type=Path, help="mask .npz")
    parser.add_argument(
        "--figure", type=Path, default=None, help="optional PNG of the mask and its density"
    )
    add_image_size_file(parser)
    args = parser.parse_args(argv)
    text = config_json_with_image_size(args.config_json, args.image_size_file)
    settings = load_settings(text, MaskSettings, "mask")
    from ssimrecon.kspace.mask import (
        achieved_acceleration,
        load_mask,
        save_mask,
        variable_density_mask,
    )

    shape = (settings.image_size[0], settings.image_size[1])
    samples = variable_density_mask(
        shape, settings.acceleration, settings.center_size, settings.seed, settings.power
    )
    save_mask(
        args.output,
        samples,
        acceleration=settings.acceleration,
        seed=settings.seed,
        center_size=settings.center_size,
        power=settings.power,
    )
    if args.figure:
        from ssimrecon.plots.mask import plot_mask

        plot_mask(samples, load_mask(args.output)[1], args.figure)
    log.info(
        "mask %dx%d: %d samples, achieved R=%.3f -> %s",
        *shape,
        int(samples.sum()),
        achieved_acceleration(samples),
        args.output,
    )
    return 0


def shard(argv: list[str]) -> int:
    """``ssimrecon shard (--volume V | --subjects-csv C) --subject S --config-json
    {preprocessing} --output X.h5``; a config holding ``fastmri: {calibration_size: N}`` makes
    the shard of a fastMRI multi-coil file (measured k-space,
    :mod:`ssimrecon.kspace.fastmri_source`)."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon shard", description="Simulate one subject's k-space shard."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--volume", type=Path, help="NIfTI volume")
    source.add_argument(
        "--subjects-csv", type=Path, help="subjects.csv: take the volume and md5 of --subject"
    )
    parser.add_argument("--subject", required=True)
    parser.add_argument("--output", required=True, type=Path, help="shard .h5")
    add_config_json(parser, "preprocessing")
    parser.add_argument("--source-md5", default=None, help="MD5 of the volume (computed if absent)")
    add_image_size_file(parser)
    args = parser.parse_args(argv)
    from ssimrecon.data.qc import lookup_subject
    from ssimrecon.kspace.preprocess import Preprocessing
    from ssimrecon.kspace.shards import make_shard

    text = config_json_with_image_size(args.config_json, args.image_size_file)
    measured = _pop_fastmri(text)
    if measured is not None:
        text = measured[0]
    prep = load_settings(text, Preprocessing, "preprocessing")

    volume, md5 = args.volume, args.source_md5
    if args.subjects_csv:
        volume, csv_md5 = lookup_subject(args.subjects_csv, args.subject)
        md5 = md5 or csv_md5
    if measured is not None:
        from ssimrecon.kspace.fastmri_source import make_fastmri_shard

        seconds = make_fastmri_shard(
            volume,
            args.subject,
            prep,
            args.output,
            calibration_size=measured[1],
            source_md5=md5,
        )
    else:
        seconds = make_shard(
            volume,
            args.subject,
            prep,
            args.output,
            source_md5=md5,
        )
    log.info(
        "shard %s -> %s (load %.2fs, compute %.2fs, write %.2fs)",
        args.subject,
        args.output,
        seconds["load"],
        seconds["compute"],
        seconds["write"],
    )
    return 0


def _pop_fastmri(text: str) -> tuple[str, int] | None:
    """(the config JSON without its ``fastmri`` entry, ``fastmri.calibration_size``) when it has
    one, else None; ConfigError naming the key for a bad size."""
    import json

    from ssimrecon.errors import ConfigError

    values = json.loads(text)
    if not isinstance(values, dict) or "fastmri" not in values:
        return None
    entry = values.pop("fastmri")
    size = entry.get("calibration_size") if isinstance(entry, dict) else None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(
            f"--config-json: fastmri.calibration_size must be an integer >= 1, got {size!r}"
        )
    return json.dumps(values), size


def export_kspace(argv: list[str]) -> int:
    """``ssimrecon export-kspace --shard S.h5 --mask masks/R<acc>.npz --output K.h5``."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon export-kspace",
        description="Write a standalone HDF5 with one shard's undersampled k-space for one mask.",
    )
    parser.add_argument("--shard", required=True, type=Path, help="shard .h5")
    parser.add_argument("--mask", required=True, type=Path, help="mask .npz of an acceleration")
    parser.add_argument("--output", required=True, type=Path, help="output .h5")
    args = parser.parse_args(argv)
    from ssimrecon.kspace.export import export_kspace as export

    export(args.shard, args.mask, args.output)
    log.info("k-space of %s under %s -> %s", args.shard, args.mask, args.output)
    return 0


def image_size(argv: list[str]) -> int:
    """``ssimrecon image-size --subjects subjects.csv --config-json {preprocessing + depth}
    --output image_size.json``: the size ``preprocessing.image_size: auto`` stands for."""
    parser = argparse.ArgumentParser(
        prog="ssimrecon image-size",
        description="The slice size of image_size: auto: the largest in-plane slice of every QC'd "
        "volume, rounded up to the U-Net's multiple 2**depth.",
    )
    parser.add_argument(
        "--subjects", required=True, type=Path, help="subjects.csv of `ssimrecon qc`"
    )
    add_config_json(parser, "preprocessing (readout_axis, downsample) and depth (model.depth)")
    parser.add_argument("--output", required=True, type=Path, help="image_size.json to write")
    args = parser.parse_args(argv)
    import json

    from ssimrecon.errors import ConfigError
    from ssimrecon.kspace.image_size import write_image_size

    values = json.loads(args.config_json)
    if not isinstance(values, dict) or "depth" not in values:
        raise ConfigError("--config-json: needs the preprocessing keys and depth")
    result = write_image_size(args.subjects, values, int(values["depth"]), args.output)
    log.info(
        "image_size auto: %s (largest slice %s of %d volumes, multiple %d) -> %s",
        result["image_size"],
        result["largest_slice"],
        result["volumes"],
        result["multiple"],
        args.output,
    )
    return 0
