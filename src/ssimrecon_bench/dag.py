"""Row ``dag``: the no-op dry run of the paper's complete DAG (target: <= 5 s).

A temporary copy of the workflow with the paper's config and every output of its DAG present (581
subjects, 254/64/263 split, 581 shards, models, metrics, tables, figures: placeholders created from
``snakemake --summary``, then ``snakemake --touch``): wall time of ``snakemake -n``, which must say
there is nothing to be done.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from ssimrecon_bench.core import BenchError, Context, Options, Row, at_most
from ssimrecon_bench.processes import env_for_children, run_logged, tail
from ssimrecon_bench.workspace import copy_workflow

NOTHING_TO_DO = "Nothing to be done"


def _fake_subjects(n: int) -> list[str]:
    return [f"IXI{i:03d}" for i in range(2, 2 + n)]


def _write_subjects_and_split(out: Path, ws: Path, config: dict[str, Any]) -> None:
    """subjects.csv (config ``source.n_subjects`` rows, qc's columns) and split.csv in ``out``."""
    import pandas as pd

    from ssimrecon.data.split import make_split

    n_subjects = config["source"].get("n_subjects")
    if n_subjects is None:
        raise BenchError("config key 'source.n_subjects' is needed to build the paper DAG")
    ids = _fake_subjects(int(n_subjects))
    sites = ("Guys", "HH", "IOP")
    pd.DataFrame(
        {
            "subject": ids,
            "site": [sites[i % 3] for i in range(len(ids))],
            "file": [
                f"{out.relative_to(ws)}/nifti/{s}-{sites[i % 3]}-{828 + i:04d}-T1.nii.gz"
                for i, s in enumerate(ids)
            ],
            "shape": "256x256x150",
            "voxel_size": "0.9375x0.9375x1.2",
            "orientation": "PSR",
            "intensity_min": 0.0,
            "intensity_max": 1000.0,
            "md5": "0" * 32,
        }
    ).to_csv(out / "subjects.csv", index=False)
    split = config["split"]
    n_test = split.get("n_test")
    table = make_split(
        ids,
        int(split["n_train"]),
        int(split["n_val"]),
        None if n_test is None else int(n_test),
        int(split["seed"]),
    )
    table.to_csv(out / "split.csv", index=False)


def build_paper_dag(
    workflow_dir: Path,
    dst: Path,
    config: dict[str, Any],
    env: dict[str, str],
    log_path: Path | None,
) -> tuple[Path, int]:
    """A copy of the workflow whose paper DAG is complete: returns (workspace, number of outputs
    made).

    subjects.csv and split.csv (made by :func:`ssimrecon.data.split.make_split`) are real; every
    other output listed by ``snakemake --summary`` is an empty placeholder (a folder for outputs
    without a suffix, e.g. ``nifti``), then ``snakemake --touch`` brings their times and Snakemake's
    metadata in DAG order.
    """
    ws = copy_workflow(workflow_dir, dst)
    out = ws / "results" / str(config["experiment"])
    out.mkdir(parents=True, exist_ok=True)
    _write_subjects_and_split(out, ws, config)
    snake = [sys.executable, "-m", "snakemake"]
    proc, _ = run_logged([*snake, "--summary"], ws, env, log_path, 600)
    if proc.returncode != 0:
        raise BenchError(f"snakemake --summary failed: {tail(proc.stderr, 800)}")
    made = 0
    for line in proc.stdout.splitlines()[1:]:
        name = line.split("\t", 1)[0].strip()
        if not name or name.startswith(("/", "..")):
            continue
        path = ws / name
        if path.exists():
            continue
        if not Path(name).suffix:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        made += 1
    proc, _ = run_logged([*snake, "--touch", "--cores", "1"], ws, env, log_path, 1800)
    if proc.returncode != 0:
        raise BenchError(f"snakemake --touch failed: {tail(proc.stderr, 800)}")
    return ws, made


def bench_dag(opts: Options, ctx: Context) -> list[Row]:
    """Median seconds of three ``snakemake -n`` over the complete paper DAG."""
    env = env_for_children()
    log_path = (opts.log_dir or opts.work_dir) / "dag.log"
    if log_path.exists():
        log_path.unlink()
    ws, made = build_paper_dag(opts.workflow_dir, opts.work_dir / "dag", opts.config, env, log_path)
    n_shards = len(list((ws / "results" / str(opts.config["experiment"]) / "shards").glob("*.h5")))
    times = []
    for _ in range(3):
        proc, secs = run_logged([sys.executable, "-m", "snakemake", "-n"], ws, env, log_path, 600)
        text = proc.stdout + proc.stderr
        if proc.returncode != 0 or NOTHING_TO_DO not in text:
            raise BenchError(
                f"snakemake -n on the complete paper DAG is not a no-op (exit {proc.returncode}): "
                f"{tail(text, 800)}"
            )
        times.append(secs)
    return [
        Row(
            "dag_noop_dryrun_s",
            statistics.median(times),
            "s",
            at_most(5.0),
            f"snakemake -n, paper config, {n_shards} shards, {made} placeholder outputs; median "
            "of 3 "
            f"({', '.join(f'{t:.2f}' for t in times)})",
        )
    ]
