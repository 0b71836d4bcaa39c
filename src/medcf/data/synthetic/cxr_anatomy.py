"""The chest X-ray atlas: the real PA radiograph RG1_UNCR.dcm (pydicom-data), cleaned, with organ maps.

The radiograph (CR, PA, MONOCHROME1, 15-bit, 1955 x 1841) shows several round pulmonary masses
(cannonball metastases). They were modelled, by fitting, as projected spheres (an elliptic profile
``A * (1 - rho^2)^q`` on a local quadratic background) and are subtracted here, so the atlas is a
plausible *normal* chest that findings are added to. The lung and heart outlines are polygons traced
by hand over this specific radiograph (patient's right lung on the image's left). All shapes are in
(x, y) fractions of the square crop, so they hold at every resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from pydicom.data import get_testdata_file
from scipy import ndimage

from medcf.data.io import read_image
from medcf.data.synthetic.warp import rasterize_polygon

RADIOGRAPH = "RG1_UNCR.dcm"
SHAPE = (1955, 1841)
# Square crop of the thorax, trimming 3 % collimation edges: rows 112:1843, columns 55:1786.
CROP = (slice(112, 1843), slice(55, 1786))
CLEAN_SIZE = 512  # resolution the metastases were fitted at
DISPLAY_GAMMA = 1.5  # darkens aerated lung against soft tissue, as in a clinically windowed radiograph
# Fitted masses: centre x, centre y, radius x, radius y (fractions), profile exponent q, amplitude A.
METASTASES = (
    (0.7252, 0.3529, 0.0560, 0.0422, 0.845, 0.280),
    (0.8149, 0.4321, 0.0382, 0.0560, 0.150, 0.125),
    (0.8096, 0.6121, 0.0672, 0.0584, 0.697, 0.406),
    (0.2549, 0.5941, 0.0800, 0.0675, 0.809, 0.406),
    (0.1648, 0.3815, 0.0448, 0.0395, 1.179, 0.312),
    (0.1462, 0.6954, 0.0291, 0.0432, 0.649, 0.196),
    (0.2525, 0.5767, 0.0269, 0.0298, 0.944, 0.105),
    (0.7172, 0.3428, 0.0150, 0.0150, 1.500, 0.151),
    (0.2009, 0.6150, 0.0225, 0.0351, 1.500, 0.088),
)
RIGHT_LUNG = (
    (0.27, 0.035),
    (0.33, 0.04),
    (0.385, 0.08),
    (0.41, 0.15),
    (0.41, 0.25),
    (0.40, 0.35),
    (0.38, 0.45),
    (0.365, 0.55),
    (0.36, 0.65),
    (0.35, 0.72),
    (0.33, 0.74),
    (0.25, 0.735),
    (0.17, 0.75),
    (0.10, 0.77),
    (0.055, 0.79),
    (0.055, 0.70),
    (0.06, 0.6),
    (0.07, 0.5),
    (0.08, 0.4),
    (0.095, 0.3),
    (0.12, 0.2),
    (0.17, 0.1),
    (0.21, 0.055),
)
LEFT_LUNG = (
    (0.70, 0.035),
    (0.64, 0.045),
    (0.59, 0.08),
    (0.565, 0.15),
    (0.575, 0.25),
    (0.585, 0.35),
    (0.61, 0.45),
    (0.66, 0.55),
    (0.71, 0.63),
    (0.76, 0.70),
    (0.80, 0.76),
    (0.85, 0.795),
    (0.92, 0.81),
    (0.92, 0.7),
    (0.915, 0.6),
    (0.91, 0.5),
    (0.905, 0.4),
    (0.895, 0.3),
    (0.87, 0.2),
    (0.83, 0.1),
    (0.77, 0.05),
)
HEART = (
    (0.40, 0.46),
    (0.48, 0.45),
    (0.58, 0.47),
    (0.63, 0.50),
    (0.68, 0.57),
    (0.74, 0.66),
    (0.79, 0.73),
    (0.81, 0.78),
    (0.70, 0.80),
    (0.55, 0.80),
    (0.42, 0.79),
    (0.37, 0.74),
    (0.365, 0.62),
    (0.375, 0.52),
)
HILA = ((0.31, 0.45), (0.66, 0.40))  # (x, y): vessels there are dense but are not bone
LIVER_BOX = (slice(430, 470), slice(60, 155))  # rows, cols at CLEAN_SIZE: soft-tissue density under the dome


@dataclass(frozen=True)
class CxrAtlas:
    """Atlas arrays at one resolution (size, size), float32; masks are soft in [0, 1]."""

    image: np.ndarray  # cleaned radiograph, display convention (bone bright, lung dark)
    bone: np.ndarray  # dense thin structures (ribs, clavicles, cortices): white top-hat, hila excluded
    right_lung: np.ndarray
    left_lung: np.ndarray
    heart: np.ndarray
    soft_tissue: float  # display value of water-density soft tissue (liver under the right dome)


def _stretch(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    lo, hi = np.percentile(pixels, [low, high])
    return np.clip((pixels - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _resize(pixels: np.ndarray, size: int) -> np.ndarray:
    resample = Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(pixels.astype(np.float32), mode="F").resize((size, size), resample))


def _metastases(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the fitted mass profiles and a weight on their rims (where the fit leaves an edge)."""
    rows, cols = (np.mgrid[0:size, 0:size] / size).astype(np.float32)
    masses = np.zeros((size, size), np.float32)
    rims = np.zeros((size, size), np.float32)
    for x, y, rx, ry, exponent, amplitude in METASTASES:
        rho2 = ((cols - x) / rx) ** 2 + ((rows - y) / ry) ** 2
        masses += amplitude * np.clip(1.0 - rho2, 0.0, 1.0) ** exponent
        if amplitude >= 0.05:
            rims = np.maximum(rims, np.exp(-(((np.sqrt(rho2) - 1.0) / 0.18) ** 2)))
    return masses, rims


@lru_cache(maxsize=1)
def clean_radiograph() -> np.ndarray:
    """RG1_UNCR.dcm read through medcf.data.io, cropped, windowed and with its masses removed (512, 512)."""
    path = get_testdata_file(RADIOGRAPH)
    if path is None:
        raise FileNotFoundError(f"{RADIOGRAPH}: not found in pydicom-data; pip install pydicom-data")
    pixels = read_image(path).pixels
    if pixels.shape != SHAPE:
        raise ValueError(f"{path}: expected a {SHAPE} radiograph, got {pixels.shape}; reinstall pydicom-data")
    thorax = _resize(_stretch(pixels[CROP], 0.5, 99.5), CLEAN_SIZE)
    image = _stretch(thorax, 1.0, 99.5) ** DISPLAY_GAMMA
    masses, rims = _metastases(CLEAN_SIZE)
    image = image - masses
    return (image * (1 - rims) + ndimage.gaussian_filter(image, 3.0) * rims).astype(np.float32)


def _bone(image: np.ndarray) -> np.ndarray:
    """White top-hat at rib width (disc radius 1/32 of the image), minus hila and the abdomen."""
    size = image.shape[0]
    radius = max(1, round(size / 32))
    offsets = np.arange(-radius, radius + 1)
    disc = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    tophat = image - ndimage.grey_opening(image, footprint=disc)
    rows, cols = (np.mgrid[0:size, 0:size] + 0.5) / size
    weight = 1.0 / (1.0 + np.exp((rows - 0.82) / 0.015))  # no bowel-gas edges below the diaphragm
    for x, y in HILA:
        weight *= 1.0 - np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 0.05**2))
    return (tophat * weight).astype(np.float32)


@lru_cache(maxsize=4)
def cxr_atlas(size: int) -> CxrAtlas:
    """The chest atlas at `size` pixels (cached per process)."""
    clean = clean_radiograph()
    image = _resize(clean, size)
    corner_blur = 0.006 * size  # rounds the traced polygons' corners
    blurred = [
        ndimage.gaussian_filter(rasterize_polygon(shape, size), corner_blur)
        for shape in (RIGHT_LUNG, LEFT_LUNG, HEART)
    ]
    masks = [np.where(mask < 0.05, 0.0, mask).astype(np.float32) for mask in blurred]  # compact support
    bone = _resize(_bone(_resize(clean, 256)), size)
    return CxrAtlas(
        image=image,
        bone=bone,
        right_lung=masks[0],
        left_lung=masks[1],
        heart=masks[2],
        soft_tissue=float(np.median(clean[LIVER_BOX])),
    )
