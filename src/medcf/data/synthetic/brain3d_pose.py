"""Geometry of a 3-D brain render: the subject's pose in the atlas, local 3-D magnification, atlas sampling.

Points are MNI millimetres (3, X, Y, Z): where in the atlas each output voxel looks. Every atlas map is
sampled at the same points, so the image, its masks and every finding drawn in atlas space move
together, as in the 2-D renderers (`warp`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from medcf.data.synthetic.brain import FEMALE_SCALE
from medcf.data.synthetic.brain3d_anatomy import FIELD_CENTER_MM, FIELD_OF_VIEW_MM, brain3d_shape, brain3d_spacing
from medcf.data.synthetic.brain_subject import BrainAnatomy
from medcf.data.synthetic.warp import _cubic_upsampling

STREAM = 3  # tag of the 3-D pose's random stream: the 2-D pose of the same subject draws (seed, size)
ELASTIC_CELLS = 5  # control points per side of the elastic field: smooth, organ-scale deformation
ELASTIC_MM = 2.0  # displacement amplitude (the 2-D cohort's 0.008 of a 233 mm slice)
PITCH_SD = 4.0  # degrees of nodding (rotation about the left-right axis); yaw is the 2-D rotation
Z_SHIFT_SD = 0.02  # head position along the bore, fraction of the field of view


@dataclass(frozen=True)
class Pose:
    """Where a subject's output voxels look in the atlas, and the scanner fields that no factor changes."""

    points: np.ndarray  # (3, X, Y, Z) MNI mm of the output voxels
    bias: np.ndarray  # (X, Y, Z) multiplicative coil-sensitivity field
    noise: np.ndarray  # (2, X, Y, Z) real and imaginary unit Gaussian noise


def smooth_field(rng: np.random.Generator, cells: int, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-scale random field on a cells³ grid, cubic-upsampled to `shape` float32."""
    field = rng.standard_normal((cells,) * len(shape), dtype=np.float32)
    for axis, count in enumerate(shape):  # separable: one (count, cells) interpolation matrix per axis
        field = np.moveaxis(np.tensordot(_cubic_upsampling(cells, count), field, axes=(1, axis)), 0, axis)
    return field


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    """3x3 rotation (degrees): yaw about the superior axis (in the axial plane), then pitch about the right one."""
    a, b = np.deg2rad(yaw), np.deg2rad(pitch)
    about_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return (about_x @ about_z).astype(np.float32)


@lru_cache(maxsize=8)
def subject_pose(anatomy: BrainAnatomy, size: int, sex: str) -> Pose:
    """The subject's placement, deformation, bias field and noise at `size`; sex enters only through head size."""
    rng = np.random.default_rng((anatomy.seed, size, STREAM))
    shape = brain3d_shape(size)
    axes = [
        (np.arange(count, dtype=np.float32) + 0.5 - count / 2) * step
        for count, step in zip(shape, brain3d_spacing(shape), strict=True)
    ]
    patient = np.stack(np.meshgrid(*axes, indexing="ij"))  # mm from the volume centre, RAS+
    pitch = float(np.clip(rng.normal(0.0, PITCH_SD), -10.0, 10.0))
    # The 2-D shift is (rows, columns) of a radiological slice: rows run posterior, columns to the patient's left.
    shift = (-anatomy.shift[1], -anatomy.shift[0], rng.normal(0.0, Z_SHIFT_SD))
    offset = np.asarray([s * extent for s, extent in zip(shift, FIELD_OF_VIEW_MM, strict=True)], np.float32)
    scale = anatomy.scale * (FEMALE_SCALE if sex == "F" else 1.0)
    scales = np.asarray([scale, scale * anatomy.aspect, scale], np.float32)
    moved = np.einsum("ij,j...->i...", _rotation(anatomy.rotation, pitch), patient - offset[:, None, None, None])
    center = np.asarray(FIELD_CENTER_MM, np.float32)[:, None, None, None]
    elastic = np.stack([ELASTIC_MM * smooth_field(rng, ELASTIC_CELLS, shape) for _ in range(3)])
    points = (moved / scales[:, None, None, None] + center + elastic).astype(np.float32)
    bias = 1.0 + anatomy.bias * smooth_field(rng, 3, shape)
    noise = rng.standard_normal((2, *shape), dtype=np.float32)
    for array in (points, bias, noise):
        array.flags.writeable = False  # cached and shared between renders
    return Pose(points, bias, noise)


def magnify(
    points: np.ndarray,
    center: tuple[float, float, float],
    radii: tuple[float, float, float],
    magnification: float,
    *,
    support: float,
) -> np.ndarray:
    """Show the ellipsoid (center, radii; mm) magnified; identity, bit for bit, beyond `support` radii.

    Applied to atlas points, so it enlarges a structure in place (ventricles, a lesion) and pushes its
    neighbours outward: the 3-D form of `warp.magnify`.
    """
    center_array = np.asarray(center, np.float32)[:, None, None, None]
    radii_array = np.asarray(radii, np.float32)[:, None, None, None]
    offset = points - center_array
    rho = np.sqrt(((offset / radii_array) ** 2).sum(axis=0))
    ramp = np.clip((support - rho) / (support - 1.0), 0.0, 1.0)
    weight = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no kink where the warp fades out
    factor = 1.0 - (1.0 - 1.0 / magnification) * weight
    return np.where(rho >= support, points, center_array + offset * factor).astype(np.float32)


def sample(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Trilinear value of an atlas map at fractional grid indices (3, ...); beyond the grid, the edge value."""
    return ndimage.map_coordinates(array, index, order=1, mode="nearest")
