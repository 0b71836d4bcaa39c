"""An analytic chest CT phantom: body, fat, lungs, heart, airways, spine, ribs and sternum as smooth solids.

No real chest CT volume ships with the install (pydicom's CT_small.dcm is one 128x128 slice), so the
anatomy is analytic: ellipses, ellipsoids and tubes placed in patient millimetres and rasterised with a
partial-volume edge (occupancy falls from 1 to 0 over one voxel), so the same anatomy renders at every size.

Coordinates: voxel axes (X, Y, Z) are RAS+ (i → patient Right, j → Anterior, k → Superior), as NIfTI
readers expect after `as_closest_canonical`. The field of view is FIELD_OF_VIEW_MM, centred on the volume,
so a 64x64x32 volume (DGM-VLC's patch size) has 5.6 x 5.6 x 9.4 mm voxels, a typical thick-slice thorax.
Layout (A, B: lateral and antero-posterior semi-axes of the fat-free body, in mm):
lungs are ellipsoids centred at x = ±0.47 A with a diaphragmatic dome cut from below (the right dome
higher, over the liver); the heart sits anterior and to the patient's left; the trachea runs down the
midline to the carina and splits into the two main bronchi; the spine is posterior in the midline; ribs
are arcs in the chest wall descending anteriorly; the sternum is anterior.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from medcf.data.synthetic.ct_subject import CtAnatomy

FIELD_OF_VIEW_MM = (360.0, 360.0, 300.0)  # (R-L, A-P, S-I): a broad adult thorax fits with a margin
FEMALE_SCALE = 0.92  # female thorax width relative to male (chest CT anthropometry: ~8 % narrower)
MALE_WIDTH_MM = 300.0  # lateral body diameter of the reference phantom
AP_RATIO = 0.7  # antero-posterior / lateral body diameter of the reference phantom
LUNG_HEIGHT_MM = 250.0  # apex to the deepest costophrenic recess, reference male


def ct_shape(size: int) -> tuple[int, int, int]:
    """Volume shape (X, Y, Z) for an in-plane `size`: half as many, thicker, axial slices (DGM-VLC 64x64x32)."""
    return size, size, size // 2


def ct_spacing(shape: tuple[int, ...]) -> tuple[float, float, float]:
    """Voxel size (mm) of a volume of `shape` covering FIELD_OF_VIEW_MM."""
    return tuple(extent / count for extent, count in zip(FIELD_OF_VIEW_MM, shape, strict=True))


@dataclass(frozen=True)
class LungFrame:
    """One lung's ellipsoid: centre and semi-axes (mm), and the sign that makes +x lateral."""

    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    lateral_sign: float  # +1 right lung (patient's right is +x in RAS), -1 left lung


@dataclass(frozen=True)
class Thorax:
    """One subject's anatomy at one shape: patient coordinates (mm) and tissue occupancies in [0, 1]."""

    x: np.ndarray  # (X, 1, 1) mm, + toward the patient's right
    y: np.ndarray  # (1, Y, 1) mm, + anterior
    z: np.ndarray  # (1, 1, Z) mm, + superior
    body: np.ndarray  # (X, Y, Z) everything inside the skin
    soft_tissue: np.ndarray  # body minus subcutaneous fat
    lungs: dict[str, np.ndarray]  # "right", "left": aerated lung field (no airways, heart, bone)
    frames: dict[str, LungFrame]
    heart: np.ndarray
    airway_wall: np.ndarray  # lumen plus a 2 mm wall
    airway_lumen: np.ndarray
    bone: np.ndarray
    spinal_canal: np.ndarray


def occupancy(distance_mm: np.ndarray, edge_mm: float) -> np.ndarray:
    """Partial-volume fraction from a signed distance (negative inside): 1 → 0 across one `edge_mm`."""
    return np.clip(0.5 - distance_mm / edge_mm, 0.0, 1.0).astype(np.float32)


def ellipsoid_distance(points: tuple[np.ndarray, ...], center, semi_axes) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipsoid (or ellipse with two axes)."""
    radius = np.sqrt(sum(((p - c) / a) ** 2 for p, c, a in zip(points, center, semi_axes, strict=True)))
    return (radius - 1.0) * min(semi_axes)


def _segment_distance(x, y, z, start, end) -> np.ndarray:
    """Distance (mm) from every voxel to the segment start → end."""
    start, direction = np.asarray(start, float), np.subtract(end, start)
    along = ((x - start[0]) * direction[0] + (y - start[1]) * direction[1] + (z - start[2]) * direction[2]) / (
        direction @ direction
    )
    t = np.clip(along, 0.0, 1.0)
    return np.sqrt(sum((p - (s + t * d)) ** 2 for p, s, d in zip((x, y, z), start, direction, strict=True)))


def _coordinates(shape: tuple[int, int, int], shift_mm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient coordinates (mm) of the voxel centres; the patient sits `shift_mm` off the volume centre."""
    spacing = ct_spacing(shape)
    axes = [
        (np.arange(n) - (n - 1) / 2) * step - offset for n, step, offset in zip(shape, spacing, shift_mm, strict=True)
    ]
    return axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]


def _lung_frames(inner: tuple[float, float], lung_scale: float, height_scale: float) -> dict[str, LungFrame]:
    """Lung ellipsoids; the lungs reach the ribs (the chest wall clips them) and the left is the smaller."""
    width, depth = inner[0] * lung_scale, inner[1] * lung_scale
    semi_z = LUNG_HEIGHT_MM / 2 * lung_scale * height_scale
    center_z = -10.0 * height_scale
    return {
        "right": LungFrame((0.47 * width, -0.05 * depth, center_z), (0.36 * width, 0.68 * depth, semi_z), 1.0),
        "left": LungFrame((-0.47 * width, -0.05 * depth, center_z), (0.34 * width, 0.68 * depth, semi_z), -1.0),
    }


def _lung(x, y, z, frame: LungFrame, dome_top: float, edge: float) -> np.ndarray:
    """Lung ellipsoid cut from below by a diaphragmatic dome, lowest at the costophrenic recesses."""
    (cx, cy, cz), (ax, ay, az) = frame.center, frame.semi_axes
    reach = np.clip(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2, 0.0, 1.0)
    dome = cz + dome_top * az - 0.55 * az * reach
    return np.minimum(
        occupancy(ellipsoid_distance((x, y, z), frame.center, frame.semi_axes), edge), occupancy(dome - z, edge)
    )


def _skeleton(x, y, z, inner: tuple[float, float], edge: float) -> tuple[np.ndarray, np.ndarray]:
    """(bone, spinal canal) occupancies: vertebrae, posterior arch, ribs, sternum."""
    width, depth = inner
    body_z = np.ones_like(z)
    vertebra = occupancy(ellipsoid_distance((x, y), (0.0, -0.5 * depth), (17.0, 15.0)), edge) * body_z
    canal_center = (0.0, -0.5 * depth - 26.0)
    canal = occupancy(ellipsoid_distance((x, y), canal_center, (7.0, 7.0)), edge) * body_z
    arch = occupancy(ellipsoid_distance((x, y), canal_center, (12.0, 12.0)), edge) * body_z - canal
    radius = np.sqrt((x / width) ** 2 + (y / depth) ** 2)
    angle = np.arctan2(y / depth, x / width)  # +π/2 anterior, -π/2 posterior
    wall = occupancy(np.abs(radius - (1.0 - 9.0 / np.sqrt(width * depth))) * np.sqrt(width * depth) - 4.5, edge)
    arc = (np.abs(angle + np.pi / 2) > 0.35) & (np.abs(angle - np.pi / 2) > 0.45)  # spine and costal cartilage
    descent = 20.0 * (np.sin(angle) + 1.0) / 2.0  # ribs run down and forward from the spine
    levels = np.arange(-100.0, 101.0, 25.0)  # 9 ribs, 25 mm apart
    rib_z = np.max([occupancy(np.abs(z - level + descent) - 5.0, edge) for level in levels], axis=0)
    ribs = wall * rib_z * arc
    sternum = occupancy(ellipsoid_distance((x, y, z), (0.0, depth - 14.0, 0.0), (15.0, 7.0, 90.0)), edge)
    bone = np.maximum.reduce([vertebra, np.clip(arch, 0, 1), ribs, sternum])
    return bone.astype(np.float32), canal.astype(np.float32)


def _airways(x, y, z, inner: tuple[float, float], carina_z: float, scale: float, edge: float):
    """(lumen, lumen + wall) occupancies of the trachea and main bronchi."""
    width, depth = inner
    carina = (0.0, -0.1 * depth, carina_z)
    top = (0.0, -0.1 * depth, 400.0)  # beyond the field of view: the trachea leaves through the top
    branches = [
        (top, carina, 9.0 * scale),  # trachea: ~18 mm lumen in adult men
        (carina, (0.33 * width, -0.12 * depth, carina_z - 30.0), 6.5 * scale),  # right main bronchus: steeper
        (carina, (-0.33 * width, -0.12 * depth, carina_z - 40.0), 5.5 * scale),  # left: longer, narrower
    ]
    distances = [(_segment_distance(x, y, z, start, end), radius) for start, end, radius in branches]
    lumen = np.max([occupancy(distance - radius, edge) for distance, radius in distances], axis=0)
    wall = np.max([occupancy(distance - radius - 2.0, edge) for distance, radius in distances], axis=0)
    return lumen, wall


@lru_cache(maxsize=8)
def thorax(anatomy: CtAnatomy, shape: tuple[int, int, int], sex: str) -> Thorax:
    """The subject's anatomy at `shape`; sex acts only through the body size (FEMALE_SCALE)."""
    x, y, z = _coordinates(shape, anatomy.shift_mm)
    edge = float(np.mean(ct_spacing(shape)[:2]))
    scale = anatomy.body_scale * (FEMALE_SCALE if sex == "F" else 1.0)
    height_scale = 1.0 - (1.0 - scale) / 2  # height varies about half as much as width
    outer = (MALE_WIDTH_MM / 2 * scale, MALE_WIDTH_MM / 2 * scale * AP_RATIO * anatomy.aspect)
    inner = (outer[0] - anatomy.fat_mm, outer[1] - anatomy.fat_mm)
    body = occupancy(ellipsoid_distance((x, y), (0.0, 0.0), outer), edge) * np.ones_like(z)
    soft_tissue = occupancy(ellipsoid_distance((x, y), (0.0, 0.0), inner), edge) * np.ones_like(z)
    frames = _lung_frames(inner, anatomy.lung_scale, height_scale)
    center_z, semi_z = frames["right"].center[2], frames["right"].semi_axes[2]
    heart_axes = tuple(value * anatomy.heart_scale for value in (0.36 * inner[0], 0.45 * inner[1], 0.4 * semi_z))
    heart_center = (-0.12 * inner[0], 0.22 * inner[1], center_z - 0.2 * semi_z)
    heart_distance = ellipsoid_distance((x, y, z), heart_center, heart_axes)
    heart = occupancy(heart_distance, edge)
    bone, canal = _skeleton(x, y, z, inner, edge)
    lumen, wall = _airways(x, y, z, inner, center_z + 0.3 * semi_z, scale, edge)
    spared = (1.0 - occupancy(heart_distance - 4.0, edge)) * (1.0 - bone) * (1.0 - wall)  # pleura and mediastinum
    lungs = {
        side: _lung(x, y, z, frames[side], dome, edge) * spared * soft_tissue
        for side, dome in (("right", -0.45), ("left", -0.55))  # right dome higher: the liver under it
    }
    for array in (body, soft_tissue, heart, wall, lumen, bone, canal, *lungs.values()):
        array.flags.writeable = False  # cached and shared between renders
    return Thorax(x, y, z, body, soft_tissue, lungs, frames, heart, wall, lumen, bone, canal)


@lru_cache(maxsize=8)
def textures(seed: int, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The subject's smooth random fields (unit standard deviation) and noise, in voxel space.

    vessels: tube-like network where two smooth fields are both near zero (a curve in 3-D);
    emphysema / margin: smooth fields whose excursions place emphysema and lobar margins;
    noise: white noise smoothed over ~1 voxel (CT noise is spatially correlated by the reconstruction kernel).
    """
    rng = np.random.default_rng((seed, *shape))
    spacing = np.array(ct_spacing(shape))

    def field(sigma_mm: float) -> np.ndarray:
        smooth = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_mm / spacing, mode="wrap")
        return (smooth / smooth.std()).astype(np.float32)

    first, second = field(6.0), field(6.0)
    fields = {
        "vessels": np.exp(-(first**2 + second**2) / (2 * 0.2**2)),
        "bronchogram": np.exp(-((first - 1.2) ** 2 + second**2) / (2 * 0.25**2)),
        "emphysema": field(7.0),
        "margin": field(12.0),
        "noise": field(0.6 * float(spacing[:2].mean())),
    }
    for array in fields.values():
        array.flags.writeable = False  # cached and shared between renders
    return fields
