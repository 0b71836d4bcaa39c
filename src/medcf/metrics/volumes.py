"""Distances between two sets of volumes: slice-wise through a 2-D feature extractor, volume-wise on CT features.

No pretrained 3-D feature network ships with any installed package (Med3D / MedicalNet weights are downloads), so a
volume-wise FID here is a Fréchet distance (Heusel et al. 2017, Eq. 6) on hand-crafted, named CT features of each
whole volume: the attenuation histogram and the quantitative-CT measures COPDGene reports — the low-attenuation
area below −950 HU of the lung (LAA−950, the emphysema index), the 15th percentile of lung attenuation (Perc15) and
the mean lung attenuation. "Lung" is the voxels in [−1024, −500] HU not connected to the volume's border (the air
around the body is), the classic threshold-and-connectivity lung segmentation, so generated volumes need no masks.
The slice-wise distance stacks `slices` central axial slices of every volume and compares them as 2-D images.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from medcf.metrics.distribution import frechet_distance

HISTOGRAM_EDGES_HU = (-1024, -950, -900, -850, -800, -700, -500, -200, -50, 20, 80, 200, 400, 1024)
LUNG_HU = (-1024.0, -500.0)
CT_FEATURES = (
    *(f"fraction {low}..{high} HU" for low, high in zip(HISTOGRAM_EDGES_HU[:-1], HISTOGRAM_EDGES_HU[1:], strict=True)),
    "lung fraction",
    "LAA-950 of lung",
    "Perc15 of lung (HU)",
    "mean lung HU",
)


def ct_features(volume_hu: np.ndarray) -> np.ndarray:
    """The CT_FEATURES of one volume (X, Y, Z) in HU, float64 (HU features divided by 100, so no feature dominates
    the Fréchet distance by its units alone)."""
    values = np.asarray(volume_hu, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("volume_hu is empty or holds NaN/inf; pass finite HU values")
    histogram = np.histogram(np.clip(values, -1024, 1024), bins=HISTOGRAM_EDGES_HU)[0] / values.size
    lung = values[lung_mask(np.asarray(volume_hu)).ravel()]
    if lung.size == 0:  # no aerated lung at all: the lung measures at the edge of their range
        lung_measures = [0.0, 0.0, LUNG_HU[1] / 100, LUNG_HU[1] / 100]
    else:
        lung_measures = [lung.size / values.size, float((lung < -950).mean()), np.percentile(lung, 15) / 100,
                         lung.mean() / 100]  # fmt: skip
    return np.concatenate([histogram, lung_measures])


def lung_mask(volume_hu: np.ndarray) -> np.ndarray:
    """Aerated voxels ([−1024, −500] HU) of the components that do not touch the volume's border."""
    air = (volume_hu >= LUNG_HU[0]) & (volume_hu <= LUNG_HU[1])
    labels, _ = ndimage.label(air)
    border = np.unique(np.concatenate([np.moveaxis(labels, axis, 0)[[0, -1]].ravel() for axis in range(labels.ndim)]))
    return air & ~np.isin(labels, border)


def volume_frechet_distance(volumes_a: np.ndarray, volumes_b: np.ndarray) -> float:
    """Fréchet distance between two sets of CT volumes (N, X, Y, Z) in HU on their CT_FEATURES."""
    features = [
        torch.from_numpy(np.stack([ct_features(volume) for volume in volumes])) for volumes in (volumes_a, volumes_b)
    ]
    return frechet_distance(*features)


def axial_slices(volumes: torch.Tensor, slices: int = 4) -> torch.Tensor:
    """Volumes (N, C, X, Y, Z) → their `slices` central axial slices (N · slices, C, Y, X), in medcf's display
    orientation (anterior up, the patient's right on the left), for a 2-D extractor's slice-wise distance."""
    if volumes.dim() != 5 or not 1 <= slices <= volumes.shape[-1]:
        raise ValueError(f"volumes {tuple(volumes.shape)}, slices={slices}: pass (N, C, X, Y, Z) and 1 ≤ slices ≤ Z")
    middle, depth = volumes.shape[-1] // 2, volumes.shape[-1]
    start = min(max(middle - slices // 2, 0), depth - slices)
    chosen = volumes[..., start : start + slices].movedim(-1, 1)  # (N, slices, C, X, Y)
    planes = chosen.reshape(-1, volumes.shape[1], *volumes.shape[2:4])
    return planes.transpose(-1, -2).flip(-2, -1)
