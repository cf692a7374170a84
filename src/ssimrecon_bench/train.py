"""Row ``train``: the paper U-Net's training step, plain vs the project's fast path (target >= 3x).

Adam, batch and model from config.yaml, 256x256 (128x128 with ``--quick``).  **plain**: fp32 eager
NCHW with glibc malloc; **fast**: the default path (tcmalloc when installed, channels_last, bf16
autocast on CPUs with native bf16, SSIM in fp32).  Each measurement runs in its own process
(``python -m ssimrecon_bench.cli --train-worker SPEC``, :func:`train_worker`) because an allocator
can only be preloaded at process start.  Also reported: the fast path without tcmalloc, the U-Net's
FLOPs per slice and the sustained TFLOP/s; on a CUDA machine the same on the GPU.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from ssimrecon.training.bf16 import cpu_supports_bf16
from ssimrecon.training.tcmalloc import DISABLE_VAR, strip_tcmalloc, tcmalloc_loaded, tcmalloc_path
from ssimrecon_bench.core import BenchError, Context, Options, Row, at_least
from ssimrecon_bench.processes import env_for_children, tail

#: the hidden option of :mod:`ssimrecon_bench.cli` that runs :func:`train_worker`
TRAIN_WORKER_OPTION = "--train-worker"


def unet_flops_per_slice(
    model_cfg: Mapping[str, Any], size: tuple[int, int], backward: bool = True
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


def train_worker(spec: dict[str, Any]) -> int:
    """Child process of the train row: one measurement, one JSON line on stdout.

    ``spec``: model (config ``model``), batch_size, size [H, W], steps, warmup, device, fast and
    optionally threads.
    """
    import torch

    from ssimrecon.training.step import train_step_throughput

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = str(spec["device"])
    sps = train_step_throughput(
        spec["model"],
        int(spec["batch_size"]),
        tuple(spec["size"]),
        bool(spec["fast"]),
        steps=int(spec["steps"]),
        device=device,
        warmup=int(spec["warmup"]),
    )
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


def _measure(spec: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run :func:`train_worker` in a fresh process with ``env``; its JSON result."""
    cmd = [sys.executable, "-m", "ssimrecon_bench.cli", TRAIN_WORKER_OPTION, json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"training step measurement timed out after {timeout:.0f}s") from exc
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"training step measurement failed (exit {proc.returncode}): {tail(proc.stderr, 1500)}"
        )
    return json.loads(lines[-1])


def _variant_envs() -> tuple[dict[str, str], dict[str, str], str | None]:
    """(plain env: glibc malloc, fast env: tcmalloc preloaded when installed, library path)."""
    lib = tcmalloc_path()
    base_env = strip_tcmalloc(env_for_children())
    plain_env = {**base_env, DISABLE_VAR: "1"}
    fast_env = dict(base_env)
    if lib:
        fast_env["LD_PRELOAD"] = lib + (
            ":" + base_env["LD_PRELOAD"] if base_env.get("LD_PRELOAD") else ""
        )
        fast_env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    return plain_env, fast_env, lib


def bench_train(opts: Options, ctx: Context) -> list[Row]:
    """Plain vs fast training step per device, best of interleaved processes; fills ctx.train."""
    cfg = opts.config
    paper_size = tuple(int(s) for s in cfg["preprocessing"]["image_size"])
    size = opts.train_size or ((128, 128) if opts.quick else paper_size)
    steps = opts.train_steps or (2 if opts.quick else 3)
    warmup = 1 if opts.quick else 2
    rounds = opts.train_rounds or (2 if opts.quick else 3)
    model_cfg = dict(cfg["model"])
    batch = int(cfg["training"]["batch_size"])
    plain_env, fast_env, lib = _variant_envs()
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
                got = _measure({**spec, "fast": fast}, env, timeout)
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
