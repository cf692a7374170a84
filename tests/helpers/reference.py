"""Independent reference metrics (scikit-image) for one slice."""

from __future__ import annotations

import numpy as np

#: scikit-image's SSIM in the paper's convention: Gaussian 11x11 window, sigma 1.5, population
#: covariance
PAPER_SSIM = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def skimage_ssim_psnr(
    reference: np.ndarray, estimate: np.ndarray, data_range: float
) -> tuple[float, float]:
    """Independent reference for one slice: scikit-image's SSIM in the paper's convention
    (:data:`PAPER_SSIM`, valid region) and PSNR (dB)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    reference, estimate = reference.astype(np.float64), estimate.astype(np.float64)
    ssim = structural_similarity(reference, estimate, data_range=data_range, **PAPER_SSIM)
    return float(ssim), float(peak_signal_noise_ratio(reference, estimate, data_range=data_range))


def skimage_ssim_map(
    reference: np.ndarray, estimate: np.ndarray, data_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """(scikit-image's paper-convention SSIM map (H, W), bool mask (H, W) of its valid region: the
    5-pixel border of the 11-tap window excluded)."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(
        reference, estimate, data_range=data_range, full=True, **PAPER_SSIM
    )
    valid = np.zeros(full.shape, dtype=bool)
    valid[5:-5, 5:-5] = True
    return full, valid
