"""medcf.metrics.attribution against scikit-learn's AUROC and scikit-image's Otsu threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.filters import threshold_otsu
from sklearn.metrics import roc_auc_score

from medcf.metrics import (
    auroc_resamples,
    dice_otsu,
    normalized_cross_correlation,
    otsu_threshold,
    percentile_interval,
    pixel_auroc,
)


def _lesion_masks(batch: int = 3, size: int = 32) -> torch.Tensor:
    """(B, 1, size, size) masks, each a square lesion at a different place."""
    masks = torch.zeros(batch, 1, size, size)
    for index in range(batch):
        start = 4 + 6 * index
        masks[index, 0, start : start + 8, start : start + 10] = 1
    return masks


def _noisy_maps(masks: torch.Tensor, noise: float, seed: int = 0) -> torch.Tensor:
    """Signed maps: a negative-going lesion response (as a difference map gives) plus Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    return -masks + noise * torch.randn(masks.shape, generator=generator)


def test_pixel_auroc_matches_scikit_learn_including_ties():
    masks = _lesion_masks()
    maps = torch.round(_noisy_maps(masks, 0.8) * 4) / 4  # quantised: many tied scores
    expected = roc_auc_score(masks.flatten().numpy() > 0.5, maps.abs().flatten().numpy())
    assert pixel_auroc(maps, masks) == pytest.approx(expected, abs=1e-12)
    assert pixel_auroc(masks * 3.0 + 0.1, masks) == pytest.approx(1.0)


def test_each_bootstrap_resample_is_the_auroc_of_the_patients_it_drew_including_ties():
    masks = _lesion_masks(batch=5)
    maps = torch.round(_noisy_maps(masks, 0.8) * 4) / 4  # quantised: ties across and within images
    values = auroc_resamples(maps, masks, resamples=6, seed=3)
    draws = np.random.default_rng(3).integers(0, 5, size=(6, 5))  # the patients each resample drew
    expected = [roc_auc_score(masks[d].flatten().numpy() > 0.5, maps[d].abs().flatten().numpy()) for d in draws]
    assert values == pytest.approx(expected, abs=1e-12)


def test_bootstrap_resamples_pair_up_and_their_interval_covers_the_estimate():
    masks = _lesion_masks(batch=6, size=64)
    noisy, noisier = _noisy_maps(masks, 0.8), _noisy_maps(masks, 1.6, seed=1)
    first, second = (auroc_resamples(maps, masks, resamples=400) for maps in (noisy, noisier))
    assert np.array_equal(first, auroc_resamples(noisy, masks, resamples=400))  # same seed, same patients
    low, high = percentile_interval(first)
    assert low < pixel_auroc(noisy, masks) < high and high - low < 0.05
    low, high = percentile_interval(first - second)  # paired: the less noisy map is better in every draw
    assert 0 < low < pixel_auroc(noisy, masks) - pixel_auroc(noisier, masks) < high
    assert np.all(auroc_resamples(masks * 3.0 + 0.1, masks, resamples=20) == 1.0)


def test_normalized_cross_correlation_is_one_for_a_perfect_map_and_falls_with_noise():
    masks = _lesion_masks()
    assert normalized_cross_correlation(-2 * masks, masks) == pytest.approx(1.0, abs=1e-12)
    assert normalized_cross_correlation(_noisy_maps(masks, 1.0), masks) < normalized_cross_correlation(
        _noisy_maps(masks, 0.2), masks
    )
    maps = _noisy_maps(masks, 0.5)
    expected = np.mean(
        [np.corrcoef(m.abs().flatten().numpy(), k.flatten().numpy())[0, 1] for m, k in zip(maps, masks, strict=True)]
    )
    assert normalized_cross_correlation(maps, masks) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_otsu_threshold_matches_scikit_image(seed: int):
    generator = np.random.default_rng(seed)
    values = np.concatenate([generator.normal(0.2, 0.05, 700), generator.normal(0.7 + 0.05 * seed, 0.1, 300)])
    assert otsu_threshold(values) == pytest.approx(threshold_otsu(values), abs=1e-12)


def test_dice_otsu_is_one_for_a_clean_map_and_matches_a_hand_computation():
    masks = _lesion_masks()
    assert dice_otsu(masks * 0.9 + 0.05, masks) == pytest.approx(1.0)
    maps = _noisy_maps(masks, 0.3, seed=1)
    dices = []
    for values, target in zip(maps.abs().numpy(), masks.numpy() > 0.5, strict=True):
        predicted = values > threshold_otsu(values)
        dices.append(2 * (predicted & target).sum() / (predicted.sum() + target.sum()))
    assert dice_otsu(maps, masks) == pytest.approx(float(np.mean(dices)), abs=1e-12)


@pytest.mark.parametrize("metric", [pixel_auroc, normalized_cross_correlation, dice_otsu])
def test_undefined_cases_name_the_image(metric):
    masks = _lesion_masks()
    empty = masks.clone()
    empty[1] = 0
    with pytest.raises(ValueError, match="mask of image 1 is empty"):
        metric(_noisy_maps(masks, 0.3), empty)
    with pytest.raises(ValueError, match="must both be"):
        metric(torch.rand(3, 1, 32, 32), torch.ones(3, 1, 16, 16))


def test_a_constant_map_scores_no_localisation_instead_of_failing():
    masks = _lesion_masks()
    maps = _noisy_maps(masks, 0.3)
    constant = maps.clone()
    constant[2] = 0.5
    others = [0, 1] + list(range(3, len(masks)))
    assert normalized_cross_correlation(constant, masks) == pytest.approx(
        normalized_cross_correlation(maps[others], masks[others]) * (len(masks) - 1) / len(masks)
    )
    assert dice_otsu(constant, masks) == pytest.approx(
        dice_otsu(maps[others], masks[others]) * (len(masks) - 1) / len(masks)
    )
    flat = torch.zeros_like(maps)
    assert pixel_auroc(flat, masks) == 0.5 and normalized_cross_correlation(flat, masks) == 0.0


def test_full_mask_is_refused_where_background_is_needed():
    masks = torch.ones(1, 1, 8, 8)
    maps = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="image 0 covers the whole image"):
        normalized_cross_correlation(maps, masks)
    with pytest.raises(ValueError, match="AUROC needs background pixels"):
        pixel_auroc(maps, masks)
