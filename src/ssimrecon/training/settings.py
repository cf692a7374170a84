"""The ``training:`` settings, and whether bf16 autocast is used on this machine (the device itself:
:mod:`ssimrecon.device`).

Importing this module does not import torch (:mod:`ssimrecon.training.fastpath` imports
:func:`cpu_supports_bf16` from here before it may re-execute the process); the functions that need
torch import it when called.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from ssimrecon.errors import SsimreconError

if TYPE_CHECKING:
    import torch

__all__ = ["TrainSettings", "TrainJob", "cpu_supports_bf16", "resolve_bf16", "launch_command"]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The ``training:`` config section without ``threads`` (a job resource, not a setting).

    No field has a default: the defaults live in workflow/schemas/config.schema.yaml, the config is
    checked once by :mod:`ssimrecon.config.check` before any job, and the CLI builds this class with
    :func:`ssimrecon.config.sections.load_settings`.  ``__post_init__`` only normalises (``crop`` ->
    tuple, ``bf16`` "true"/"false" -> bool) and stops values no run could use. ``crop`` is (H, W) in
    pixels or None; ``lr`` Adam's learning rate; ``min_signal_fraction`` the slice filter of
    training and validation; ``gpus`` the processes (one GPU each) that train the run together
    with the global batch ``batch_size``; ``compile`` wraps the U-Net in ``torch.compile``;
    ``instance_norm`` ('project' or 'torch') picks the instance-norm kernel (same maths).
    """

    epochs: int
    batch_size: int
    lr: float
    seed: int
    crop: tuple[int, int] | None
    num_workers: int
    device: str
    bf16: str | bool
    channels_last: bool
    min_signal_fraction: float
    max_train_batches: int | None
    gpus: int
    compile: bool
    instance_norm: str

    def __post_init__(self) -> None:
        if self.crop is not None:
            object.__setattr__(self, "crop", (int(self.crop[0]), int(self.crop[1])))
        bf16 = self.bf16
        if isinstance(bf16, str) and bf16.lower() in {"true", "false"}:
            object.__setattr__(self, "bf16", bf16.lower() == "true")
        if self.bf16 not in ("auto", True, False):
            raise SsimreconError(f"training.bf16: must be 'auto', true or false, got {bf16!r}")
        if self.instance_norm not in ("project", "torch"):
            raise SsimreconError(
                f"training.instance_norm: must be 'project' or 'torch', got {self.instance_norm!r}"
            )
        for key, minimum in (("epochs", 1), ("batch_size", 1), ("num_workers", 0), ("gpus", 1)):
            if getattr(self, key) < minimum:
                raise SsimreconError(f"training.{key}: must be >= {minimum}")
        if self.batch_size % self.gpus:
            raise SsimreconError(
                f"training.batch_size: {self.batch_size} must be a multiple of training.gpus "
                f"({self.gpus}): the global batch is split evenly across the GPUs"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SsimreconError(f"training.lr: must be a positive number, got {self.lr!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (crop as a list)."""
        out = dataclasses.asdict(self)
        out["crop"] = None if self.crop is None else list(self.crop)
        return out


@dataclasses.dataclass(frozen=True)
class TrainJob:
    """What one training job is handed (``ssimrecon train --config-json``): the network's model
    settings (top-level ``model`` with the network's overrides applied), its ``loss`` terms {term:
    weight} and the ``training`` section."""

    model: dict[str, Any]
    loss: dict[str, float]
    training: TrainSettings


def cpu_supports_bf16() -> bool:
    """True if oneDNN is available and the CPU has native bf16 (AVX512-BF16 or AMX tiles).

    On other CPUs bf16 autocast is emulated and slower than fp32, so neither training's ``bf16:
    auto`` nor the benchmark's fast path turns it on.  A capability probe that raises counts as
    "no".
    """
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, name, None)
        if check is not None:
            try:
                if bool(check()):
                    return True
            except RuntimeError:
                continue
    return False


def resolve_bf16(setting: str | bool, device: torch.device) -> bool:
    """'auto' -> bf16 autocast on CUDA (if supported) and on CPUs with native bf16; booleans
    force."""
    if setting is True or setting is False:
        return setting
    if device.type == "cuda":
        import torch

        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


def launch_command(gpus: int, python: str) -> list[str]:
    """The program that runs ``ssimrecon <command> ...`` for ``training.gpus`` = ``gpus``:
    ``ssimrecon`` itself for one GPU, else ``gpus`` processes on this node started by torchrun
    (``<python> -m torch.distributed.run --standalone --nproc-per-node=<gpus> -m ssimrecon.cli``;
    :mod:`ssimrecon.training.distributed`).  Rule train uses it (with ``python`` = "python")."""
    if gpus == 1:
        return ["ssimrecon"]
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={int(gpus)}",
        "-m",
        "ssimrecon.cli",
    ]
