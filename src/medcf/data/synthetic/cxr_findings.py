"""Chest findings and factor effects drawn in atlas space: densities, and a mask for each finding.

Densities are in display units (1 = white) and add to the radiograph before the exposure response,
as attenuations add along an X-ray path. `points` are normalised atlas coordinates (2, H, W) from
`warp`; lung masks are the atlas lung masks sampled at the same points.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from medcf.data.synthetic.cxr_subject import CxrGeometry
from medcf.data.synthetic.warp import sample, smooth_field

FIELD_SIZE = 96  # atlas resolution of the subject's texture fields
# Hemidiaphragms traced on the atlas, medial to lateral as (x, y): the floor pleural fluid layers on.
DIAPHRAGMS = {
    "right": ((0.35, 0.72), (0.33, 0.74), (0.25, 0.735), (0.17, 0.75), (0.10, 0.77), (0.055, 0.79)),
    "left": ((0.80, 0.76), (0.85, 0.795), (0.92, 0.81)),
}
# Breast shadows over the lower zones (x, y, radius x, radius y): soft tissue with a curved inferior edge.
BREASTS = ((0.20, 0.68, 0.17, 0.13), (0.80, 0.70, 0.17, 0.13))
BREAST_DENSITY = 0.07
SMOKING_SHIFT = 0.06  # mean lung density added by current smoking (DGM-VLC: smoking shifts lung intensity)
SMOKING_TEXTURE = 0.04  # extra reticular ("dirty lung") density at the texture peaks, current smoking


@lru_cache(maxsize=32)
def texture_fields(seed: int) -> dict[str, np.ndarray]:
    """Subject-specific random fields in atlas space (FIELD_SIZE px): reticulation, lesion shape, airways."""
    rng = np.random.default_rng((seed, 7))
    reticulation = smooth_field(rng, 32, FIELD_SIZE)
    return {
        "reticulation": np.clip(reticulation, 0.0, None) / max(float(reticulation.max()), 1e-6),
        "outline": smooth_field(rng, 14, FIELD_SIZE),
        "airways": smooth_field(rng, 12, FIELD_SIZE),
        "mottling": smooth_field(rng, 20, FIELD_SIZE),
    }


def _smoothstep(values: np.ndarray) -> np.ndarray:
    clipped = np.clip(values, 0.0, 1.0)
    return clipped * clipped * (3.0 - 2.0 * clipped)


def smoking_density(lungs: np.ndarray, reticulation: np.ndarray, level: float) -> np.ndarray:
    """Diffuse lung density increase: uniform shift plus reticular markings, both ∝ level (0, ½, 1)."""
    return level * lungs * (SMOKING_SHIFT + SMOKING_TEXTURE * reticulation)


def breast_density(points: np.ndarray) -> np.ndarray:
    """Female breast shadows: density fading in from above, ending at a sharp curved inferior margin."""
    rows, cols = points
    density = np.zeros(rows.shape, np.float32)
    for x, y, rx, ry in BREASTS:
        rho = np.sqrt(((cols - x) / rx) ** 2 + ((rows - y) / ry) ** 2)
        inside = _smoothstep((1.0 - rho) / 0.12)
        fade_in = np.clip((rows - (y - ry)) / (1.2 * ry), 0.0, 1.0)
        density += BREAST_DENSITY * inside * fade_in
    return density


def nodule(points: np.ndarray, geometry: CxrGeometry) -> tuple[np.ndarray, np.ndarray]:
    """A solid round nodule: projected-sphere density profile and its disc mask."""
    x, y = geometry.nodule_center
    rho2 = ((points[1] - x) ** 2 + (points[0] - y) ** 2) / geometry.nodule_radius**2
    density = geometry.nodule_density * np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0))
    return density.astype(np.float32), rho2 < 1.0


def consolidation(
    points: np.ndarray, lungs: np.ndarray, geometry: CxrGeometry, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lobar airspace filling (fraction of water density, 0-1): irregular, mottled, with air bronchograms."""
    fields = texture_fields(seed)
    x, y = geometry.consolidation_center
    rx, ry = geometry.consolidation_radii
    rho = np.sqrt(((points[1] - x) / rx) ** 2 + ((points[0] - y) / ry) ** 2)
    outline = 1.0 + 0.3 * sample(fields["outline"], points)
    weight = _smoothstep((outline - rho) / 0.8) * lungs  # ill-defined margin, as in airspace disease
    mottling = 0.85 + 0.2 * sample(fields["mottling"], points)
    # Air bronchograms: aerated bronchi stay dark inside the opacified lobe (zero crossings of a field).
    segments = np.clip(sample(fields["mottling"], points), 0.0, 1.0)  # breaks the airways into short branches
    bronchi = np.exp(-((sample(fields["airways"], points) / 0.1) ** 2)) * segments
    fraction = geometry.consolidation_density * weight * np.clip(mottling - 0.4 * bronchi, 0.0, 1.0)
    return fraction.astype(np.float32), weight > 0.5


def effusion_weight(points: np.ndarray, lungs: dict[str, np.ndarray], geometry: CxrGeometry) -> np.ndarray:
    """Pleural fluid fraction (0-1): a layer over the hemidiaphragm rising to a meniscus at the chest wall."""
    sides = ("right", "left") if geometry.effusion_side == "both" else (geometry.effusion_side,)
    weight = np.zeros(points.shape[1:], np.float32)
    for side in sides:
        xs, ys = np.array(DIAPHRAGMS[side]).T
        medial, lateral = xs[0], xs[-1]
        lateral_fraction = np.clip((points[1] - medial) / (lateral - medial), 0.0, 1.0)
        order = np.argsort(xs)
        floor = np.interp(points[1], xs[order], ys[order])
        surface = floor - geometry.effusion_height * (0.4 + 1.2 * lateral_fraction**2)
        # Layering fluid is thin at its top on a PA film, so the upper margin fades in over ~4 % of the image.
        depth = np.clip((points[0] - surface) / 0.04, 0.0, 1.0)
        weight = np.maximum(weight, lungs[side] * np.sqrt(depth) * (0.75 + 0.25 * lateral_fraction))
    return weight
