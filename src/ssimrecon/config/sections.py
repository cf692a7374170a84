"""The one way a stage receives its config: ``--config-json TEXT`` -> typed settings.

Every workflow rule hands its stage one JSON object (``--config-json {params.config:q}``) holding
the config values that stage uses, already checked and completed with the schema's defaults by
``workflow/rules/common.smk`` (:mod:`ssimrecon.config.check`).  :func:`load_settings` turns it into
the stage's frozen dataclass.  The dataclasses declare no defaults: every field must be present, so
a value can only come from the config (or from a caller who names it), never from a second default.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from ssimrecon.errors import ConfigError

__all__ = ["load_settings", "settings_from"]

Settings = TypeVar("Settings")


def load_settings(text: str, cls: type[Settings], key: str) -> Settings:
    """``--config-json`` text (a JSON object) -> ``cls``; errors name ``--config-json`` or
    ``<key>.<field>``."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config-json: invalid JSON for '{key}' ({exc})") from None
    return settings_from(cls, values, key)


def settings_from(cls: type[Settings], values: Any, key: str) -> Settings:
    """Mapping -> dataclass ``cls`` with exactly its fields; a field typed as a dataclass is built
    from its nested mapping the same way.  Missing or unknown keys raise ConfigError naming
    ``<key>.<field>``."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{key}: expected a JSON object, got {type(values).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown setting; known: {sorted(fields)}")
    missing = sorted(fields - set(values))
    if missing:
        raise ConfigError(f"{key}.{missing[0]}: missing setting")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        field_type = hints[name]
        if dataclasses.is_dataclass(field_type):
            value = settings_from(field_type, value, f"{key}.{name}")
        kwargs[name] = value
    return cls(**kwargs)
