"""The measurements of ``make gpu-check`` (:mod:`ssimrecon_bench.gpu`), one function each.

Every training-step figure times :func:`ssimrecon.training.step.train_step`, the step the Trainer
runs; CUDA timings synchronise before each clock reading (``train_step_throughput``) or use
``torch.utils.benchmark.Timer``.  On a CPU the same functions run (small sizes); the figures that
need CUDA (host syncs, peak memory) come back as NaN with a note.
"""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

#: bf16 dense (no sparsity) tensor-core peaks in TFLOP/s by device name, first match wins
#: (vendor data sheets); ``SSIMRECON_GPU_PEAK_TFLOPS`` overrides, unknown devices give NaN
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"H200", 989.0),
    (r"H100.*PCIe", 756.0),
    (r"H100.*NVL", 835.0),
    (r"H100|GH200", 989.0),
    (r"A100", 312.0),
    (r"L40S", 362.0),
    (r"L40\b", 181.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
    (r"A6000", 155.0),
)
PEAK_ENV = "SSIMRECON_GPU_PEAK_TFLOPS"


def bf16_peak_tflops(device_name: str) -> tuple[float, str]:
    """(bf16 dense peak in TFLOP/s, where it came from) for ``device_name``; NaN if unknown."""
    override = os.environ.get(PEAK_ENV)
    if override:
        return float(override), f"${PEAK_ENV}"
    for pattern, peak in BF16_PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return peak, f"data sheet ({pattern})"
    return math.nan, f"unknown device {device_name!r}: set ${PEAK_ENV}"


def step_throughput(
    model_cfg: Mapping[str, Any],
    batch: int,
    size: tuple[int, int],
    device: torch.device,
    *,
    fast: bool,
    compile_model: bool,
    instance_norm: str,
    steps: int,
    warmup: int,
) -> tuple[float, float]:
    """(slices/s of the training step, peak device memory in GiB; NaN on a CPU)."""
    from ssimrecon.training.step import train_step_throughput

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        sps = train_step_throughput(
            model_cfg,
            batch,
            size,
            fast,
            steps=steps,
            device=device,
            warmup=warmup,
            compile_model=compile_model,
            instance_norm=instance_norm,
        )
    finally:
        if compile_model:
            torch._dynamo.reset()
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else math.nan
    return sps, peak


def host_syncs_per_step(
    model_cfg: Mapping[str, Any],
    shards: Sequence[Path],
    mask_path: Path,
    batch: int,
    device: torch.device,
    steps: int,
) -> float:
    """Host synchronisations per training step (``torch.cuda.set_sync_debug_mode("warn")``) over
    the Trainer's per-batch work: real loader batches (pinned) -> :func:`prepare_batch` ->
    :func:`train_step` -> the device-side loss sums.  NaN without CUDA."""
    if device.type != "cuda":
        return math.nan
    from ssimrecon.functional.losses import build_loss
    from ssimrecon.kspace.mask import load_mask
    from ssimrecon.training.dataset import EpochSampler, SliceDataset, make_loader
    from ssimrecon.training.step import (
        cuda_fast_math,
        make_optimizer,
        prepare_batch,
        train_step,
        training_model,
    )

    dataset = SliceDataset(list(shards), load_mask(mask_path)[0], 0.0)
    loader = make_loader(dataset, batch, EpochSampler(len(dataset), 0), 0, True)
    batches = []
    while len(batches) < steps + 2:
        batches += list(loader)
    batches = batches[: steps + 2]
    terms = ("mse", "dssim")
    with cuda_fast_math(True):
        torch.manual_seed(0)
        model = training_model(model_cfg, device, True, "project")
        opt = make_optimizer(model, 1e-4, device)
        loss_fn = build_loss({"mse": 1.0, "dssim": 0.1}).to(device)
        flat_index = dataset.flat_index.to(device)
        shape: tuple[int, int] = dataset.shape  # type: ignore[assignment]
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        term_sums = torch.zeros(len(terms), dtype=torch.float64, device=device)

        def step(b: dict[str, Any]) -> None:
            nonlocal loss_sum, term_sums
            inputs = prepare_batch(b, device, flat_index, shape)
            total, parts = train_step(
                model, opt, loss_fn, inputs, terms, bf16=True, channels_last=True
            )
            loss_sum += total.double() * batch
            term_sums += parts.double() * batch

        for b in batches[:2]:  # cuDNN autotuning and lazy initialisation happen here
            step(b)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for b in batches[2:]:
                    step(b)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()
    dataset.close()
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    return len(syncs) / steps


def ssim_fwd_bwd_ms(batch: int, size: tuple[int, int], device: torch.device) -> dict[str, float]:
    """ms per forward+backward of 1 - SSIM: ours and pytorch_msssim's (``torch.utils.benchmark``,
    which synchronises CUDA), on (batch, 1, H, W) float32 images."""
    from torch.utils import benchmark

    from ssimrecon_bench.ssim import ssim_loss_steps

    g = torch.Generator().manual_seed(0)
    ref = torch.rand(batch, 1, *size, generator=g).to(device)
    est = (ref + 0.1 * torch.rand(batch, 1, *size, generator=g).to(device)).clamp(0, 1)

    out = {}
    for name, fn in ssim_loss_steps(ref, est).items():
        fn()
        timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
        out[name] = timer.blocked_autorange(min_run_time=0.5).median * 1e3
    return out


def eval_slices_per_s(
    model_cfg: Mapping[str, Any],
    size: tuple[int, int],
    device: torch.device,
    batch: int,
    slices: int,
) -> float:
    """Slices/s of :func:`ssimrecon.evaluation.inference.predict_slices` (what rule evaluate
    runs: host k-space in, host images out) on random k-space, after one warm-up pass."""
    import numpy as np

    from ssimrecon.evaluation.inference import predict_slices
    from ssimrecon.training.step import build_model

    rng = np.random.default_rng(0)
    kspace = (
        rng.standard_normal((slices, *size)) + 1j * rng.standard_normal((slices, *size))
    ).astype(np.complex64)
    torch.manual_seed(0)
    model = build_model(model_cfg).to(device)
    predict_slices(model, kspace[:batch], batch_size=batch, device=device, input_scale=1.0)
    t0 = time.perf_counter()
    predict_slices(
        model, kspace, batch_size=batch, device=device, input_scale=1.0
    )  # ends with a device -> host copy
    return slices / (time.perf_counter() - t0)


def loader_slices_per_s_on_cpus(
    shards: Sequence[Path],
    mask_path: Path,
    batch: int,
    workers: int,
    min_signal: float,
    cpus: int,
    seconds: float,
) -> tuple[float, str]:
    """(slices/s of the training DataLoader pinned to ``cpus`` CPUs of this machine, a note): the
    CPUs a SLURM training job gets (rule train's cpus_per_task).  Workers inherit the affinity."""
    from ssimrecon_bench.loader import loader_throughput

    available = sorted(os.sched_getaffinity(0))
    chosen = set(available[: max(1, cpus)])
    os.sched_setaffinity(0, chosen)
    try:
        sps, count = loader_throughput(shards, mask_path, batch, workers, min_signal, seconds)
    finally:
        os.sched_setaffinity(0, set(available))
    return sps, f"{len(chosen)} of {len(available)} CPUs, num_workers {workers}, {count} slices"
