"""Scores of attribution maps (B, 1, H, W) against ground-truth lesion masks (B, 1, H, W) in {0, 1}.

Protocols: normalised cross-correlation as in VA-GAN (Baumgartner et al., CVPR 2018, Sec. 4.2);
pixel-wise AUROC and Dice of an Otsu-thresholded map as in Wolleb et al. (MICCAI 2022, Sec. 3).
Maps are scored by magnitude |map|: a signed difference map marks a lesion whether it adds or removes intensity.
A constant map (e.g. a Grad-CAM whose ReLU zeroes every cell) points nowhere: it scores NCC 0 and Dice 0, and
its pixels tie in the pooled AUROC, rather than stopping a benchmark.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata


def _as_arrays(maps: torch.Tensor, masks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-image flattened |map| (B, H*W) float64 and mask (B, H*W) bool, with empty masks refused."""
    if maps.dim() != 4 or maps.shape != masks.shape:
        raise ValueError(
            f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must both be (B, 1, H, W) of one size"
        )
    magnitude = maps.detach().cpu().double().abs().flatten(1).numpy()
    lesion = (masks.detach().cpu().flatten(1) > 0.5).numpy()
    for index in range(len(magnitude)):
        if not lesion[index].any():
            raise ValueError(f"mask of image {index} is empty; drop images without a lesion before scoring")
    return magnitude, lesion


def pixel_auroc(maps: torch.Tensor, masks: torch.Tensor) -> float:
    """Area under the ROC curve of |map| as a lesion score, pooled over all pixels of all images.

    Mann–Whitney form with average ranks for ties: AUC = (R₊ − n₊(n₊ + 1)/2) / (n₊ n₋).
    """
    magnitude, lesion = _as_arrays(maps, masks)
    scores, labels = magnitude.ravel(), lesion.ravel()
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if negatives == 0:
        raise ValueError("masks cover every pixel; AUROC needs background pixels")
    rank_sum = rankdata(scores)[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def auroc_resamples(maps: torch.Tensor, masks: torch.Tensor, *, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """The pooled pixel AUROC on `resamples` bootstrap resamples of the images (patients drawn with replacement;
    Efron & Tibshirani 1993): its spread is what the choice of patients leaves uncertain. The same seed draws
    the same patients for any two methods scored on the same cases, so the difference of their resamples is a
    paired bootstrap of the difference of their AUROCs.

    A patient drawn k times counts k times, so each resample is the Mann–Whitney statistic with weights, counted
    over tie groups of the pooled scores sorted once: AUC = Σ_g w₊(g)·(w₋(below g) + w₋(g)/2) / (W₊·W₋).
    """
    magnitude, lesion = _as_arrays(maps, masks)
    order = np.argsort(magnitude.ravel(), kind="stable")
    scores, labels = magnitude.ravel()[order], lesion.ravel()[order]
    image = np.repeat(np.arange(len(magnitude)), magnitude.shape[1])[order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])  # first pixel of each tie group
    draws = np.random.default_rng(seed).integers(0, len(magnitude), size=(resamples, len(magnitude)))
    values = np.empty(resamples)
    for index, drawn in enumerate(draws):
        weight = np.bincount(drawn, minlength=len(magnitude))[image].astype(np.float64)
        positive = np.add.reduceat(weight * labels, starts)
        negative = np.add.reduceat(weight * ~labels, starts)
        below = np.cumsum(negative) - negative
        values[index] = (positive * (below + negative / 2)).sum() / (positive.sum() * negative.sum())
    return values


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The central `confidence` interval of bootstrap values (the percentile method, Efron & Tibshirani §13.3)."""
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def normalized_cross_correlation(maps: torch.Tensor, masks: torch.Tensor) -> float:
    """Mean over images of the NCC between |map| and mask, each standardised to zero mean, unit variance."""
    magnitude, lesion = _as_arrays(maps, masks)
    correlations = []
    for index, (values, target) in enumerate(zip(magnitude, lesion.astype(np.float64), strict=True)):
        if target.all():
            raise ValueError(f"mask of image {index} covers the whole image; NCC needs background pixels")
        if np.ptp(values) == 0:
            correlations.append(0.0)  # a constant map correlates with nothing
            continue
        values = (values - values.mean()) / values.std()
        target = (target - target.mean()) / target.std()
        correlations.append((values * target).mean())
    return float(np.mean(correlations))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu (1979) threshold: the histogram split maximising between-class variance w₁w₂(μ₁ − μ₂)²."""
    counts, edges = np.histogram(values, bins=bins, range=(values.min(), values.max()))
    centers = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)  # pixels at or below each bin
    weight_high = np.cumsum(counts[::-1])[::-1]  # pixels at or above each bin
    mean_low = np.cumsum(counts * centers) / np.maximum(weight_low, 1)
    mean_high = (np.cumsum((counts * centers)[::-1]) / np.maximum(weight_high[::-1], 1))[::-1]
    between = weight_low[:-1] * weight_high[1:] * (mean_low[:-1] - mean_high[1:]) ** 2
    return float(centers[np.argmax(between)])


def dice_otsu(maps: torch.Tensor, masks: torch.Tensor) -> float:
    """Mean over images of the Dice overlap between {|map| > Otsu threshold} and the mask."""
    magnitude, lesion = _as_arrays(maps, masks)
    dices = []
    for values, target in zip(magnitude, lesion, strict=True):
        predicted = values > otsu_threshold(values) if np.ptp(values) > 0 else np.zeros_like(target)
        dices.append(2 * (predicted & target).sum() / (predicted.sum() + target.sum()))
    return float(np.mean(dices))
