"""Atrophy measures of an axial T1-weighted brain slice, read from the image itself: what a counterfactual
"20 years older" or "with Alzheimer's disease" must change, measured the same way on a model's output and on the
renderer's true counterfactual.

CSF is T1-dark: pixels below `CSF_LEVEL` of the brain's bright (white-matter) signal, the 95th percentile inside
the brain mask, so scanner gain and bias do not move the threshold. Inside the brain eroded by `CENTRAL_DEPTH` of
the slice, dark pixels are the lateral ventricles (ex-vacuo ventriculomegaly of ageing and AD); in the outer rim
they are widened sulci, and the rim's mean signal falls as the cortex thins (Fjell & Walhovd 2010; Frisoni et al.
2010 for the temporo-parietal pattern of AD). Areas are fractions of the brain mask, so they compare across
resolutions and head sizes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CSF_LEVEL = 0.4  # CSF (T1 ≈ 0.1) sits far below grey (≈ 0.5) and white matter (≈ 0.85) of the bright level
CENTRAL_DEPTH = 0.12  # erosion depth, in slice widths, that leaves the ventricles and deep tissue
MEASURES = ("ventricles", "sulcal_csf", "cortical_signal")


def atrophy_measures(image: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """{ventricles, sulcal_csf: dark area as a fraction of the brain; cortical_signal: mean of the outer rim} of a
    display image (H, W) in [0, 1] with its brain mask (H, W) bool."""
    if image.shape != brain.shape or image.ndim != 2:
        raise ValueError(f"atrophy_measures: image {image.shape} and brain mask {brain.shape} must be one 2-D shape")
    brain = brain.astype(bool)
    if brain.sum() < 16:
        raise ValueError(f"atrophy_measures: the brain mask holds {int(brain.sum())} pixels; pass the brain's mask")
    central = ndimage.binary_erosion(brain, iterations=max(1, round(image.shape[0] * CENTRAL_DEPTH)))
    rim = brain & ~central
    dark = image < CSF_LEVEL * np.percentile(image[brain], 95)
    area = float(brain.sum())
    return {
        "ventricles": float((dark & central).sum()) / area,
        "sulcal_csf": float((dark & rim).sum()) / area,
        "cortical_signal": float(image[rim].mean()),
    }


def atrophy_change(before: np.ndarray, after: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """after − before of every atrophy measure, both read inside the same brain mask."""
    first, second = atrophy_measures(before, brain), atrophy_measures(after, brain)
    return {name: second[name] - first[name] for name in MEASURES}
