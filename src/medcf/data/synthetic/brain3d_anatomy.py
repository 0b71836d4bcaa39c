"""The 3-D brain atlas: nilearn's MNI152 T1 template, grey/white-matter maps and brain mask as head volumes.

The same recipe as the 2-D atlas (`brain_anatomy`), in three dimensions: tissue contrast sharpened towards
3 T T1 values, a head built around the skull-stripped template from the 3-D distance to the brain (CSF
rim, skull tables, diploe, scalp), the lateral ventricles as the large CSF components near the centre,
and the cortex that borders sulcal CSF. Maps are made at the template's 1 mm, then resampled once per
output size onto an isotropic grid at the output voxel size, anti-aliased (cached per process).

Coordinates are MNI millimetres, RAS+ (x → patient Right, y → Anterior, z → Superior). The rendered
volume covers FIELD_OF_VIEW_MM around FIELD_CENTER_MM: 64 x 64 x 48 voxels of 3.75 mm at the default size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from medcf.data.synthetic.brain_anatomy import T1_LEVELS, TEMPLATE_WEIGHT, _head, _volumes
from medcf.data.synthetic.brain_subject import BrainGeometry

FIELD_OF_VIEW_MM = (240.0, 240.0, 180.0)  # (R-L, A-P, S-I): the whole head with a margin, vertex to foramen magnum
FIELD_CENTER_MM = (0.0, -17.0, 12.0)  # MNI point at the volume's centre: the middle of the template's head
MNI_ORIGIN_MM = (-98.0, -134.0, -72.0)  # MNI position of voxel (0, 0, 0) of nilearn's 1 mm template
# Ellipsoid (centre mm, semi-axes mm) that holds the lateral ventricles and little sulcal CSF.
VENTRICLE_WINDOW_MM = ((0.0, -12.0, 12.0), (32.0, 48.0, 28.0))
# The 2-D atlas slices are the template's axial planes zero-padded to a square of this side (mm): its
# normalised coordinates map to MNI millimetres through it (`lesion_center_mm`).
SLICE_SIDE_MM = 233.0


@dataclass(frozen=True)
class Brain3dAtlas:
    """Atlas maps on an isotropic grid (float32, soft masks in [0, 1]) and where the ventricles lie."""

    image: np.ndarray  # T1-weighted head
    brain: np.ndarray
    white: np.ndarray  # white-matter probability
    ventricles: np.ndarray
    cortex: np.ndarray  # grey matter bordering sulcal CSF: where cortical thinning shows
    spacing: float  # mm between grid points
    ventricle_center: tuple[float, float, float]  # MNI mm
    ventricle_radii: tuple[float, float, float]  # half extents (mm)

    def index(self, points: np.ndarray) -> np.ndarray:
        """MNI points (3, ...) mm → fractional grid indices for `ndimage.map_coordinates`."""
        origin = np.asarray(MNI_ORIGIN_MM, np.float32).reshape(3, *([1] * (points.ndim - 1)))
        return (points - origin) / np.float32(self.spacing)


def brain3d_shape(size: int) -> tuple[int, int, int]:
    """Volume shape (X, Y, Z) for an in-plane `size`: 3/4 as many axial slices, so voxels are ~isotropic."""
    return size, size, (3 * size) // 4


def brain3d_spacing(shape: tuple[int, ...]) -> tuple[float, float, float]:
    """Voxel size (mm) of a volume of `shape` covering FIELD_OF_VIEW_MM."""
    return tuple(extent / count for extent, count in zip(FIELD_OF_VIEW_MM, shape, strict=True))


def lesion_center_mm(geometry: BrainGeometry, slice_index: int) -> tuple[float, float, float]:
    """MNI position of a lesion the 2-D cohort places on axial slice `slice_index` (same subject, same lesion).

    The 2-D slice shows voxel (i, j) at row 232 - j, column 214 - i (radiological, padded 18 columns).
    """
    column = geometry.lesion_center[0] * SLICE_SIDE_MM - 0.5
    row = geometry.lesion_center[1] * SLICE_SIDE_MM - 0.5
    return 116.0 - column, 98.0 - row, float(slice_index) + MNI_ORIGIN_MM[2]


def _ventricles(csf: np.ndarray) -> np.ndarray:
    """Lateral ventricles: CSF components inside the central window at least a fifth the largest's size."""
    axes = [np.arange(n, dtype=np.float32) + origin for n, origin in zip(csf.shape, MNI_ORIGIN_MM, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    (cx, cy, cz), (ax, ay, az) = VENTRICLE_WINDOW_MM
    window = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1.0
    labels, _ = ndimage.label((csf > 0.5) & window)
    sizes = np.bincount(labels.ravel())[1:]
    return np.isin(labels, 1 + np.flatnonzero(sizes >= 0.2 * sizes.max())).astype(np.float32)


def _full_resolution_maps() -> dict[str, np.ndarray]:
    """1 mm maps of the whole template: image, brain, white, ventricles, cortex (not cached: ~300 MB)."""
    volumes = _volumes()
    t1, grey, white, brain = (volumes[name] for name in ("t1", "grey", "white", "brain"))
    csf = np.clip(1.0 - grey - white, 0.0, 1.0) * brain
    t1 = np.clip(t1 / np.percentile(t1[brain > 0.5], 99.5), 0.0, 1.0)
    tissue = T1_LEVELS["csf"] * csf + T1_LEVELS["grey"] * grey + T1_LEVELS["white"] * white
    image = brain * (TEMPLATE_WEIGHT * t1 + (1 - TEMPLATE_WEIGHT) * tissue) + (1 - brain) * _head(brain)
    ventricles = _ventricles(csf)
    sulcal = ndimage.gaussian_filter(np.maximum(csf * (1 - ventricles), 1 - brain), 1.5)
    cortex = np.clip(grey * sulcal / np.percentile(grey * sulcal, 99), 0.0, 1.0)
    return {"image": image, "brain": brain, "white": white, "ventricles": ventricles, "cortex": cortex}


def _resample(array: np.ndarray, spacing: float) -> np.ndarray:
    """A 1 mm map on the isotropic grid of `spacing` mm with the same origin, anti-aliased."""
    if spacing > 1.0:
        array = ndimage.gaussian_filter(array, 0.4 * spacing)  # a little wider than one output voxel's box (s/√12)
    shape = [int(np.ceil(n / spacing)) for n in array.shape]
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) * spacing for n in shape], indexing="ij", sparse=True)
    coordinates = np.broadcast_arrays(*grid)
    return ndimage.map_coordinates(array, coordinates, order=1, mode="nearest").astype(np.float32)


@lru_cache(maxsize=4)
def brain3d_atlas(size: int) -> Brain3dAtlas:
    """The atlas at the voxel size of a `size` volume (the smallest side of its voxels), cached per process."""
    spacing = min(brain3d_spacing(brain3d_shape(size)))
    maps = _full_resolution_maps()
    voxels = np.argwhere(maps["ventricles"] > 0.5)
    low, high = voxels.min(axis=0), voxels.max(axis=0)
    center = tuple(float((a + b) / 2 + o) for a, b, o in zip(low, high, MNI_ORIGIN_MM, strict=True))
    radii = tuple(float((b - a + 1) / 2) for a, b in zip(low, high, strict=True))
    resampled = {name: _resample(array, spacing) for name, array in maps.items()}
    return Brain3dAtlas(spacing=spacing, ventricle_center=center, ventricle_radii=radii, **resampled)
