"""Row ``demo``: ``make demo`` from clean results in a temporary copy of the workflow.

``snakemake --cores N --configfile config.yaml config.demo.yaml``, then its ``--report`` and
``ssimrecon summary``: wall time of the three (target: <= 10 min), with the slowest rules' job times
from the workflow's benchmark files.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from ssimrecon_bench.config import DEMO_CONFIG, PAPER_CONFIG, load_config
from ssimrecon_bench.core import BenchError, Context, Options, Row, at_most
from ssimrecon_bench.processes import env_for_children, run_logged, tail
from ssimrecon_bench.workspace import copy_workflow


def rule_seconds(benchmarks: Path) -> dict[str, float]:
    """Seconds of job time per rule, summed over the Snakemake benchmark TSVs under ``benchmarks``
    (``<rule>/<wildcards>.tsv`` or ``<rule>.tsv``)."""
    seconds: dict[str, float] = {}
    for tsv in sorted(benchmarks.rglob("*.tsv")):
        rel = tsv.relative_to(benchmarks)
        rule = rel.parts[0] if len(rel.parts) > 1 else tsv.stem
        with open(tsv) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows and "s" in rows[0]:
            seconds[rule] = seconds.get(rule, 0.0) + sum(float(r["s"]) for r in rows)
    return seconds


def bench_demo(opts: Options, ctx: Context) -> list[Row]:
    """``make demo`` in a fresh copy: snakemake, report, summary; wall time of the three."""
    results = Path("results") / str(load_config(opts.workflow_dir, (DEMO_CONFIG,))["experiment"])
    ws = copy_workflow(opts.workflow_dir, opts.work_dir / "demo")
    env = env_for_children()
    log_path = (opts.log_dir or opts.work_dir) / "demo.log"
    if log_path.exists():
        log_path.unlink()
    configs = ["--configfile", PAPER_CONFIG, DEMO_CONFIG]
    snake = [sys.executable, "-m", "snakemake"]
    ssimrecon = str(Path(sys.executable).parent / "ssimrecon")
    steps = [
        ("snakemake", [*snake, "--cores", str(opts.demo_cores), *configs], 3600),
        ("report", [*snake, "--cores", "1", *configs, "--report", f"{results}/report.html"], 900),
        ("summary", [ssimrecon, "summary", "--results", str(results)], 300),
    ]
    seconds: dict[str, float] = {}
    for name, cmd, timeout in steps:
        proc, secs = run_logged(cmd, ws, env, log_path, timeout)
        seconds[name] = secs
        if proc.returncode != 0:
            raise BenchError(
                f"demo step '{name}' failed (exit {proc.returncode}); log {log_path}: "
                f"{tail(proc.stderr, 800)}"
            )
    per_rule = rule_seconds(ws / results / "benchmarks")
    ctx.notes["demo"] = {"step_seconds": seconds, "rule_seconds": per_rule, "log": str(log_path)}
    total = sum(seconds.values())
    slowest = ", ".join(
        f"{k} {v:.0f}s" for k, v in sorted(per_rule.items(), key=lambda kv: -kv[1])[:3]
    )
    return [
        Row(
            "demo_wall_time",
            total / 60.0,
            "min",
            at_most(10.0),
            f"make demo from clean results, --cores {opts.demo_cores}: snakemake "
            f"{seconds['snakemake']:.0f}s + "
            f"report {seconds['report']:.0f}s + summary {seconds['summary']:.0f}s; slowest rules "
            "(job time): "
            f"{slowest or 'n/a'}",
        ),
    ]
