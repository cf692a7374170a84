"""VIF in the pixel domain (VIFp; Sheikh & Bovik 2006), per slice.

Definition (the authors' ``vifp_mscale.m`` as ported by piq 0.8.0's ``vif_p``): intensities mapped
to [0, 255] by 255 / L; four scales s = 0..3 with a Gaussian window of side N = 2^(4-s) + 1 and
sigma N/5; before scales 1-3 both images are filtered with that scale's window (valid region) and
subsampled by 2.  Local means, variances and covariance use the window on the valid region
(variances clipped at 0); with reference variance sr2, estimate variance se2 and covariance sre:
gain g = sre / (sr2 + eps), distortion variance sv2 = se2 - g sre, then (in this order) g = 0 and
sv2 = se2 where sr2 < eps, sr2 = 0 there; g = 0 and sv2 = 0 where se2 < eps; sv2 = se2 and g = 0
where g < 0; sv2 = max(sv2, eps); eps = 1e-8 (piq; the MATLAB code has 1e-10).
VIF = sum log10(1 + g^2 sr2 / (sv2 + sn2)) / sum log10(1 + sr2 / sn2) over all scales and pixels,
with visual noise variance sn2 = 2.  1 for identical images, above 1 for contrast enhancement;
higher is better.  NaN where the denominator is 0 (a reference without variance).  VIF is not
symmetric: the first argument is the reference.
"""

from __future__ import annotations

import torch

from ssimrecon.functional.iqa.filters import filter_valid, gaussian_taps
from ssimrecon.functional.iqa.scoring import Array, as_stacks, score_slices

SIGMA_N_SQ = 2.0
EPS = 1e-8
SCALES = 4
#: the smallest side the four scales fit in; also the head box's side
MIN_SIDE = 41

__all__ = ["SIGMA_N_SQ", "MIN_SIDE", "vif_images", "vif"]


def vif_images(ref: torch.Tensor, est: torch.Tensor, data_range: float) -> torch.Tensor:
    """VIF of (N,1,H,W) float64 image pairs with H, W >= MIN_SIDE -> (N,)."""
    r, e = ref * (255.0 / data_range), est * (255.0 / data_range)
    num = torch.zeros(r.shape[0], dtype=r.dtype, device=r.device)
    den = torch.zeros_like(num)
    for scale in range(SCALES):
        size = 2 ** (SCALES - scale) + 1
        taps = gaussian_taps(size, size / 5, r)
        if scale > 0:
            r = filter_valid(r, taps)[..., ::2, ::2]
            e = filter_valid(e, taps)[..., ::2, ::2]
        mu_r, mu_e, m_rr, m_ee, m_re = filter_valid(
            torch.cat([r, e, r * r, e * e, r * e], dim=1), taps
        ).unbind(dim=1)
        sr2 = torch.relu(m_rr - mu_r * mu_r)
        se2 = torch.relu(m_ee - mu_e * mu_e)
        sre = m_re - mu_r * mu_e
        g = sre / (sr2 + EPS)
        sv2 = se2 - g * sre
        flat_ref = sr2 < EPS
        g = torch.where(flat_ref, 0.0, g)
        sv2 = torch.where(flat_ref, se2, sv2)
        sr2 = torch.where(flat_ref, 0.0, sr2)
        flat_est = se2 < EPS
        g = torch.where(flat_est, 0.0, g)
        sv2 = torch.where(flat_est, 0.0, sv2)
        sv2 = torch.where(g < 0, se2, sv2)
        g = torch.relu(g)
        sv2 = torch.clamp(sv2, min=EPS)
        num += torch.log10(1 + g * g * sr2 / (sv2 + SIGMA_N_SQ)).sum(dim=(1, 2))
        den += torch.log10(1 + sr2 / SIGMA_N_SQ).sum(dim=(1, 2))
    return torch.where(den > 0, num / den, torch.nan)


def vif(ref: Array, est: Array, data_range: float, region: Array | None = None) -> Array:
    """VIFp per slice of (S,H,W) stacks -> (S,) float64 (scoring and head box:
    :mod:`ssimrecon.functional.iqa.scoring`, box side MIN_SIDE)."""
    return score_slices(
        vif_images, as_stacks("vif", ref, est, data_range, region), MIN_SIDE, MIN_SIDE
    )
