"""Geometry shared by the generators: coordinate maps into an atlas, local radial warps, smooth fields.

Coordinates are *normalised atlas coordinates* (2, H, W) as (row, column) in (0, 1): pixel i of an n-pixel
axis has centre (i + 0.5) / n. A render samples every atlas array at one coordinate map, so the image,
its masks and every finding drawn in atlas space move together (one deformation for all of them).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

ELASTIC_CELLS = 5  # control points per side of the elastic field: smooth, organ-scale deformation


def pixel_grid(size: int) -> np.ndarray:
    """Normalised coordinates of the pixel centres of a size x size image, (2, size, size) as (row, col)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.stack(np.meshgrid(axis, axis, indexing="ij"))


@lru_cache(maxsize=32)
def _cubic_upsampling(cells: int, size: int) -> np.ndarray:
    """(size, cells) matrix of cubic-spline interpolation weights: upsampling is separable and linear."""
    matrix = ndimage.zoom(np.eye(cells), (size / cells, 1), order=3, mode="mirror", grid_mode=True)
    return matrix[:size].astype(np.float32)


def smooth_field(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
    """Zero-mean, unit-scale random field on a cells x cells grid, cubic-upsampled to (size, size) float32."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    upsampling = _cubic_upsampling(cells, size)
    return upsampling @ coarse @ upsampling.T


def anatomy_coordinates(
    size: int,
    *,
    rotation: float,
    scale: tuple[float, float],
    shift: tuple[float, float],
    elastic: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Output pixel → atlas point: rotation (degrees), scale (rows, cols), shift, elastic displacement.

    `scale` > 1 shows the anatomy larger; `shift` and `elastic` (displacement amplitude) are fractions of
    the image side. Returns (2, size, size) float32 normalised atlas coordinates.
    """
    grid = pixel_grid(size) - 0.5
    angle = np.deg2rad(rotation)
    cos, sin = np.cos(angle), np.sin(angle)
    rows = (cos * grid[0] - sin * grid[1] - shift[0]) / scale[0]
    cols = (sin * grid[0] + cos * grid[1] - shift[1]) / scale[1]
    displacement = [elastic * smooth_field(rng, ELASTIC_CELLS, size) for _ in range(2)]
    return np.stack([rows + 0.5 + displacement[0], cols + 0.5 + displacement[1]]).astype(np.float32)


def magnify(
    points: np.ndarray,
    center: tuple[float, float],
    radii: tuple[float, float],
    magnification: tuple[float, float],
    *,
    support: float = 1.8,
) -> np.ndarray:
    """Show the ellipse (center, radii) magnified (rows, cols) times; identity beyond `support` radii.

    Applied to atlas points, so it enlarges an organ in place (heart, ventricles) and pushes its
    neighbours outward; points further than `support` radii away are returned unchanged, bit for bit.
    """
    center_array = np.asarray(center, dtype=np.float32)[:, None, None]
    radii_array = np.asarray(radii, dtype=np.float32)[:, None, None]
    magnification_array = np.asarray(magnification, dtype=np.float32)[:, None, None]
    offset = points - center_array
    rho = np.sqrt(((offset / radii_array) ** 2).sum(axis=0))
    ramp = np.clip((support - rho) / (support - 1.0), 0.0, 1.0)
    weight = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no kink where the warp fades out
    factor = 1.0 - (1.0 - 1.0 / magnification_array) * weight
    warped = center_array + offset * factor
    outside = rho >= support
    return np.where(outside, points, warped).astype(np.float32)


def _reflect(index: np.ndarray, length: int) -> np.ndarray:
    """Mirror out-of-range pixel coordinates once about the edge pixel centres (scipy's "mirror" mode)."""
    last = length - 1
    mirrored = np.where(index < 0, -index, index)
    mirrored = np.where(mirrored > last, 2 * last - mirrored, mirrored)
    return np.clip(mirrored, 0, last)  # beyond one reflection (never for a plausible pose): the edge value


def sample(array: np.ndarray, points: np.ndarray, *, mode: str = "mirror") -> np.ndarray:
    """Bilinear value of an atlas array at normalised points; outside, "mirror" reflects, "constant" is 0."""
    rows, cols = array.shape
    row = points[0] * rows - 0.5
    col = points[1] * cols - 0.5
    if mode == "constant":
        array = np.pad(array, 1)
        row, col = np.clip(row + 1, 0, rows + 1), np.clip(col + 1, 0, cols + 1)
    else:
        row, col = _reflect(row, rows), _reflect(col, cols)
    height, width = array.shape
    top = np.minimum(row.astype(np.int64), height - 2)  # coordinates are >= 0 here, so int() is floor
    left = np.minimum(col.astype(np.int64), width - 2)
    down, right = (row - top).astype(np.float32), (col - left).astype(np.float32)
    flat = np.ascontiguousarray(array, dtype=np.float32).ravel()
    corner = top * width + left
    upper = flat[corner] * (1 - right) + flat[corner + 1] * right
    lower = flat[corner + width] * (1 - right) + flat[corner + width + 1] * right
    return upper * (1 - down) + lower * down


def rasterize_polygon(vertices: tuple[tuple[float, float], ...], size: int) -> np.ndarray:
    """Soft (anti-aliased, float32 in [0, 1]) mask of a polygon given as (x, y) fractions of the image."""
    supersample = 4
    canvas = Image.new("L", (size * supersample, size * supersample), 0)
    scaled = [(x * size * supersample, y * size * supersample) for x, y in vertices]
    ImageDraw.Draw(canvas).polygon(scaled, fill=255)
    mask = np.asarray(canvas, dtype=np.float32) / 255.0
    return mask.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
