"""The experiment config the bench measures: the workflow's own files, read as the Snakefile does.

``config.yaml`` (the paper's experiment), optional overlays such as ``config.demo.yaml`` merged over
it key by key (Snakemake's ``--configfile config.yaml config.demo.yaml``), then checked against and
filled with the defaults of ``workflow/schemas/config.schema.yaml``, as
``workflow/rules/common.smk`` does before any job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssimrecon.config.check import check_config, merge_config
from ssimrecon.errors import ConfigError
from ssimrecon_bench.core import BenchError

PAPER_CONFIG = "config.yaml"
DEMO_CONFIG = "config.demo.yaml"
SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise BenchError(f"{path}: no such config file (pass --workflow-dir)")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise BenchError(f"{path}: a config file must be a mapping of keys")
    return loaded


def load_config(workflow_dir: Path, overlays: Sequence[str] = ()) -> dict[str, Any]:
    """``<workflow_dir>/config.yaml`` with each overlay file merged over it, schema defaults filled.

    Raises BenchError naming the files when one is missing or the merged config breaks the schema.
    """
    workflow_dir = Path(workflow_dir)
    names = [PAPER_CONFIG, *overlays]
    config: dict[str, Any] = {}
    for name in names:
        merge_config(config, _read_yaml(workflow_dir / name))
    schema = workflow_dir / SCHEMA
    if not schema.is_file():
        raise BenchError(f"{schema}: no such schema file (pass --workflow-dir)")
    try:
        return check_config(config, schema)
    except ConfigError as exc:
        raise BenchError(f"{' + '.join(names)} in {workflow_dir}: {exc}") from exc
