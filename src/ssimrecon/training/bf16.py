"""Whether bf16 autocast is used on this machine: the CPU probe and ``training.bf16: auto``.

Importing this module does not import torch (the functions that need it import it when called), so
the benchmark can ask before it imports the library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["cpu_supports_bf16", "resolve_bf16"]


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
