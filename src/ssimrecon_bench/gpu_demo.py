"""The short real training of ``benchmarks/gpu/run.sh``: the demo pipeline without Snakemake.

A bare GPU machine has torch but neither Snakemake nor a package registry, so this module runs the
workflow's own commands (``python -m ssimrecon.cli <command>``, with the ``--config-json`` values
of :mod:`ssimrecon.config.jobs`, as the rules do) in the rules' order:

1. data: demo-archive -> extract -> qc -> split -> mask -> one shard per subject (in parallel);
2. training: every network of ``networks:`` at once on the one device, each stopped by SIGTERM
   when its wall-clock share ``--train-s`` (seconds, from its start) is spent; the Trainer saves its
   state on the signal and the best-validation ``best.pt`` so far stays published (the paper's
   selection rule within a fixed time budget);
3. evaluation of zero-filled and every network on the test split, Table 1, Figure 2, the curves.

Outputs under ``--results`` as the workflow lays them out (``table1.*``, ``figures/``,
``metrics/``, ``models/*/history.csv``, ``logs/``), plus ``gpu_demo.json``: per network the epochs
completed, the best epoch, the seconds trained and the device, and the stage timings (s).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ssimrecon.config.jobs import (
    as_json,
    evaluation_job,
    figure2_job,
    mask_job,
    table_job,
    train_job,
)
from ssimrecon.config.runs import expand_runs, number_label
from ssimrecon.errors import SsimreconError
from ssimrecon_bench.config import load_config
from ssimrecon_bench.core import run_script

#: exit status of a training stopped by SIGTERM after saving its state (128 + signal number)
STOPPED_BY_SIGTERM = 128 + int(signal.SIGTERM)


#: one command's options: ``--flag`` -> a value, several values, or True (a flag without value)
Options = dict[str, Any]


def argv_of(options: Options) -> list[str]:
    """``{"output": p, "shards": [a, b], "zero-filled": True}`` -> ``--output p --shards a b
    --zero-filled``."""
    argv: list[str] = []
    for flag, value in options.items():
        argv.append(f"--{flag}")
        if value is True:
            continue
        argv += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return argv


class Pipeline:
    """Runs ``python -m ssimrecon.cli`` commands for one experiment folder, logging each."""

    def __init__(self, config: dict[str, Any], results: Path, python: str = sys.executable):
        self.config, self.results, self.python = config, results, python
        self.logs = results / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.seconds: dict[str, float] = {}
        self.children: list[subprocess.Popen] = []

    def start(self, command: str, log_name: str, options: Options) -> subprocess.Popen:
        """The command in the background, stderr and stdout to ``logs/<log_name>.log``."""
        log = self.logs / f"{log_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [self.python, "-m", "ssimrecon.cli", command, *argv_of(options)]
        with open(log, "w") as handle:
            proc = subprocess.Popen(argv, stdout=handle, stderr=handle)
        self.children.append(proc)
        return proc

    def run(self, command: str, log_name: str, options: Options, timeout: float = 600.0) -> None:
        """The command to completion; SsimreconError naming its log if it fails."""
        t0 = time.perf_counter()
        proc = self.start(command, log_name, options)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            message = f"{command}: timed out after {timeout:.0f}s ({self.log_tail(log_name)})"
            raise SsimreconError(message) from None
        if code != 0:
            raise SsimreconError(f"{command}: exit {code}; last lines of {self.log_tail(log_name)}")
        self.seconds[log_name] = round(time.perf_counter() - t0, 2)

    def stop_children(self) -> None:
        """SIGTERM to every command still running (a training saves its state on it)."""
        for proc in self.children:
            if proc.poll() is None:
                proc.terminate()

    def log_tail(self, log_name: str) -> str:
        """``logs/<log_name>.log`` and its last 5 lines, for an error message."""
        path = self.logs / f"{log_name}.log"
        lines = path.read_text(errors="replace").splitlines()[-5:] if path.is_file() else []
        return f"{path}: " + " | ".join(lines)

    @property
    def mask(self) -> Path:
        """The mask file of ``mask.acceleration``."""
        label = number_label(self.config["mask"]["acceleration"])
        return self.results / "masks" / f"R{label}.npz"


def build_data(pipe: Pipeline, jobs: int) -> dict[str, list[Path]]:
    """Demo archive to shards (``jobs`` at a time); returns split name -> shard paths."""
    config, out = pipe.config, pipe.results
    archive, subjects, split_csv = (
        out / "source/IXI-T1-demo.tar",
        out / "subjects.csv",
        out / "split.csv",
    )
    demo = as_json(config["source"]["demo"])
    pipe.run("demo-archive", "demo_archive", {"output": archive, "config-json": demo})
    pipe.run("extract", "extract", {"archive": archive, "output-dir": out / "nifti"})
    qc = {"input-dir": out / "nifti", "output": subjects}
    pipe.run("qc", "qc", {**qc, "config-json": as_json({"exclude": config["exclude"]})})
    split = {"subjects": subjects, "output": split_csv, "config-json": as_json(config["split"])}
    pipe.run("split", "split", split)
    label = number_label(config["mask"]["acceleration"])
    mask = {"config-json": as_json(mask_job(config, label)), "output": pipe.mask}
    pipe.run("mask", f"mask_R{label}", {**mask, "figure": out / f"figures/mask_R{label}.png"})
    import pandas as pd

    table = pd.read_csv(split_csv, dtype=str)
    prep = {"subjects-csv": subjects, "config-json": as_json(config["preprocessing"])}

    def shard(subject: str) -> None:
        where = {"subject": subject, "output": out / f"shards/{subject}.h5"}
        pipe.run("shard", f"shards/{subject}", {**prep, **where})

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(shard, table["subject"]))
    pipe.seconds["shards"] = round(time.perf_counter() - t0, 2)
    return {
        which: [out / f"shards/{s}.h5" for s in sorted(table.loc[table.split == which].subject)]
        for which in ("train", "val", "test")
    }


def train_all(
    pipe: Pipeline, shards: dict[str, list[Path]], train_s: float, threads: int
) -> dict[str, Any]:
    """Train every run at once; SIGTERM each ``train_s`` seconds after its start, or after its
    first epoch if that ends later (so that every run has a best.pt).  Returns run ->
    {exit, seconds, stopped_by_budget, epochs, best_epoch, ...}; a run that fails or ends without a
    ``best.pt`` raises SsimreconError."""
    common = {"train-shards": shards["train"], "val-shards": shards["val"], "mask": pipe.mask}
    procs: dict[str, tuple[subprocess.Popen, float]] = {}
    for name, run in expand_runs(pipe.config).items():
        folder = pipe.results / "models" / name
        options = {
            "network": name,
            **common,
            "config-json": as_json(train_job(pipe.config, run)),
            "threads": str(threads),
            "best": folder / "best.pt",
            "history": folder / "history.csv",
            "state-dir": pipe.results / "state" / name,
        }
        procs[name] = (pipe.start("train", f"train/{name}", options), time.perf_counter())
    report: dict[str, Any] = {}
    for name, (proc, t0) in procs.items():
        history = pipe.results / "models" / name / "history.csv"
        try:
            code = proc.wait(timeout=max(0.0, t0 + train_s - time.perf_counter()))
            stopped = False
        except subprocess.TimeoutExpired:
            while proc.poll() is None and not history.is_file():
                time.sleep(0.5)  # the budget stops a run only once it has a first epoch
            proc.send_signal(signal.SIGTERM)  # saves last.pt at the next batch and exits 143
            code, stopped = proc.wait(timeout=120), True
        seconds = round(time.perf_counter() - t0, 1)
        report[name] = {"exit": code, "seconds": seconds, "stopped_by_budget": stopped}
        best = pipe.results / "models" / name / "best.pt"
        if code not in (0, STOPPED_BY_SIGTERM) or not best.is_file():
            log = pipe.log_tail(f"train/{name}")
            raise SsimreconError(f"train {name}: exit {code}, best.pt {best.is_file()}; {log}")
        report[name].update(history_summary(pipe.results / "models" / name / "history.csv"))
    return report


def history_summary(path: Path) -> dict[str, Any]:
    """Epochs completed, the best epoch (lowest validation loss) and its validation SSIM/PSNR."""
    import pandas as pd

    history = pd.read_csv(path)
    best = history.loc[history["val_loss"].idxmin()]
    return {
        "epochs": int(history["epoch"].max()),
        "best_epoch": int(best["epoch"]),
        "best_val_ssim": float(best["val_ssim"]),
        "best_val_psnr": float(best["val_psnr"]),
        "train_slices_per_s": float(history["slices_per_s"].median()),
    }


def evaluate_and_report(pipe: Pipeline, shards: dict[str, list[Path]], runs: Sequence[str]) -> None:
    """Zero-filled and every run on the test split (in parallel), then Table 1, Figure 2, curves."""
    out, test, metrics = pipe.results, shards["test"], pipe.results / "metrics" / "test"
    methods = ["zero-filled", *runs]
    common = {
        "shards": test,
        "mask": pipe.mask,
        "config-json": as_json(evaluation_job(pipe.config)),
    }

    def evaluate(method: str) -> None:
        which = (
            {"zero-filled": True} if method == "zero-filled" else {"model": best_pt(out, method)}
        )
        files = {"output": metrics / f"{method}.csv", "volumes": metrics / f"{method}.volumes.csv"}
        options = {"method": method, **which, **common, **files}
        pipe.run("evaluate", f"evaluate/test/{method}", options)

    with ThreadPoolExecutor(len(methods)) as pool:
        list(pool.map(evaluate, methods))
    table = {
        "split": "test",
        "metrics": [f"{m}={metrics / m}.csv" for m in methods],
        "volumes": [f"{m}={metrics / m}.volumes.csv" for m in methods],
        "config-json": as_json(table_job(pipe.config)),
    }
    written = {ext: out / f"table1.{ext}" for ext in ("csv", "md", "html")}
    pipe.run("table", "table1", {**table, **written})
    figure = {
        "shards": test,
        "mask": pipe.mask,
        "model": [f"{r}={best_pt(out, r)}" for r in runs],
        "config-json": as_json(figure2_job(pipe.config)),
    }
    pngs = {"png": out / "figures/figure2.png", "pdf": out / "figures/figure2.pdf"}
    pipe.run("figure2", "figure2", {**figure, **pngs})
    histories = [f"{r}={out / 'models' / r / 'history.csv'}" for r in runs]
    curves = {"history": histories, "output": out / "figures/training_curves.png"}
    pipe.run("curves", "curves", curves)


def best_pt(results: Path, run: str) -> Path:
    return results / "models" / run / "best.pt"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ssimrecon_bench.gpu_demo",
        description="The demo pipeline without Snakemake: data, timed training, Table 1, Figure 2.",
    )
    p.add_argument("--results", type=Path, required=True, help="experiment folder to write")
    p.add_argument("--workflow-dir", type=Path, default=Path("."), help="folder of config.yaml")
    p.add_argument(
        "--overlay",
        nargs="*",
        default=["config.demo.yaml"],
        help="config files merged over config.yaml, relative to --workflow-dir",
    )
    p.add_argument("--train-s", type=float, default=75.0, help="wall-clock seconds per network")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel shard jobs")
    p.add_argument("--threads", type=int, default=4, help="CPU threads of each training")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the three phases; write ``gpu_demo.json`` (also after a failure, with the error)."""
    args = _parser().parse_args(argv)
    config = load_config(args.workflow_dir.resolve(), args.overlay)
    results = args.results.resolve()
    pipe = Pipeline(config, results)
    summary: dict[str, Any] = {"overlays": args.overlay, "train_s": args.train_s}

    def stopped(signum: int, frame: object) -> None:
        raise SsimreconError(f"stopped by signal {signum} (time limit of run.sh)")

    signal.signal(signal.SIGTERM, stopped)
    try:
        import torch

        summary["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
        summary["torch"] = torch.__version__
        shards = build_data(pipe, args.jobs)
        summary["subjects"] = {k: len(v) for k, v in shards.items()}
        summary["training"] = train_all(pipe, shards, args.train_s, args.threads)
        evaluate_and_report(pipe, shards, list(summary["training"]))
        summary["table1_md"] = (results / "table1.md").read_text()
    except SsimreconError as exc:
        summary["error"] = str(exc)
    finally:
        pipe.stop_children()
        summary["seconds"] = pipe.seconds
        (results / "gpu_demo.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "table1_md"}, indent=2))
    print(summary.get("table1_md", ""))
    if "error" in summary:
        sys.stderr.write(f"error: {summary['error']}\n")
        return 1
    return 0


if __name__ == "__main__":
    run_script(main)
