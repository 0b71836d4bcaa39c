"""medcf.metrics.image against scikit-image, pytorch-msssim and the textbook PSNR formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_msssim
import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from medcf.metrics import diversity, ms_ssim, ms_ssim_settings, psnr, ssim


def _texture(batch: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random texture in [0, 1] (B, 1, size, size): blurred noise, so SSIM is not trivially ~0."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch, 1, size // 4, size // 4, generator=generator, dtype=torch.float64)
    return F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def _degrade(images: torch.Tensor, seed: int, amount: float = 0.08) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return (images + amount * noise).clamp(0, 1)


def _reference_ms_ssim(a: torch.Tensor, b: torch.Tensor, kernel: int, betas: tuple[float, ...]) -> float:
    """pytorch-msssim's own loop (its public ms_ssim refuses images ≤ 160 px), with our scale count."""
    window = _fspecial_gauss_1d(kernel, 1.5).repeat(a.shape[1], 1, 1, 1).to(a.dtype)
    contrasts = []
    for level in range(len(betas)):
        similarity, contrast = _ssim(a, b, data_range=1.0, win=window, size_average=False)
        if level < len(betas) - 1:
            contrasts.append(torch.relu(contrast))
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    stacked = torch.stack([*contrasts, torch.relu(similarity)])
    return float(torch.prod(stacked ** torch.tensor(betas, dtype=a.dtype).view(-1, 1, 1), dim=0).mean())


def test_psnr_matches_the_formula_per_image_then_averaged():
    a, b = _texture(3, 32, 0), _texture(3, 32, 1)
    expected = np.mean([10 * math.log10(1 / float(((x - y) ** 2).mean())) for x, y in zip(a, b, strict=True)])
    assert psnr(a, b) == pytest.approx(expected, abs=1e-9)
    assert psnr(a * 255, b * 255, data_range=255.0) == pytest.approx(expected, abs=1e-9)
    assert psnr(a, a) == math.inf


def test_ssim_matches_scikit_image_gaussian_protocol():
    a = _texture(2, 64, 2)
    b = _degrade(a, 3)
    expected = np.mean(
        [
            structural_similarity(
                x[0].numpy(), y[0].numpy(), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
            )
            for x, y in zip(a, b, strict=True)
        ]
    )
    assert ssim(a, b) == pytest.approx(expected, abs=1e-3)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)


def test_ssim_matches_torchmetrics_map_inside_the_valid_region():
    # torchmetrics 1.9 averages its map over reflect-padded borders too; cropping the 5-px border gives Wang's SSIM.
    a = _texture(2, 64, 8)
    b = _degrade(a, 9)
    _, full_map = structural_similarity_index_measure(a, b, data_range=1.0, return_full_image=True)
    assert ssim(a, b) == pytest.approx(float(full_map[..., 5:-5, 5:-5].mean()), abs=1e-6)


def test_ms_ssim_matches_pytorch_msssim_with_five_scales():
    a = _texture(2, 192, 4)
    b = _degrade(a, 5)
    kernel, betas = ms_ssim_settings(192)
    expected = pytorch_msssim.ms_ssim(a, b, data_range=1.0, win_size=kernel, weights=list(betas))
    assert len(betas) == 5
    assert ms_ssim(a, b) == pytest.approx(float(expected), abs=1e-4)


@pytest.mark.parametrize(("size", "scales"), [(64, 3), (128, 4)])
def test_ms_ssim_on_small_images_matches_the_reference_loop(size: int, scales: int):
    a = _texture(2, size, size)
    b = _degrade(a, size + 1)
    kernel, betas = ms_ssim_settings(size)
    assert (kernel, len(betas)) == (11, scales)
    assert sum(betas) == pytest.approx(1.0)
    assert ms_ssim(a, b) == pytest.approx(_reference_ms_ssim(a, b, kernel, betas), abs=1e-4)


def test_ms_ssim_settings_rule_and_limits():
    assert [len(ms_ssim_settings(size)[1]) for size in (21, 43, 44, 98, 99, 175, 176, 512)] == [2, 2, 3, 3, 4, 4, 5, 5]
    assert ms_ssim_settings(256)[1] == pytest.approx((0.0448, 0.2856, 0.3001, 0.2363, 0.1333), abs=1e-3)
    with pytest.raises(ValueError, match="too small for MS-SSIM.*use ssim"):
        ms_ssim_settings(20)


def test_diversity_is_one_for_copies_and_lower_for_independent_samples():
    base = _texture(1, 64, 6)
    assert diversity(base.repeat(4, 1, 1, 1)) == pytest.approx(1.0, abs=1e-9)
    near_copies = torch.cat([_degrade(base, seed, 0.02) for seed in range(4)])
    independent = _texture(4, 64, 7)
    assert diversity(independent) < diversity(near_copies)
    pairs = [ms_ssim(independent[i : i + 1], independent[j : j + 1]) for i in range(4) for j in range(i + 1, 4)]
    assert diversity(independent) == pytest.approx(np.mean(pairs), abs=1e-9)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="image shapes differ"):
        ssim(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 16))
    with pytest.raises(ValueError, match=r"pass \(B, C, H, W\)"):
        psnr(torch.rand(32, 32), torch.rand(32, 32))
    with pytest.raises(ValueError, match="N ≥ 2"):
        diversity(torch.rand(1, 1, 64, 64))
