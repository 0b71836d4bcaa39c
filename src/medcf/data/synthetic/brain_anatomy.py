"""The brain atlas: axial slices of nilearn's MNI152 T1 template, grey/white-matter maps and brain mask.

The template ships skull-stripped; a head is built around it from the distance to the brain so the
slice reads as a T1-weighted head MRI: a CSF rim, the skull's dark cortical tables around bright
diploic marrow, and bright scalp fat. Tissue contrast is sharpened towards typical 3 T T1 values
(white matter > grey matter > CSF) while keeping the template's own texture. Slices are shown in
radiological convention (patient's right on the image's left, anterior at the top).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

# Axial voxel indices of the 1 mm template (z = index - 72 mm) through the bodies of the lateral ventricles.
SLICES = (84, 88, 92, 96)
T1_LEVELS = {"csf": 0.10, "grey": 0.48, "white": 0.85}  # normalised T1-weighted signal per tissue
TEMPLATE_WEIGHT = 0.35  # share of the template's own intensities (texture, deep nuclei) in the atlas
# Head layers outside the brain, (outer distance in mm, T1 signal): CSF, inner table, diploe, outer table,
# scalp fat, skin; beyond the last layer is air.
HEAD_LAYERS = ((3.0, 0.08), (5.0, 0.04), (8.0, 0.45), (9.5, 0.04), (14.0, 0.80), (15.5, 0.45))
VENTRICLE_WINDOW = (0.5, 0.5, 0.22, 0.14)  # (row, col, radius row, radius col): where lateral ventricles lie


@dataclass(frozen=True)
class BrainAtlas:
    """One atlas slice at one resolution (size, size), float32; masks are soft in [0, 1]."""

    image: np.ndarray  # T1-weighted head slice, display convention
    brain: np.ndarray
    white: np.ndarray  # white-matter probability
    ventricles: np.ndarray
    cortex: np.ndarray  # grey matter bordering sulcal CSF: where cortical thinning shows
    ventricle_center: tuple[float, float]  # (row, col) fractions
    ventricle_radii: tuple[float, float]  # half extents (rows, cols), fractions


def _axial(volume: np.ndarray, index: int) -> np.ndarray:
    """Axial slice in radiological display orientation, zero-padded to a square."""
    picture = volume[:, :, index][::-1, ::-1].T  # RAS voxels → rows anterior-first, columns right-first
    rows, cols = picture.shape
    side = max(rows, cols)
    top, left = (side - rows) // 2, (side - cols) // 2
    padded = np.zeros((side, side), np.float32)
    padded[top : top + rows, left : left + cols] = picture
    return padded


@lru_cache(maxsize=1)
def _volumes() -> dict[str, np.ndarray]:
    """MNI152 template, grey and white matter, brain mask (1 mm), from the nilearn wheel (no download)."""
    from nilearn import datasets  # imported here: ~1 s, and only brain cohorts need it

    loaders = {
        "t1": datasets.load_mni152_template,
        "grey": datasets.load_mni152_gm_template,
        "white": datasets.load_mni152_wm_template,
        "brain": datasets.load_mni152_brain_mask,
    }
    return {name: np.asarray(load(resolution=1).get_fdata(), np.float32) for name, load in loaders.items()}


def _head(brain: np.ndarray) -> np.ndarray:
    """T1 signal of the non-brain head layers, from the distance (mm) outside the brain mask."""
    distance = ndimage.distance_transform_edt(brain < 0.5)
    signal = np.zeros(brain.shape, np.float32)
    inner = 0.0
    for outer, level in HEAD_LAYERS:
        signal[(distance > inner) & (distance <= outer)] = level
        inner = outer
    return ndimage.gaussian_filter(signal, 0.8)


def _window(shape: tuple[int, int], window: tuple[float, float, float, float]) -> np.ndarray:
    rows, cols = (np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5) / shape[0]
    row, col, radius_row, radius_col = window
    return ((rows - row) / radius_row) ** 2 + ((cols - col) / radius_col) ** 2 <= 1.0


@lru_cache(maxsize=len(SLICES))
def _slice_maps(index: int) -> dict[str, np.ndarray]:
    """Full-resolution (1 mm) maps of one slice: image, brain, white, ventricles, cortex."""
    volumes = _volumes()
    t1, grey, white, brain = (_axial(volumes[name], index) for name in ("t1", "grey", "white", "brain"))
    csf = np.clip(1.0 - grey - white, 0.0, 1.0) * brain
    t1 = np.clip(t1 / np.percentile(t1[brain > 0.5], 99.5), 0.0, 1.0)
    tissue = T1_LEVELS["csf"] * csf + T1_LEVELS["grey"] * grey + T1_LEVELS["white"] * white
    image = brain * (TEMPLATE_WEIGHT * t1 + (1 - TEMPLATE_WEIGHT) * tissue) + (1 - brain) * _head(brain)
    labels, _ = ndimage.label((csf > 0.5) & _window(csf.shape, VENTRICLE_WINDOW))
    sizes = np.bincount(labels.ravel())[1:]
    ventricles = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.2 * sizes.max())).astype(np.float32)
    sulcal = ndimage.gaussian_filter(np.maximum(csf * (1 - ventricles), 1 - brain), 1.5)
    cortex = np.clip(grey * sulcal / np.percentile(grey * sulcal, 99), 0.0, 1.0)
    return {"image": image, "brain": brain, "white": white, "ventricles": ventricles, "cortex": cortex}


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    resized = Image.fromarray(array.astype(np.float32), mode="F").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(resized)


@lru_cache(maxsize=16)
def brain_atlas(index: int, size: int) -> BrainAtlas:
    """Atlas slice `index` (an MNI152 axial voxel index from SLICES) at `size` pixels, cached per process."""
    maps = _slice_maps(index)
    rows, cols = np.nonzero(maps["ventricles"] > 0.5)
    side = maps["ventricles"].shape[0]
    center = (float(rows.mean() + 0.5) / side, float(cols.mean() + 0.5) / side)
    radii = (float(np.ptp(rows) + 1) / (2 * side), float(np.ptp(cols) + 1) / (2 * side))
    resized = {name: _resize(array, size) for name, array in maps.items()}
    return BrainAtlas(ventricle_center=center, ventricle_radii=radii, **resized)
