"""``ssimrecon bench``: how fast the parts of the paper's pipeline are, measured side by side in one
run.

Rows (``--only`` picks some; ``--quick`` uses fewer repetitions, a smaller training image and skips
``demo`` and ``dag`` unless ``--only`` names them):

``ssim``    SSIM loss forward+backward on 4x1x256x256 float32:
:func:`ssimrecon.functional.ssim.ssim` vs
            ``pytorch_msssim.ssim(data_range=1)`` (ratio of times, best of interleaved rounds), and
            the
            largest difference of the project's SSIM from scikit-image's (target: >= 5x, <= 1e-5).
``train``   The paper U-Net training step (Adam, batch and model from config.yaml, 256x256) on CPU:
            plain fp32 eager NCHW with glibc malloc vs the project's default fast path (tcmalloc
            when
            installed, channels_last, bf16 autocast on CPUs with native bf16, SSIM in fp32), each in
            its
            own process so the allocator can differ (target: >= 3x).  Also the fast path without
            tcmalloc, the U-Net's FLOPs per slice, and, at the paper's image size, the projected
            hours
            of the paper's full run at the measured throughput.  On a CUDA machine the same on the
            GPU.
``shards``  :func:`ssimrecon.kspace.shards.make_shard` on an IXI-sized (256x256x150) pseudo-subject
with the
            paper's preprocessing and mask: volumes/s including NIfTI load and HDF5 write (target:
            >= 2).
``loader``  :func:`ssimrecon.training.dataset.make_loader` over those shards with the configured
batch size and
            workers: slices/s delivered (target: >= 2000).
``demo``    ``make demo`` from clean results in a temporary copy of the workflow: snakemake run,
report
            and summary, wall time (target: <= 10 min).
``dag``     A temporary copy of the workflow with the paper's config and every output of its DAG
present
            (581 subjects, 254/64 split, 318 shards, models, metrics, tables, figures: placeholders
            created
            from ``snakemake --summary``, then ``snakemake --touch``): wall time of ``snakemake
            -n``, which
            must say there is nothing to be done (target: <= 5 s).

Output: a table on stdout, ``<output>/summary.csv`` (metric, value, unit, target, met) and
``<output>/details.json`` (machine, versions, per-row notes).  A row that fails is reported with
value
NaN and met False, never dropped.  The command re-executes itself with tcmalloc preloaded
(:func:`ssimrecon.training.fastpath.cli_preload`) as ``ssimrecon train`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssimrecon.errors import SsimreconError
from ssimrecon.training.fastpath import (
    DISABLE_VAR,
    REEXEC_MARKER,
    cli_preload,
    cpu_supports_bf16,
    strip_tcmalloc,
    tcmalloc_loaded,
    tcmalloc_path,
)

ROWS = ("ssim", "train", "shards", "loader", "demo", "dag")
QUICK_SKIPPED = ("demo", "dag")
SUMMARY_COLUMNS = ("metric", "value", "unit", "target", "met")

#: the paper's settings, used when no config.yaml is found (kept equal to config.yaml)
PAPER_DEFAULTS: dict[str, Any] = {
    "experiment": "ixi-paper",
    "split": {"n_train": 254, "n_val": 64},
    "preprocessing": {
        "readout_axis": 2,
        "image_size": [256, 256],
        "downsample": 1,
        "slice_stride": 1,
        "scale_percentile": 99.5,
        "phase": "none",
    },
    "mask": {"acceleration": 10, "center_size": 16, "seed": 42, "power": 2.0},
    "model": {
        "base_channels": 64,
        "depth": 4,
        "convs_per_stage": 3,
        "residual": False,
        "norm": "instance",
    },
    "training": {"epochs": 100, "batch_size": 4, "num_workers": 2, "min_signal_fraction": 0.05},
    "networks": {"Net-mse": {}, "Net-mse-dssim": {}},
    "source": {"n_subjects": 581},
}
# : the issue's estimate of the paper's training set (254 volumes x ~150 slices), used for the
# projection
#: when the shards row has not measured how many slices a volume gives
ISSUE_TRAIN_SLICES = 38_000
# : forward-only cost of a validation slice relative to a training step (forward + backward ~ 3
# forwards)
VAL_COST = 1.0 / 3.0
GPU_HOURS_TARGET = 3.0


class BenchError(SsimreconError):
    """A benchmark row could not be measured."""


# -----------------------------------------------------------------------------------------------
# results
@dataclass(frozen=True)
class Target:
    """``value op threshold`` with op ``>=`` or ``<=``; written to summary.csv as e.g. ``>= 5``."""

    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"target operator must be >= or <=, got {self.op!r}")

    def met(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"

    @classmethod
    def parse(cls, text: str) -> Target | None:
        """Inverse of ``str()``; empty text -> None."""
        text = (text or "").strip()
        if not text:
            return None
        return cls(text[:2], float(text[2:]))


def at_least(threshold: float) -> Target:
    return Target(">=", threshold)


def at_most(threshold: float) -> Target:
    return Target("<=", threshold)


@dataclass
class Row:
    """One line of summary.csv; ``target`` None marks an informational row (met left empty)."""

    metric: str
    value: float
    unit: str
    target: Target | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value)

    def csv_dict(self) -> dict[str, str]:
        met = self.met
        return {
            "metric": self.metric,
            "value": repr(float(self.value)),
            "unit": self.unit,
            "target": "" if self.target is None else str(self.target),
            "met": "" if met is None else str(met),
        }


@dataclass
class Options:
    """What to measure and how hard (see the CLI)."""

    quick: bool = False
    workflow_dir: Path = Path(".")
    work_dir: Path = Path(".")
    config: dict[str, Any] = field(default_factory=dict)
    train_size: tuple[int, int] | None = None
    train_steps: int | None = None
    train_rounds: int | None = None
    train_devices: tuple[str, ...] = ("cpu",)
    volume_shape: tuple[int, int, int] = (256, 256, 150)
    image_size: tuple[int, int] | None = None
    demo_cores: int = 2
    log_dir: Path | None = None


@dataclass
class Context:
    """Facts one row hands to another (shards for the loader, slices per volume for the
    projection)."""

    shards: list[Path] = field(default_factory=list)
    slices_per_volume: float | None = None
    train: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


# -----------------------------------------------------------------------------------------------
# helpers
def load_config(workflow_dir: Path) -> dict[str, Any]:
    """``<workflow_dir>/config.yaml`` (the paper's experiment) over :data:`PAPER_DEFAULTS`."""
    import yaml

    merged = json.loads(json.dumps(PAPER_DEFAULTS))
    path = Path(workflow_dir) / "config.yaml"
    if path.is_file():
        loaded = yaml.safe_load(path.read_text()) or {}
        for key, value in loaded.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def best_of_rounds(
    fns: dict[str, Callable[[], Any]], rounds: int, iters: int, warmup: int = 2
) -> dict[str, float]:
    """Seconds per call of each function: the best round mean, rounds interleaved (a, b, a, b, ...).

    Interleaving shares any background load between the contenders, so their ratio stays fair on a
    busy machine; the best round is the least disturbed one.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {name: math.inf for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / iters)
    return best


def _env_for_children(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses: the venv first on PATH, without the preload this process
    added."""
    env = dict(os.environ)
    if env.get(REEXEC_MARKER):  # we preloaded tcmalloc ourselves: children decide for themselves
        env = strip_tcmalloc(env)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def _tail(text: str, n: int = 3000) -> str:
    return text[-n:] if text else ""


def _run_logged(
    cmd: Sequence[str], cwd: Path, env: dict[str, str], log_path: Path | None, timeout: float
) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``cmd`` (output captured, appended to ``log_path``); returns (process, seconds)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(cmd)} timed out after {timeout:.0f}s") from exc
    seconds = time.perf_counter() - t0
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as fh:
            fh.write(f"$ {' '.join(cmd)}  (cwd {cwd}, {seconds:.1f}s, exit {proc.returncode})\n")
            fh.write(proc.stdout or "")
            fh.write(proc.stderr or "")
            fh.write("\n")
    return proc, seconds


# -----------------------------------------------------------------------------------------------
# row 1: SSIM
def ssim_images(n: int = 4, size: int = 256, seed: int = 0) -> tuple[Any, Any]:
    """Two (n,1,size,size) float32 tensors in [0, 1]: smooth random 'anatomy' and a noisy copy."""
    import numpy as np
    import torch
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((n, size, size)), sigma=(0, 4, 4))
    lo = base.min(axis=(1, 2), keepdims=True)
    hi = base.max(axis=(1, 2), keepdims=True)
    ref = (base - lo) / (hi - lo)
    est = np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0.0, 1.0)
    as_t = lambda a: torch.from_numpy(a.astype(np.float32)).unsqueeze(1)  # noqa: E731
    return as_t(ref), as_t(est)


def bench_ssim(opts: Options, ctx: Context) -> list[Row]:
    import pytorch_msssim
    import torch
    from skimage.metrics import structural_similarity

    from ssimrecon.functional.ssim import ssim

    ref, est = ssim_images()
    rounds, iters = (3, 3) if opts.quick else (7, 10)

    def ours() -> None:
        x = est.clone().requires_grad_(True)
        (1.0 - ssim(x, ref, 1.0)).backward()

    def theirs() -> None:
        x = est.clone().requires_grad_(True)
        (1.0 - pytorch_msssim.ssim(x, ref, data_range=1.0, size_average=True)).backward()

    times = best_of_rounds({"ours": ours, "msssim": theirs}, rounds, iters)

    with torch.no_grad():
        per_image = ssim(est, ref, 1.0, reduction="none").double().numpy()
        msssim_img = (
            pytorch_msssim.ssim(est, ref, data_range=1.0, size_average=False).double().numpy()
        )
    sk = [
        structural_similarity(
            ref[i, 0].double().numpy(),
            est[i, 0].double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        for i in range(ref.shape[0])
    ]
    diff = float(max(abs(a - b) for a, b in zip(per_image, sk)))
    diff_msssim = float(max(abs(a - b) for a, b in zip(msssim_img, sk)))
    shape = "x".join(map(str, ref.shape))
    threads = torch.get_num_threads()
    note = f"{shape} float32, best of {rounds} interleaved rounds x {iters}, {threads} threads"
    return [
        Row(
            "ssim_speedup_vs_pytorch_msssim",
            times["msssim"] / times["ours"],
            "x",
            at_least(5.0),
            note,
        ),
        Row(
            "ssim_max_abs_diff_vs_skimage",
            diff,
            "SSIM",
            at_most(1e-5),
            f"{ref.shape[0]} image pairs, float32 vs float64",
        ),
        Row("ssim_fwd_bwd_ms", times["ours"] * 1e3, "ms", None, "ssimrecon.functional.ssim.ssim"),
        Row(
            "pytorch_msssim_fwd_bwd_ms",
            times["msssim"] * 1e3,
            "ms",
            None,
            "pytorch_msssim.ssim, data_range=1",
        ),
        Row("pytorch_msssim_max_abs_diff_vs_skimage", diff_msssim, "SSIM", None, "for reference"),
    ]


# -----------------------------------------------------------------------------------------------
# row 2: training step
def unet_flops_per_slice(
    model_cfg: dict[str, Any], size: tuple[int, int], backward: bool = True
) -> float:
    """FLOPs of the U-Net for one (1,1,H,W) slice, forward (+ backward), counted on the meta
    device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ssimrecon.training.step import build_model

    model = build_model(model_cfg).to("meta")
    x = torch.zeros(1, 1, *size, device="meta")
    with FlopCounterMode(display=False) as counter:
        if backward:
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)
    return float(counter.get_total_flops())


def projected_hours(
    slices_per_s: float,
    train_slices: float,
    val_slices: float,
    epochs: int,
    networks: int,
    val_cost: float = VAL_COST,
) -> float:
    """Hours for ``networks`` x ``epochs`` of training at ``slices_per_s`` training throughput.

    Each epoch costs ``train_slices`` training steps plus ``val_slices`` forward passes, a forward
    pass
    counted as ``val_cost`` of a training step (a backward pass costs about two forwards).
    """
    if not slices_per_s > 0:
        return math.nan
    seconds = networks * epochs * (train_slices + val_cost * val_slices) / slices_per_s
    return seconds / 3600.0


def _train_worker(spec: dict[str, Any]) -> int:
    """Child process of the train row: one measurement, one JSON line on stdout."""
    import torch

    from ssimrecon.training.step import train_step_throughput

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    kwargs: dict[str, Any] = {"steps": int(spec["steps"]), "device": spec["device"]}
    if "warmup" in inspect.signature(train_step_throughput).parameters:
        kwargs["warmup"] = int(spec["warmup"])
    sps = train_step_throughput(
        spec["model"], int(spec["batch_size"]), tuple(spec["size"]), bool(spec["fast"]), **kwargs
    )
    device = str(spec["device"])
    print(
        json.dumps(
            {
                "slices_per_s": float(sps),
                "tcmalloc": tcmalloc_loaded(),
                "threads": torch.get_num_threads(),
                "cpu_bf16": cpu_supports_bf16(),
                "device": device,
                "device_name": torch.cuda.get_device_name()
                if device.startswith("cuda")
                else platform.processor(),
            }
        ),
        flush=True,
    )
    return 0


def _measure_train(spec: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "ssimrecon_bench.suite", "--train-worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"training step measurement timed out after {timeout:.0f}s") from exc
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"training step measurement failed (exit {proc.returncode}): {_tail(proc.stderr, 1500)}"
        )
    return json.loads(lines[-1])


def bench_train(opts: Options, ctx: Context) -> list[Row]:
    """Plain vs fast training step, each variant in its own process (the allocator is per
    process)."""
    cfg = opts.config
    paper_size = tuple(int(s) for s in cfg["preprocessing"]["image_size"])
    size = opts.train_size or ((128, 128) if opts.quick else paper_size)
    steps = opts.train_steps or (2 if opts.quick else 3)
    warmup = 1 if opts.quick else 2
    rounds = opts.train_rounds or (2 if opts.quick else 3)
    model_cfg = dict(cfg["model"])
    batch = int(cfg["training"]["batch_size"])
    lib = tcmalloc_path()
    base_env = strip_tcmalloc(_env_for_children())
    plain_env = {**base_env, DISABLE_VAR: "1"}
    fast_env = dict(base_env)
    if lib:
        fast_env["LD_PRELOAD"] = lib + (
            ":" + base_env["LD_PRELOAD"] if base_env.get("LD_PRELOAD") else ""
        )
        fast_env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    rows: list[Row] = []
    flops = unet_flops_per_slice(model_cfg, size)
    size_txt = f"{size[0]}x{size[1]}"
    rows.append(
        Row(
            "unet_gflop_per_slice_fwd_bwd",
            flops / 1e9,
            "GFLOP",
            None,
            f"{size_txt}, conv/matmul FLOPs (torch FlopCounterMode)",
        )
    )
    for device in opts.train_devices:
        prefix = "train" if device == "cpu" else "gpu_train"
        spec = {
            "model": model_cfg,
            "batch_size": batch,
            "size": list(size),
            "steps": steps,
            "warmup": warmup,
            "device": device,
        }
        per_step = 60.0 if device == "cpu" else 10.0
        timeout = 600 + per_step * (steps + warmup) * max(1.0, size[0] * size[1] / 65536)
        variants = [("plain", False, plain_env), ("fast", True, fast_env)]
        if device == "cpu" and lib and not opts.quick:
            variants.append(("fast_no_tcmalloc", True, plain_env))
        results: dict[str, dict[str, Any]] = {}
        for _ in range(rounds):  # interleaved rounds, best kept: fair under background load
            for name, fast, env in variants:
                got = _measure_train({**spec, "fast": fast}, env, timeout)
                if name not in results or got["slices_per_s"] > results[name]["slices_per_s"]:
                    results[name] = got
        ctx.train[device] = {"size": size, **results}
        plain, fast = results["plain"]["slices_per_s"], results["fast"]["slices_per_s"]
        bf16 = fast_bf16 = results["fast"]["cpu_bf16"] if device == "cpu" else True
        where = "CPU" if device == "cpu" else results["fast"].get("device_name", device)
        common = (
            f"{where}, batch {batch}, {size_txt}, best of {rounds} interleaved processes x "
            f"({warmup} warm-up + {steps} timed steps)"
        )
        rows.append(
            Row(
                f"{prefix}_fast_vs_plain_speedup",
                fast / plain,
                "x",
                at_least(3.0) if device == "cpu" else None,
                f"{common}; fast = tcmalloc {results['fast']['tcmalloc']}, channels_last, bf16 "
                "autocast "
                f"(native bf16: {bf16})",
            )
        )
        rows.append(
            Row(
                f"{prefix}_plain_slices_per_s",
                plain,
                "slices/s",
                None,
                f"fp32 eager NCHW, tcmalloc {results['plain']['tcmalloc']}",
            )
        )
        rows.append(
            Row(
                f"{prefix}_fast_slices_per_s",
                fast,
                "slices/s",
                None,
                f"tcmalloc {results['fast']['tcmalloc']}, channels_last, bf16 {fast_bf16}",
            )
        )
        if "fast_no_tcmalloc" in results:
            rows.append(
                Row(
                    f"{prefix}_fast_no_tcmalloc_slices_per_s",
                    results["fast_no_tcmalloc"]["slices_per_s"],
                    "slices/s",
                    None,
                    "channels_last + bf16, glibc malloc",
                )
            )
        rows.append(
            Row(
                f"{prefix}_fast_sustained_tflops",
                fast * flops / 1e12,
                "TFLOP/s",
                None,
                "FLOPs per slice x slices/s",
            )
        )
    ctx.notes["train"] = {"tcmalloc_library": lib, "cpu_bf16": cpu_supports_bf16()}
    return rows


def projection_rows(opts: Options, ctx: Context) -> list[Row]:
    """Projected hours of the paper's full run from each measured fast-path throughput at the paper
    size."""
    cfg = opts.config
    paper_size = tuple(int(s) for s in cfg["preprocessing"]["image_size"])
    epochs = int(cfg["training"]["epochs"])
    networks = len(cfg.get("networks") or {}) or 2
    n_train, n_val = int(cfg["split"]["n_train"]), int(cfg["split"]["n_val"])
    if ctx.slices_per_volume:
        per_volume = ctx.slices_per_volume
        source = f"{per_volume:.0f} slices/volume measured by the shards row"
    else:
        per_volume = ISSUE_TRAIN_SLICES / n_train
        source = f"~{ISSUE_TRAIN_SLICES} training slices (issue's estimate)"
    rows = []
    for device, measured in ctx.train.items():
        if tuple(measured["size"]) != paper_size:
            continue
        hours = projected_hours(
            measured["fast"]["slices_per_s"],
            per_volume * n_train,
            per_volume * n_val,
            epochs,
            networks,
        )
        gpu = device != "cpu"
        rows.append(
            Row(
                "gpu_paper_run_projected_hours" if gpu else "cpu_paper_run_projected_hours",
                hours,
                "h",
                at_most(GPU_HOURS_TARGET) if gpu else None,
                f"{networks} networks x {epochs} epochs x ({n_train} + {n_val}/3 val) volumes, "
                f"{source}",
            )
        )
    return rows


# -----------------------------------------------------------------------------------------------
# row 3: shards
def ixi_volume(work: Path, shape: tuple[int, int, int]) -> tuple[Path, str]:
    """An IXI-shaped pseudo-subject (.nii.gz, IXI field of view) in ``work``; (path, md5)."""
    import hashlib

    import numpy as np

    from ssimrecon.data import demo as demo_data

    path = work / f"IXI-bench-{'x'.join(map(str, shape))}-T1.nii.gz"
    if not path.is_file():
        voxel = tuple(v * n / s for v, n, s in zip(demo_data.IXI_VOXEL, demo_data.IXI_SHAPE, shape))
        data, affine = demo_data.synth_subject(
            tuple(shape), voxel, np.random.default_rng([2019, 0])
        )
        work.mkdir(parents=True, exist_ok=True)
        path.write_bytes(demo_data.nifti_gz_bytes(data, affine))
    return path, hashlib.md5(path.read_bytes()).hexdigest()


def _preprocessing(opts: Options) -> Any:
    from ssimrecon.kspace.preprocess import Preprocessing

    values = dict(opts.config["preprocessing"])
    if opts.image_size:
        values["image_size"] = list(opts.image_size)
    known = {k: v for k, v in values.items() if k in inspect.signature(Preprocessing).parameters}
    return Preprocessing.from_dict(known)


def _mask(opts: Options, work: Path, image_size: tuple[int, int]) -> Path:
    from ssimrecon.kspace.mask import save_mask, variable_density_mask

    m = opts.config["mask"]
    path = work / "mask.npz"
    mask = variable_density_mask(
        tuple(image_size),
        float(m["acceleration"]),
        int(m["center_size"]),
        int(m["seed"]),
        float(m.get("power", 2.0)),
    )
    save_mask(
        path,
        mask,
        acceleration=float(m["acceleration"]),
        seed=int(m["seed"]),
        center_size=int(m["center_size"]),
        power=float(m.get("power", 2.0)),
    )
    return path


def _make_shards(opts: Options, ctx: Context, timed: int) -> tuple[list[float], dict[str, float]]:
    """Write one warm-up shard (kept, and copied, for the loader) and ``timed`` timed ones
    (deleted)."""
    from ssimrecon.kspace.shards import ShardReader, make_shard

    work = opts.work_dir / "shards"
    work.mkdir(parents=True, exist_ok=True)
    volume, md5 = ixi_volume(opts.work_dir, opts.volume_shape)
    prep = _preprocessing(opts)
    mask = _mask(opts, work, prep.image_size)
    kept = work / "IXI900.h5"
    make_shard(volume, mask, "IXI900", prep, kept, source_md5=md5)
    seconds: list[float] = []
    parts = {"load": 0.0, "compute": 0.0, "write": 0.0}
    for i in range(timed):
        out = work / f"timed-{i}.h5"
        t0 = time.perf_counter()
        timings = make_shard(volume, mask, f"IXI{901 + i}", prep, out, source_md5=md5)
        seconds.append(time.perf_counter() - t0)
        for key in parts:
            parts[key] += float((timings or {}).get(key, 0.0))
        out.unlink()
    second = work / "IXI899.h5"
    shutil.copyfile(kept, second)
    ctx.shards = [kept, second]
    min_signal = float(opts.config["training"].get("min_signal_fraction", 0.0))
    with ShardReader(kept) as reader:
        signal = [float(v) for v in reader.slice_signal]
        ctx.notes["shard"] = {
            "slices": reader.num_slices,
            "shape": list(reader.shape),
            "bytes": kept.stat().st_size,
        }
    ctx.slices_per_volume = float(sum(f >= min_signal for f in signal))
    return seconds, {k: v / max(timed, 1) for k, v in parts.items()}


def bench_shards(opts: Options, ctx: Context) -> list[Row]:
    timed = 2 if opts.quick else 5
    seconds, parts = _make_shards(opts, ctx, timed)
    total = sum(seconds)
    shape = "x".join(map(str, opts.volume_shape))
    info = ctx.notes["shard"]
    return [
        Row(
            "shard_volumes_per_s",
            timed / total,
            "volumes/s",
            at_least(2.0),
            f"{timed} volumes {shape} -> {info['shape'][0]} slices "
            f"{info['shape'][1]}x{info['shape'][2]}, "
            f"{info['bytes'] / 2**20:.0f} MiB each; one process, NIfTI load + k-space + HDF5 write",
        ),
        Row("shard_load_s", parts["load"], "s/volume", None, "NIfTI read + RAS reorientation"),
        Row("shard_compute_s", parts["compute"], "s/volume", None, "slicing, scaling, FFT, mask"),
        Row("shard_write_s", parts["write"], "s/volume", None, "HDF5 write (temp file + rename)"),
        Row(
            "shard_training_slices_per_volume",
            ctx.slices_per_volume or 0.0,
            "slices",
            None,
            f"slices with slice_signal >= training.min_signal_fraction "
            f"({opts.config['training'].get('min_signal_fraction', 0.0)})",
        ),
    ]


# -----------------------------------------------------------------------------------------------
# row 4: loader
def loader_throughput(
    shards: Sequence[Path], batch_size: int, num_workers: int, min_signal: float, seconds: float
) -> tuple[float, int]:
    """Slices/s the training DataLoader delivers, after its first batch (worker start-up excluded).

    Iterates whole epochs of :class:`~ssimrecon.training.dataset.EpochSampler` until ``seconds``
    have passed;
    returns (slices/s, slices counted).  Workers are shut down before returning.
    """
    from ssimrecon.training.dataset import EpochSampler, SliceDataset, make_loader

    dataset = SliceDataset(list(shards), min_signal)
    sampler = EpochSampler(len(dataset), 0)
    loader = make_loader(dataset, batch_size, sampler, num_workers, False)
    count, t0, epoch = 0, None, 0
    try:
        while True:
            sampler.set_epoch(epoch)
            for batch in loader:
                if t0 is None:
                    t0 = time.perf_counter()
                    continue
                count += int(batch["target"].shape[0])
            epoch += 1
            if t0 is not None and time.perf_counter() - t0 >= seconds:
                break
    finally:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        dataset.close()
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    return (count / elapsed if elapsed > 0 else math.nan), count


def bench_loader(opts: Options, ctx: Context) -> list[Row]:
    if not ctx.shards:
        _make_shards(opts, ctx, timed=0)
    training = opts.config["training"]
    batch, workers = int(training["batch_size"]), int(training["num_workers"])
    min_signal = float(training.get("min_signal_fraction", 0.0))
    duration = 1.5 if opts.quick else 5.0
    sps, count = loader_throughput(ctx.shards, batch, workers, min_signal, duration)
    rows = [
        Row(
            "loader_slices_per_s",
            sps,
            "slices/s",
            at_least(2000.0),
            f"{len(ctx.shards)} shards, batch {batch}, num_workers {workers} (config), sampled "
            "k-space points "
            f"+ target, {count} slices, "
            f"tcmalloc {tcmalloc_loaded()}",
        )
    ]
    if workers != 0:
        sps0, count0 = loader_throughput(ctx.shards, batch, 0, min_signal, duration / 2)
        rows.append(
            Row(
                "loader_slices_per_s_no_workers",
                sps0,
                "slices/s",
                None,
                f"num_workers 0, {count0} slices",
            )
        )
    return rows


# -----------------------------------------------------------------------------------------------
# rows 5-6: workflow
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config.demo.yaml")
WORKFLOW_DIRS = ("workflow", "profiles", "envs")


def copy_workflow(src: Path, dst: Path) -> Path:
    """Copy the workflow (Snakefile, configs, workflow/, profiles/, envs/) without any results."""
    src, dst = Path(src), Path(dst)
    if not (src / "Snakefile").is_file():
        raise BenchError(
            f"no Snakefile in {src} (run from the repository root or pass --workflow-dir)"
        )
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for name in WORKFLOW_DIRS:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def bench_demo(opts: Options, ctx: Context) -> list[Row]:
    """``make demo`` in a fresh copy: snakemake, report, summary; wall time of the three."""
    ws = copy_workflow(opts.workflow_dir, opts.work_dir / "demo")
    env = _env_for_children()
    log_path = (opts.log_dir or opts.work_dir) / "demo.log"
    if log_path.exists():
        log_path.unlink()
    configs = ["--configfile", "config.yaml", "config.demo.yaml"]
    snake = [sys.executable, "-m", "snakemake"]
    steps = [
        ("snakemake", [*snake, "--cores", str(opts.demo_cores), *configs], 3600),
        ("report", [*snake, "--cores", "1", *configs, "--report", "results/demo/report.html"], 900),
        (
            "summary",
            [
                str(Path(sys.executable).parent / "ssimrecon"),
                "summary",
                "--results",
                "results/demo",
            ],
            300,
        ),
    ]
    seconds: dict[str, float] = {}
    for name, cmd, timeout in steps:
        proc, secs = _run_logged(cmd, ws, env, log_path, timeout)
        seconds[name] = secs
        if proc.returncode != 0:
            raise BenchError(
                f"demo step '{name}' failed (exit {proc.returncode}); log {log_path}: "
                f"{_tail(proc.stderr, 800)}"
            )
    rule_seconds: dict[str, float] = {}
    for tsv in sorted((ws / "results" / "demo" / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(ws / "results" / "demo" / "benchmarks")
        rule = rel.parts[0] if len(rel.parts) > 1 else tsv.stem
        with open(tsv) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows and "s" in rows[0]:
            rule_seconds[rule] = rule_seconds.get(rule, 0.0) + sum(float(r["s"]) for r in rows)
    ctx.notes["demo"] = {
        "step_seconds": seconds,
        "rule_seconds": rule_seconds,
        "log": str(log_path),
    }
    total = sum(seconds.values())
    slowest = ", ".join(
        f"{k} {v:.0f}s" for k, v in sorted(rule_seconds.items(), key=lambda kv: -kv[1])[:3]
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


def _fake_subjects(n: int) -> list[str]:
    return [f"IXI{i:03d}" for i in range(2, 2 + n)]


def build_paper_dag(
    workflow_dir: Path,
    dst: Path,
    config: dict[str, Any],
    env: dict[str, str],
    log_path: Path | None,
) -> tuple[Path, int]:
    """A copy of the workflow whose paper DAG is complete: returns (workspace, number of outputs
    made).

    subjects.csv (config ``source.n_subjects`` rows, qc's columns) and split.csv (made by
    :func:`ssimrecon.data.split.make_split`) are real; every other output listed by ``snakemake
    --summary``
    is an empty placeholder (a folder for outputs without a suffix, e.g. ``nifti``), then
    ``snakemake --touch`` brings their times and Snakemake's metadata in DAG order.
    """
    import pandas as pd

    from ssimrecon.data.split import make_split

    ws = copy_workflow(workflow_dir, dst)
    out = ws / "results" / str(config["experiment"])
    out.mkdir(parents=True, exist_ok=True)
    ids = _fake_subjects(int(config["source"].get("n_subjects", 581)))
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
    split = make_split(
        ids,
        int(config["split"]["n_train"]),
        int(config["split"]["n_val"]),
        int(config["split"].get("seed", 2019)),
    )
    split.to_csv(out / "split.csv", index=False)
    snake = [sys.executable, "-m", "snakemake"]
    proc, _ = _run_logged([*snake, "--summary"], ws, env, log_path, 600)
    if proc.returncode != 0:
        raise BenchError(f"snakemake --summary failed: {_tail(proc.stderr, 800)}")
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
    proc, _ = _run_logged([*snake, "--touch", "--cores", "1"], ws, env, log_path, 1800)
    if proc.returncode != 0:
        raise BenchError(f"snakemake --touch failed: {_tail(proc.stderr, 800)}")
    return ws, made


NOTHING_TO_DO = "Nothing to be done"


def bench_dag(opts: Options, ctx: Context) -> list[Row]:
    env = _env_for_children()
    log_path = (opts.log_dir or opts.work_dir) / "dag.log"
    if log_path.exists():
        log_path.unlink()
    ws, made = build_paper_dag(opts.workflow_dir, opts.work_dir / "dag", opts.config, env, log_path)
    n_shards = len(list((ws / "results" / str(opts.config["experiment"]) / "shards").glob("*.h5")))
    times = []
    for _ in range(3):
        proc, secs = _run_logged([sys.executable, "-m", "snakemake", "-n"], ws, env, log_path, 600)
        text = proc.stdout + proc.stderr
        if proc.returncode != 0 or NOTHING_TO_DO not in text:
            raise BenchError(
                f"snakemake -n on the complete paper DAG is not a no-op (exit {proc.returncode}): "
                f"{_tail(text, 800)}"
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


# -----------------------------------------------------------------------------------------------
# driver
#: row name -> (function, the metric and target reported if it fails)
ROW_FUNCS: dict[str, tuple[Callable[[Options, Context], list[Row]], str, str, Target]] = {
    "ssim": (bench_ssim, "ssim_speedup_vs_pytorch_msssim", "x", at_least(5.0)),
    "train": (bench_train, "train_fast_vs_plain_speedup", "x", at_least(3.0)),
    "shards": (bench_shards, "shard_volumes_per_s", "volumes/s", at_least(2.0)),
    "loader": (bench_loader, "loader_slices_per_s", "slices/s", at_least(2000.0)),
    "demo": (bench_demo, "demo_wall_time", "min", at_most(10.0)),
    "dag": (bench_dag, "dag_noop_dryrun_s", "s", at_most(5.0)),
}


def run_rows(
    names: Sequence[str], opts: Options, echo: Callable[[str], None] = lambda s: None
) -> tuple[list[Row], Context]:
    """Run the named rows in order; a failing row becomes one NaN row with met False and the
    error."""
    ctx = Context()
    rows: list[Row] = []
    for name in names:
        func, metric, unit, target = ROW_FUNCS[name]
        echo(f"bench: {name} ...")
        t0 = time.perf_counter()
        try:
            new = func(opts, ctx)
        except Exception as exc:  # a missed or broken row is reported, never hidden
            new = [
                Row(metric, math.nan, unit, target, f"FAILED: {type(exc).__name__}: {exc}"[:600])
            ]
        ctx.notes.setdefault("row_seconds", {})[name] = round(time.perf_counter() - t0, 2)
        for row in new:
            echo(
                f"  {row.metric} = {row.value:.4g} {row.unit}"
                + (
                    ""
                    if row.target is None
                    else f"  (target {row.target}: {'met' if row.met else 'MISSED'})"
                )
            )
        rows += new
    try:
        rows += projection_rows(opts, ctx)
    except Exception as exc:  # noqa: BLE001 - informational
        ctx.notes["projection_error"] = str(exc)
    return rows, ctx


def format_table(rows: Sequence[Row]) -> str:
    """Fixed-width table: metric, value, unit, target, met, note."""

    def fmt(v: float) -> str:
        return "nan" if not math.isfinite(v) else f"{v:.4g}"

    header = ("metric", "value", "unit", "target", "met", "note")
    body = [
        (
            r.metric,
            fmt(r.value),
            r.unit,
            "" if r.target is None else str(r.target),
            "" if r.met is None else ("yes" if r.met else "NO"),
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [header, *body]) for i in range(5)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line[:5], widths)) + "  " + line[5]
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def write_summary(rows: Sequence[Row], path: Path) -> None:
    """summary.csv with :data:`SUMMARY_COLUMNS`, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.csv_dict())
    os.replace(tmp, path)


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "tcmalloc_library": tcmalloc_path(),
        "tcmalloc_loaded": tcmalloc_loaded(),
        "cpu_native_bf16": cpu_supports_bf16(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ssimrecon bench",
        description="Benchmark the pipeline's hot paths (see docs/performance.md).",
    )
    p.add_argument(
        "--output", type=Path, default=Path("results/bench"), help="folder for summary.csv"
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=ROWS,
        metavar="ROW",
        help=f"rows to run, of {', '.join(ROWS)} (default: all; with --quick all but demo and dag)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions, 128x128 training step, no demo/dag rows unless --only names them",
    )
    p.add_argument(
        "--workflow-dir",
        type=Path,
        default=Path("."),
        help="repository root with Snakefile and config.yaml (default: current folder)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="scratch folder (default: a temporary folder, removed afterwards)",
    )
    p.add_argument(
        "--train-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="training-step image size (default: config image_size; 128 128 with --quick)",
    )
    p.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="timed training steps per process (default 3; 2 with --quick)",
    )
    p.add_argument(
        "--train-rounds",
        type=int,
        default=None,
        help="processes per variant, best kept (default 3; 2 with --quick)",
    )
    p.add_argument(
        "--volume-shape",
        type=int,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=[256, 256, 150],
        help="shard row volume shape (default: IXI's 256 256 150)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="shard/loader image size (default: config preprocessing.image_size)",
    )
    p.add_argument("--demo-cores", type=int, default=2, help="--cores of the demo run (default 2)")
    p.add_argument("--train-worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI: ``ssimrecon bench [--output results/bench] [--only ROW ...] [--quick]``."""
    args = _parser().parse_args(argv)
    if args.train_worker is not None:
        return _train_worker(json.loads(args.train_worker))
    cli_preload("bench")
    import torch

    # the stages' per-file INFO lines (one per shard written) would drown the table; warnings
    # still show
    logging.getLogger("ssimrecon").setLevel(logging.WARNING)

    if args.only:
        names = list(dict.fromkeys(args.only))
    else:
        names = [r for r in ROWS if not (args.quick and r in QUICK_SKIPPED)]
    for label, values in (
        ("--train-size", args.train_size),
        ("--image-size", args.image_size),
        ("--volume-shape", args.volume_shape),
    ):
        if values is not None and min(values) < 1:
            raise SsimreconError(f"{label}: sizes must be positive, got {values}")
    for label, value in (
        ("--train-steps", args.train_steps),
        ("--train-rounds", args.train_rounds),
        ("--demo-cores", args.demo_cores),
    ):
        if value is not None and value < 1:
            raise SsimreconError(f"{label}: must be >= 1, got {value}")
    workflow_dir = args.workflow_dir.resolve()
    output = args.output.resolve()
    devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssimrecon-bench-")))
        else:
            work = args.work_dir.resolve()
            work.mkdir(parents=True, exist_ok=True)
        opts = Options(
            quick=args.quick,
            workflow_dir=workflow_dir,
            work_dir=work,
            config=load_config(workflow_dir),
            train_size=tuple(args.train_size) if args.train_size else None,
            train_steps=args.train_steps,
            train_rounds=args.train_rounds,
            train_devices=devices,
            volume_shape=tuple(args.volume_shape),
            image_size=tuple(args.image_size) if args.image_size else None,
            demo_cores=args.demo_cores,
            log_dir=output,
        )
        info = machine_info()
        print(
            f"ssimrecon bench: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
            f"({info['torch_threads']} threads), tcmalloc "
            f"{'loaded' if info['tcmalloc_loaded'] else 'not loaded'}, "
            f"native bf16 {info['cpu_native_bf16']}, GPU {info['gpu'] or 'none'}",
            flush=True,
        )
        rows, ctx = run_rows(names, opts, echo=lambda s: print(s, file=sys.stderr, flush=True))
    write_summary(rows, output / "summary.csv")
    details = {
        "machine": info,
        "rows": names,
        "quick": args.quick,
        "notes": ctx.notes,
        "train": ctx.train,
        "summary": [{**r.csv_dict(), "note": r.note} for r in rows],
    }
    (output / "details.json").write_text(json.dumps(details, indent=2, default=str) + "\n")
    sys.stdout.write(format_table(rows))
    missed = [r.metric for r in rows if r.met is False]
    print(
        f"\n{len(rows)} rows -> {output / 'summary.csv'}; targets missed: "
        f"{', '.join(missed) if missed else 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
