"""The one in-memory type every reader returns: a 2-D medical image with its provenance.

Intensity convention (used by the whole package):
- ``pixels`` is float32 (H, W) in [0, 1] in *display* orientation: 1 is brightest as a radiologist
  sees the image (bone and contrast bright on X-ray/CT, MONOCHROME1 already inverted, DICOM VOI
  window / LUT applied). Models map it to [-1, 1] with ``intensity.to_model_range``.
- ``values`` is float32 (H, W) in the modality's own units: Hounsfield units for CT (stored value ×
  RescaleSlope + RescaleIntercept), rescaled stored values for other DICOM, raw voxel values for
  NIfTI and raw integer code values for PNG/JPEG.
- Row 0 is the top of the image as displayed; NIfTI slices are reoriented to RAS+ first and shown
  in radiological convention (patient's right on the image's left).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Provenance:
    """Where a 2-D image came from, enough to find it again and to write a result back beside it."""

    source: Path  # file the image was read from
    format: str  # "png" | "jpeg" | "dicom" | "nifti"
    slice_index: int | None = None  # DICOM frame or NIfTI slice along `axis`; None for single images
    axis: str | None = None  # NIfTI slicing plane: "axial" | "coronal" | "sagittal"
    spacing: tuple[float, float] | None = None  # pixel size in mm as (row, column); None when unknown
    modality: str | None = None  # DICOM Modality ("CR", "DX", "CT", "MR", ...) where known
    colour: bool = False  # a PNG/JPEG whose channels differ (pixels hold its luma): a photo or overlay, not a scan


@dataclass(frozen=True)
class MedicalImage:
    """A 2-D image: display pixels in [0, 1], modality values, provenance, and the source header."""

    pixels: np.ndarray  # (H, W) float32 in [0, 1], display convention above
    values: np.ndarray  # (H, W) float32 in modality units
    provenance: Provenance
    header: Any = field(default=None, repr=False, compare=False)  # pydicom Dataset or nibabel image, for writing back

    def __post_init__(self) -> None:
        assert self.pixels.ndim == 2 and self.pixels.dtype == np.float32, self.pixels.shape
        assert self.values.shape == self.pixels.shape, (self.values.shape, self.pixels.shape)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape  # type: ignore[return-value]
