"""The ``training:`` settings, and what they resolve to on this machine (device, bf16 autocast).

Importing this module does not import torch (:mod:`ssimrecon.training.fastpath` imports
:func:`cpu_supports_bf16`
from here before it may re-execute the process); the functions that need torch import it when
called.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ssimrecon.errors import SsimreconError

if TYPE_CHECKING:
    import torch

__all__ = [
    "TRAIN_DEVICE_TYPES",
    "TrainSettings",
    "resolve_device",
    "cpu_supports_bf16",
    "resolve_bf16",
]

TRAIN_DEVICE_TYPES = ("cpu", "cuda")  # training is only tested on these (no MPS, even for "auto")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The ``training:`` config section (see workflow/schemas/config.schema.yaml)."""

    epochs: int = 100
    batch_size: int = 4
    lr: float = 1e-4
    seed: int = 0
    crop: tuple[int, int] | None = None
    num_workers: int = 2
    device: str = "auto"
    bf16: str | bool = "auto"
    channels_last: bool = True
    min_signal_fraction: float = 0.05
    max_train_batches: int | None = None

    def __post_init__(self) -> None:
        def need_int(key: str, value: Any, minimum: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SsimreconError(
                    f"training.{key}: must be an integer >= {minimum}, got {value!r}"
                )

        need_int("epochs", self.epochs, 1)
        need_int("batch_size", self.batch_size, 1)
        need_int("num_workers", self.num_workers, 0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SsimreconError(f"training.seed: must be an integer, got {self.seed!r}")
        if self.max_train_batches is not None:
            need_int("max_train_batches", self.max_train_batches, 1)
        if (
            isinstance(self.lr, bool)
            or not isinstance(self.lr, (int, float))
            or not (math.isfinite(self.lr) and self.lr > 0)
        ):
            raise SsimreconError(f"training.lr: must be a positive number, got {self.lr!r}")
        msf = self.min_signal_fraction
        if isinstance(msf, bool) or not isinstance(msf, (int, float)) or not 0 <= msf <= 1:
            raise SsimreconError(
                f"training.min_signal_fraction: must be a number in [0, 1], got {msf!r}"
            )
        if self.crop is not None:
            crop = self.crop
            if (
                not isinstance(crop, (list, tuple))
                or len(crop) != 2
                or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in crop)
            ):
                raise SsimreconError(
                    f"training.crop: must be null or two positive integers [H, W], got {crop!r}"
                )
            object.__setattr__(self, "crop", (int(crop[0]), int(crop[1])))
        bf16 = self.bf16
        if isinstance(bf16, str) and bf16.lower() in {"auto", "true", "false"}:
            bf16 = {"auto": "auto", "true": True, "false": False}[bf16.lower()]
        if (
            bf16 not in ("auto", True, False)
            or isinstance(bf16, int)
            and not isinstance(bf16, bool)
        ):
            raise SsimreconError(f"training.bf16: must be 'auto', true or false, got {self.bf16!r}")
        object.__setattr__(self, "bf16", bf16)
        if not isinstance(self.channels_last, bool):
            raise SsimreconError(
                f"training.channels_last: must be true or false, got {self.channels_last!r}"
            )
        if not isinstance(self.device, str) or not self.device:
            raise SsimreconError(
                f"training.device: must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainSettings:
        """Build from a config mapping; unknown keys raise an error naming ``training.<key>``."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise SsimreconError(
                    f"training.{key}: unknown training setting; known: {sorted(known)}"
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (crop as a list)."""
        out = dataclasses.asdict(self)
        out["crop"] = None if self.crop is None else list(self.crop)
        return out


def resolve_device(setting: str) -> torch.device:
    """``training.device`` -> device: 'auto' -> cuda if available else cpu; only cpu and cuda are
    accepted."""
    from ssimrecon.evaluation.inference import pick_device

    return pick_device(setting, key="training.device", types=TRAIN_DEVICE_TYPES)


def cpu_supports_bf16() -> bool:
    """True if oneDNN is available and the CPU has native bf16 (AVX512-BF16 or AMX tiles).

    On other CPUs bf16 autocast is emulated and slower than fp32, so neither training's ``bf16:
    auto``
    nor the benchmark's fast path turns it on.  A capability probe that raises counts as "no".
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
