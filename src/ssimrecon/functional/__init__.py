"""SSIM, losses and per-slice metrics on tensors and arrays."""
