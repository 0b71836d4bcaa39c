"""Paired image-quality metrics on (B, C, H, W) tensors in [0, 1]: PSNR, SSIM, MS-SSIM and sample diversity."""

from __future__ import annotations

import torch
import torch.nn.functional as F

KERNEL_SIZE = 11  # Gaussian window of Wang et al. (2004), IEEE TIP 13(4), Sec. III-C
SIGMA = 1.5
K1, K2 = 0.01, 0.03  # stabilising constants of Wang et al. (2004), Eq. 13, for data range 1
# Per-scale exponents of Wang, Simoncelli & Bovik (2003), "Multi-scale structural similarity", Sec. 3.
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 4:
        raise ValueError(f"images have shape {tuple(a.shape)}; pass (B, C, H, W) tensors in [0, 1]")
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}; compare images of one size")


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, computed per image and averaged (inf when the images are identical)."""
    _check_pair(a, b)
    mse = (a.double() - b.double()).square().flatten(1).mean(dim=1)  # (B,)
    return float((10 * torch.log10(data_range**2 / mse)).mean())


def _similarity_and_contrast(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term c·s per image (B,), over the valid window positions.

    Wang et al. (2004) Eq. 13 with a Gaussian 11-px window, σ 1.5; only windows that lie inside the image
    are averaged (as scikit-image and pytorch-msssim do), so no padding convention leaks into the score.
    (torchmetrics 1.9 also averages the reflect-padded border, ~6e-3 off scikit-image on 64-px images.)
    Channels are pooled with pixels, so for C > 1 the mean runs over channels before the MS-SSIM powers.
    """
    coordinates = torch.arange(KERNEL_SIZE, dtype=torch.float64) - KERNEL_SIZE // 2
    gauss = torch.exp(-(coordinates**2) / (2 * SIGMA**2))
    window = torch.outer(gauss, gauss) / gauss.sum() ** 2
    channels = a.shape[1]
    window = window.expand(channels, 1, KERNEL_SIZE, KERNEL_SIZE).to(a.device)
    a, b = a.double(), b.double()
    stacked = torch.cat([a, b, a * a, b * b, a * b])  # (5B, C, H, W): one convolution for all local moments
    mean_a, mean_b, square_a, square_b, product = F.conv2d(stacked, window, groups=channels).split(len(a))
    variance_a, variance_b = square_a - mean_a**2, square_b - mean_b**2
    covariance = product - mean_a * mean_b
    c1, c2 = K1**2, K2**2
    contrast = (2 * covariance + c2) / (variance_a + variance_b + c2)
    luminance = (2 * mean_a * mean_b + c1) / (mean_a**2 + mean_b**2 + c1)
    return (luminance * contrast).flatten(1).mean(dim=1), contrast.flatten(1).mean(dim=1)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of Wang et al. (2004): Gaussian window 11, σ 1.5, K1 0.01, K2 0.03, data range 1."""
    _check_pair(a, b)
    if min(a.shape[-2:]) < KERNEL_SIZE:
        raise ValueError(f"images of shape {tuple(a.shape)} are smaller than the {KERNEL_SIZE}-px SSIM window")
    return float(_similarity_and_contrast(a, b)[0].mean())


def ms_ssim_settings(size: int) -> tuple[int, tuple[float, ...]]:
    """Window size and per-scale exponents used by `ms_ssim` for images whose smaller side is `size` pixels.

    Rule: keep the 11-px Gaussian window (σ 1.5) and use the largest number of scales S ≤ 5 for which
    the coarsest scale still holds a window: size / 2^(S-1) > 10 and size // max(1, S-1)^2 > 10 (the second
    is torchmetrics' own check, kept so its MS-SSIM runs on the same images). The first S exponents of
    Wang et al. (2003) are kept and renormalised to sum to 1. This gives S = 5 from 176 px,
    4 for 99–175 px (so 128 px), 3 for 44–98 px (so 64 px) and 2 for 21–43 px.
    """
    for scales in range(len(MS_SSIM_BETAS), 1, -1):
        if size / 2 ** (scales - 1) > KERNEL_SIZE - 1 and size // max(1, scales - 1) ** 2 > KERNEL_SIZE - 1:
            kept = MS_SSIM_BETAS[:scales]
            return KERNEL_SIZE, tuple(beta / sum(kept) for beta in kept)
    raise ValueError(f"images of {size} px are too small for MS-SSIM (need ≥ 21 px); use ssim() instead")


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean multi-scale SSIM (Wang et al. 2003, Eq. 7) with scales adapted to the image size (`ms_ssim_settings`).

    MS-SSIM = Π_{j<S} cs_j^β_j · ssim_S^β_S, with negative terms clamped to 0 (as pytorch-msssim does) and
    2×2 average pooling between scales.
    """
    _check_pair(a, b)
    _, betas = ms_ssim_settings(min(a.shape[-2:]))
    terms = []
    for scale in range(len(betas)):
        similarity, contrast = _similarity_and_contrast(a, b)
        if scale == len(betas) - 1:
            terms.append(similarity)  # luminance enters at the coarsest scale only
        else:
            terms.append(contrast)
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    stacked = torch.stack(terms).clamp(min=0)  # (S, B)
    exponents = torch.tensor(betas, dtype=stacked.dtype, device=stacked.device).unsqueeze(1)
    return float(torch.prod(stacked**exponents, dim=0).mean())


def diversity(samples: torch.Tensor) -> float:
    """Mean pairwise MS-SSIM among (N, C, H, W) samples of one prompt; lower = more diverse.

    The protocol of RoentGen (Chambon et al. 2022): all N(N-1)/2 unordered pairs, equally weighted.
    """
    if samples.dim() != 4 or samples.shape[0] < 2:
        raise ValueError(f"samples have shape {tuple(samples.shape)}; pass (N, C, H, W) with N ≥ 2 of one prompt")
    first, second = torch.triu_indices(samples.shape[0], samples.shape[0], offset=1)
    return ms_ssim(samples[first], samples[second])
