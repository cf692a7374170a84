"""Row ``ssim``: the project's SSIM loss against pytorch_msssim (speed) and scikit-image (values).

``1 - ssim(x, y)`` forward+backward on 4x1x256x256 float32: :func:`ssimrecon.functional.ssim.ssim`
vs ``pytorch_msssim.ssim(data_range=1)`` timed in interleaved rounds (target: >= 5x), and the
largest difference of the project's per-image SSIM from scikit-image's float64 one (target: <=
1e-5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssimrecon_bench.core import Context, Options, Row, at_least, at_most, best_of_rounds

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch


def ssim_images(n: int = 4, size: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
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

    def as_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32)).unsqueeze(1)

    return as_tensor(ref), as_tensor(est)


def ssim_loss_steps(ref: torch.Tensor, est: torch.Tensor) -> dict[str, Callable[[], None]]:
    """One forward+backward of ``1 - SSIM(est, ref)`` (data_range 1) per implementation: ``ours``
    (:func:`ssimrecon.functional.ssim.ssim`) and ``msssim`` (``pytorch_msssim.ssim``)."""
    import pytorch_msssim

    from ssimrecon.functional.ssim import ssim

    def ours() -> None:
        x = est.clone().requires_grad_(True)
        (1.0 - ssim(x, ref, 1.0)).backward()

    def theirs() -> None:
        x = est.clone().requires_grad_(True)
        (1.0 - pytorch_msssim.ssim(x, ref, data_range=1.0, size_average=True)).backward()

    return {"ours": ours, "msssim": theirs}


def bench_ssim(opts: Options, ctx: Context) -> list[Row]:
    """Speed-up over pytorch_msssim, difference from scikit-image, and both times in ms."""
    import pytorch_msssim
    import torch
    from skimage.metrics import structural_similarity

    from ssimrecon.functional.ssim import ssim

    ref, est = ssim_images()
    rounds, iters = (3, 3) if opts.quick else (7, 10)

    times = best_of_rounds(ssim_loss_steps(ref, est), rounds, iters)

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
