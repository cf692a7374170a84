"""The network as every stage applies it: k-space -> network input -> U-Net -> (data consistency)
-> the magnitude that is scored.  Training, validation, evaluation, Figure 2 and ``reconstruct``
all go through :class:`Reconstructor`, so the rules below have one home.

* **Input** (:func:`network_input`), from undersampled k-space divided by the volume's input
  scale: ``magnitude`` data give the zero-filled magnitude ``|ifft2c(k)|`` (B, 1, H, W), as the
  paper; ``complex`` data the complex zero-filled image ``ifft2c(k)`` and ``multicoil`` data the
  SENSE combination ``sum_c conj(S_c) ifft2c(k_c) / sum_c |S_c|^2`` with the shard's sensitivities,
  both as 2 channels (real, imaginary) (B, 2, H, W).
* **U-Net** with as many output channels as input channels (so ``model.residual`` starts as the
  identity: the zero-filled image).
* **Data consistency** (``model.data_consistency``, :mod:`ssimrecon.nn.consistency`): the U-Net's
  image ``z`` (magnitude data: its 1 channel as a real image; else the complex image of its 2
  channels) gets the measured k-space back at the sampled points, ``ifft2c((1 - m) fft2c(z) + m
  y)`` (single coil), or per coil ``ifft2c((1 - m) fft2c(S_c z) + m y_c)`` SENSE-combined
  (multicoil, one step). Run in float32 outside autocast.
* **Output** (B, 1, H, W): the magnitude ``|z|`` compared with the target and scored; magnitude
  data without data consistency return the U-Net's output as it is (the paper's network,
  bit-identical to the versions before the forward models).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.fft import ifft2c_torch, zero_filled_magnitude_torch
from ssimrecon.kspace.forward import network_channels
from ssimrecon.kspace.preprocess import FORWARD_MODELS, recorded
from ssimrecon.nn.consistency import (
    data_consistency,
    multicoil_data_consistency,
    sense_combine_torch,
    to_channels,
    to_complex,
)

__all__ = [
    "Physics",
    "Reconstructor",
    "network_input",
    "input_magnitude",
    "zero_filled_torch",
]


@dataclasses.dataclass(frozen=True)
class Physics:
    """What the network's data are and how it must agree with them: ``forward_model``
    (``preprocessing.forward_model``) and ``data_consistency`` (``model.data_consistency``)."""

    forward_model: str = "magnitude"
    data_consistency: bool = False

    def __post_init__(self) -> None:
        if self.forward_model not in FORWARD_MODELS:
            raise SsimreconError(
                f"preprocessing.forward_model must be one of {FORWARD_MODELS}, got "
                f"{self.forward_model!r}"
            )

    @property
    def channels(self) -> int:
        """Channels of the U-Net's input and output (1 or 2)."""
        return network_channels(self.forward_model)

    @classmethod
    def of_bundle(cls, bundle: dict[str, Any]) -> Physics:
        """A model bundle's physics: its preprocessing's forward model (a bundle from before the
        forward models: magnitude) and its ``data_consistency`` (absent: False)."""
        prep = recorded(bundle.get("preprocessing") or {})
        return cls(str(prep["forward_model"]), bool(bundle.get("data_consistency", False)))


def zero_filled_torch(kspace: Tensor, sensitivities: Tensor | None) -> Tensor:
    """Zero-filled complex image (B, H, W): ``ifft2c`` of (B, H, W), or the SENSE combination of
    the per-coil ``ifft2c`` of (B, C, H, W) with ``sensitivities`` (C, H, W)."""
    image = ifft2c_torch(kspace)
    return image if sensitivities is None else sense_combine_torch(image, sensitivities)


def network_input(kspace: Tensor, forward_model: str, sensitivities: Tensor | None) -> Tensor:
    """The network input (B, 1 or 2, H, W) float32 of undersampled ``kspace`` (B, [C,] H, W)
    (module docstring); divide ``kspace`` (or the result: it is linear) by the input scale."""
    if forward_model == "magnitude":
        return zero_filled_magnitude_torch(kspace).unsqueeze(1)
    if (forward_model == "multicoil") != (sensitivities is not None):
        raise SsimreconError(
            f"forward_model {forward_model}: sensitivities "
            f"{'missing' if sensitivities is None else 'given but not used'}"
        )
    image = zero_filled_torch(kspace.to(torch.complex64), sensitivities)
    return to_channels(image).to(torch.float32)


def input_magnitude(x: Tensor) -> Tensor:
    """The magnitude (B, 1, H, W) of a network input (1 channel: itself; 2: |real + i imag|)."""
    return x if x.shape[1] == 1 else torch.linalg.vector_norm(x, dim=1, keepdim=True)


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type in ("cpu", "cuda") and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


class Reconstructor(nn.Module):
    """The U-Net ``unet`` (any module (B, c, H, W) -> (B, c, H, W), c = ``physics.channels``:
    a UNet, a DistributedDataParallel or compiled one) applied as the module docstring says.

    ``mask`` (H, W) (bool or 0/1) and ``sensitivities`` (C, H, W) complex (multicoil; or (B, C,
    H, W), one per image of the batches it is called with) are fixed buffers (not saved: the
    bundle records the mask, the shards the sensitivities).  ``maps_per_batch``: multicoil data
    whose sensitivities differ per slice (measured k-space) and come with each batch's network
    input (training without data consistency); then ``sensitivities`` is None.  Call it
    with the network input ``x`` and, with data consistency, the ``measured`` k-space (B, [C,] H,
    W) on the same intensity axis (divided by the same input scale)."""

    def __init__(
        self,
        unet: nn.Module,
        physics: Physics,
        mask: Tensor | np.ndarray | None = None,
        sensitivities: Tensor | np.ndarray | None = None,
        *,
        maps_per_batch: bool = False,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.physics = physics
        multicoil = physics.forward_model == "multicoil"
        if maps_per_batch and (not multicoil or physics.data_consistency):
            raise SsimreconError(
                "sensitivities per slice (measured k-space) need forward_model multicoil without "
                "model.data_consistency"
            )
        if multicoil != (sensitivities is not None) and not maps_per_batch:
            raise SsimreconError(
                f"forward_model {physics.forward_model}: sensitivities "
                f"{'missing' if sensitivities is None else 'given but not used'}"
            )
        if physics.data_consistency and mask is None:
            raise SsimreconError("model.data_consistency needs the sampling mask")
        self.register_buffer(
            "mask",
            None if mask is None else torch.as_tensor(np.asarray(mask)).to(torch.float32),
            persistent=False,
        )
        self.register_buffer(
            "sensitivities",
            None
            if sensitivities is None
            else torch.as_tensor(np.asarray(sensitivities)).to(torch.complex64),
            persistent=False,
        )

    def network_input(self, kspace: Tensor) -> Tensor:
        """:func:`network_input` of ``kspace`` with this reconstructor's sensitivities."""
        return network_input(kspace, self.physics.forward_model, self.sensitivities)

    def image(self, x: Tensor, measured: Tensor | None = None) -> Tensor:
        """The complex image (B, H, W) complex64 after the U-Net and, with data consistency, the
        measured k-space restored (single coil: every sampled point equals ``measured``;
        multicoil: every coil's sampled points are restored before the SENSE combination, one
        step, :func:`~ssimrecon.nn.consistency.multicoil_data_consistency`)."""
        out = self.unet(x)
        with _no_autocast(out.device):
            out = out.float()
            image = out[:, 0].to(torch.complex64) if out.shape[1] == 1 else to_complex(out)
            if not self.physics.data_consistency:
                return image
            if measured is None:
                raise SsimreconError("model.data_consistency: the measured k-space is missing")
            y = measured.to(torch.complex64)
            if self.sensitivities is None:
                return data_consistency(image, y, self.mask)
            maps = self.sensitivities
            if maps.dim() == 3:
                maps = maps.expand(image.shape[0], *maps.shape)
            return multicoil_data_consistency(image, maps, y, self.mask)

    def forward(self, x: Tensor, measured: Tensor | None = None) -> Tensor:
        physics = self.physics
        if physics.forward_model == "magnitude" and not physics.data_consistency:
            return self.unet(x)
        return self.image(x, measured).abs().unsqueeze(1)
