"""Argument helpers shared by the command modules (no heavy imports)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssimrecon.errors import SsimreconError

__all__ = ["add_config_json", "parse_pairs"]


def add_config_json(parser: argparse.ArgumentParser, keys: str) -> None:
    """``--config-json TEXT`` (required): the command's config values as one JSON object.

    ``keys`` names the config keys it holds, for the help text.
    """
    parser.add_argument(
        "--config-json",
        required=True,
        metavar="JSON",
        help=f"JSON object with every key of {keys} (the workflow passes it from config.yaml)",
    )


def parse_pairs(items: list[str], option: str) -> dict[str, Path]:
    """``NAME=PATH`` arguments -> {NAME: Path} in the order given; errors name the option."""
    pairs: dict[str, Path] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SsimreconError(f"{option} must look like NAME=PATH, got {item!r}")
        if name in pairs:
            raise SsimreconError(f"{option} name {name!r} given twice")
        pairs[name] = Path(value)
    return pairs


def add_image_size_file(parser: argparse.ArgumentParser) -> None:
    """``--image-size-file image_size.json``: the size ``preprocessing.image_size: auto`` stands
    for (written by ``ssimrecon image-size``)."""
    parser.add_argument(
        "--image-size-file",
        type=Path,
        default=None,
        help="image_size.json of `ssimrecon image-size` (needed when image_size is auto)",
    )


def config_json_with_image_size(text: str, image_size_file: Path | None) -> str:
    """``--config-json`` text with ``image_size: auto`` replaced from ``--image-size-file``."""
    import json

    from ssimrecon.errors import ConfigError
    from ssimrecon.kspace.image_size import resolve_image_size

    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        return text  # load_settings reports it, naming --config-json
    if not isinstance(values, dict):
        return text
    try:
        return json.dumps(resolve_image_size(values, image_size_file))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"--image-size-file {image_size_file}: unreadable ({exc})") from None
