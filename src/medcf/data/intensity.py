"""Intensity mappings between modality values, display pixels in [0, 1] and the model range [-1, 1].

Every function here is pure: arrays in, arrays out, no I/O. `window_level` and the percentile helpers
take numpy array-likes and return float32 numpy arrays; `to_model_range` / `from_model_range` accept
numpy arrays and torch tensors alike and return the same type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import torch

    Array = TypeVar("Array", np.ndarray, torch.Tensor)
else:
    Array = TypeVar("Array")

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")  # DICOM (0028,1056) VOI LUT Function


def window_level(values: ArrayLike, center: float, width: float, *, function: str = "LINEAR") -> np.ndarray:
    """Map modality values through a VOI window to display pixels in [0, 1] (float32, same shape).

    The formulas are those of DICOM PS3.3 C.11.2.1.2 with the output range scaled to [0, 1]:
    - "LINEAR" (C.11.2.1.2.1, the DICOM default): y = ((x − (c − 0.5)) / (w − 1) + 0.5), clipped; needs w ≥ 1.
    - "LINEAR_EXACT" (C.11.2.1.3.2): y = (x − c) / w + 0.5, clipped; any w > 0. medcf uses it for its own
      windows (explicit `window=`, percentile windows), so c ± w/2 map exactly onto 0 and 1.
    - "SIGMOID" (C.11.2.1.3.1): y = 1 / (1 + exp(−4 (x − c) / w)); any w > 0.
    """
    function = function.upper()
    if function not in VOI_FUNCTIONS:
        raise ValueError(f"VOI LUT function '{function}' unknown; use one of {', '.join(VOI_FUNCTIONS)}")
    if not (np.isfinite(center) and np.isfinite(width)):
        raise ValueError(f"window (center {center}, width {width}) is not finite; pass finite numbers")
    minimum_width = 1.0 if function == "LINEAR" else 0.0
    if width < minimum_width or width == 0:
        raise ValueError(
            f"window width {width} is invalid for {function} windowing (needs width "
            f"{'>= 1' if function == 'LINEAR' else '> 0'}, DICOM PS3.3 C.11.2.1); pass a wider window"
        )
    x = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":
        return (1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))).astype(np.float32)
    if function == "LINEAR":
        center, width = center - 0.5, width - 1.0
        if width == 0:  # w = 1: a threshold at c − 0.5 (the limit of C.11.2.1.2.1)
            return (x > center).astype(np.float32)
    return np.clip((x - center) / width + 0.5, 0.0, 1.0).astype(np.float32)


def percentile_window(values: ArrayLike, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """(center, width) of the window spanning the `low`–`high` percentiles of `values` (NaN ignored).

    When those percentiles coincide (≥ 99 % of the values are one number, e.g. a sparse mask) the window
    spans the full min–max range instead; a constant image gets a window just above its value, so it
    maps to 0 everywhere.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles low={low}, high={high} invalid; need 0 <= low < high <= 100")
    x = np.asarray(values, dtype=np.float64)
    lower, upper = np.nanpercentile(x, [low, high])
    if upper <= lower:
        lower, upper = np.nanmin(x), np.nanmax(x)
    if upper <= lower:
        return float(lower) + 0.5, 1.0
    return float(lower + upper) / 2.0, float(upper - lower)


def normalize_percentile(values: ArrayLike, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Values → [0, 1] float32 by a LINEAR_EXACT window from the `low` to the `high` percentile."""
    center, width = percentile_window(values, low, high)
    return window_level(values, center, width, function="LINEAR_EXACT")


def fit_window(values: ArrayLike, pixels: ArrayLike) -> tuple[float, float]:
    """(center, width) of the LINEAR_EXACT window that maps `values` onto `pixels`, by least squares.

    Only unsaturated pixels (0 < p < 1) enter the fit, so the result is exact for every linear window
    (DICOM LINEAR and LINEAR_EXACT, explicit and percentile windows) and a linear approximation of a
    SIGMOID window or a VOI LUT. A negative width means an inverted display (MONOCHROME1). Without two
    distinct unsaturated values the window spans the values' min–max range.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    y = np.asarray(pixels, dtype=np.float64).ravel()
    inside = (y > 0.0) & (y < 1.0)
    if np.unique(x[inside]).size >= 2:
        slope, intercept = np.polyfit(y[inside], x[inside], 1)  # x = (c − w/2) + w·y
        return float(intercept + slope / 2.0), float(slope)
    lower, upper = float(x.min()), float(x.max())
    return (lower + upper) / 2.0, max(upper - lower, 1.0)


def to_model_range(pixels: Array) -> Array:
    """Display pixels in [0, 1] → model inputs in [-1, 1] (numpy array or torch tensor)."""
    return pixels * 2 - 1


def from_model_range(outputs: Array) -> Array:
    """Model outputs in [-1, 1] → display pixels in [0, 1], clipped (numpy array or torch tensor)."""
    return ((outputs + 1) / 2).clip(0, 1)
