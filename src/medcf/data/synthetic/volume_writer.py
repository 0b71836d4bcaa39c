"""NIfTI files of the semi-synthetic chest CT cohort: int16 HU volumes and uint8 label maps.

Every file has the affine diag(spacing) in RAS+ (voxel i → patient Right, j → Anterior, k → Superior),
sform and qform code 1 (scanner anatomical), units mm. Volumes carry cal_min/cal_max = VALUE_RANGE_HU,
the HU range a model maps to [-1, 1], so medcf's NIfTI reader displays them in that window. gzip writes
no timestamp (nibabel's default mtime 0): the same volume gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medcf.data.nifti import SYNTHETIC
from medcf.data.synthetic.ct_anatomy import FIELD_OF_VIEW_MM, ct_shape, ct_spacing

VALUE_RANGE_HU = (-1024, 1024)  # air to dense bone; what a model maps to [-1, 1]
ANATOMY = (
    "analytic phantom: no real chest CT ships with medcf, so body, subcutaneous fat, lungs (with a smooth "
    "vessel-like texture), heart, trachea and main bronchi, spine, ribs and sternum are smooth analytic solids "
    "in patient millimetres, varied per subject, with correlated Gaussian noise of 15-25 HU"
)
SCANNER_ANATOMICAL = 1  # NIfTI xform code: coordinates of the (simulated) scanner


def _image(data: np.ndarray) -> nib.Nifti1Image:
    affine = np.diag([*ct_spacing(data.shape), 1.0])
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, SCANNER_ANATOMICAL)
    image.set_qform(affine, SCANNER_ANATOMICAL)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = SYNTHETIC.encode()
    return image


def write_ct_volume(path: Path, hu: np.ndarray) -> None:
    """Write a rendered volume (X, Y, Z) of whole HU as an int16 NIfTI."""
    image = _image(hu.astype(np.int16))
    image.header["cal_min"], image.header["cal_max"] = VALUE_RANGE_HU
    nib.save(image, path)


def write_ct_mask(path: Path, mask: np.ndarray) -> None:
    """Write a boolean (X, Y, Z) mask as a uint8 0/1 NIfTI label map."""
    nib.save(_image(mask.astype(np.uint8)), path)


def ct_description(size: int) -> dict[str, object]:
    """dataset.json fields a CT cohort adds: geometry, value range, units of the effect threshold, anatomy."""
    shape = ct_shape(size)
    return {
        "modality_key": "chest_ct",
        "dims": 3,
        "shape": list(shape),
        "spacing_mm": [round(step, 6) for step in ct_spacing(shape)],
        "field_of_view_mm": list(FIELD_OF_VIEW_MM),
        "orientation": "RAS+",
        "value_range": list(VALUE_RANGE_HU),
        "units": "HU",
        "effect_threshold_units": "HU",
        "anatomy": ANATOMY,
    }
