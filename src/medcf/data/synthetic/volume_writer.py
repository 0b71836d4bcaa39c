"""NIfTI files of the 3-D semi-synthetic cohorts: chest CT as int16 HU, brain MRI as scaled uint16, uint8 label maps.

Every file has the affine diag(spacing) in RAS+ (voxel i → patient Right, j → Anterior, k → Superior),
sform and qform code 1 (scanner anatomical), units mm. Volumes carry cal_min/cal_max = VALUE_RANGE_HU,
the HU range a model maps to [-1, 1], so medcf's NIfTI reader displays them in that window. Brain volumes
are in display units [0, 1] stored as uint16 with scl_slope 1/65535: the 16 bits of the 2-D cohort's PNGs
(a step of 1.5e-5, far below the noise and EFFECT_THRESHOLD) at half the size of float32; every reader
(nibabel get_fdata, medcf) applies the slope and sees [0, 1]. gzip writes no timestamp (nibabel's default
mtime 0): the same volume gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medcf.data.nifti import SYNTHETIC
from medcf.data.synthetic.brain3d_anatomy import FIELD_OF_VIEW_MM as BRAIN_FIELD_OF_VIEW_MM
from medcf.data.synthetic.brain3d_anatomy import brain3d_shape, brain3d_spacing
from medcf.data.synthetic.ct_anatomy import FIELD_OF_VIEW_MM, ct_shape, ct_spacing

VALUE_RANGE_HU = (-1024, 1024)  # air to dense bone; what a model maps to [-1, 1]
ANATOMY = (
    "analytic phantom: no real chest CT ships with medcf, so body, subcutaneous fat, lungs (with a smooth "
    "vessel-like texture), heart, trachea and main bronchi, spine, ribs and sternum are smooth analytic solids "
    "in patient millimetres, varied per subject, with correlated Gaussian noise of 15-25 HU"
)
BRAIN_ANATOMY = (
    "nilearn's MNI152 T1 template (asymmetric ICBM152 2009a, skull-stripped, 1 mm) with its grey/white-matter "
    "maps and brain mask, as shipped in the nilearn wheel: tissue contrast sharpened towards 3 T T1 values, a "
    "head (CSF rim, skull, diploe, scalp) built from the 3-D distance to the brain, resampled through each "
    "subject's pose and elastic deformation, with a smooth bias field and Rician noise"
)
BRAIN_LEVELS = 65535  # uint16 steps over the display range [0, 1]
SCANNER_ANATOMICAL = 1  # NIfTI xform code: coordinates of the (simulated) scanner


def _image(data: np.ndarray, spacing: tuple[float, ...]) -> nib.Nifti1Image:
    affine = np.diag([*spacing, 1.0])
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, SCANNER_ANATOMICAL)
    image.set_qform(affine, SCANNER_ANATOMICAL)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = SYNTHETIC.encode()
    return image


def write_ct_volume(path: Path, hu: np.ndarray) -> None:
    """Write a rendered volume (X, Y, Z) of whole HU as an int16 NIfTI."""
    image = _image(hu.astype(np.int16), ct_spacing(hu.shape))
    image.header["cal_min"], image.header["cal_max"] = VALUE_RANGE_HU
    nib.save(image, path)


def write_ct_mask(path: Path, mask: np.ndarray) -> None:
    """Write a boolean (X, Y, Z) mask as a uint8 0/1 NIfTI label map."""
    nib.save(_image(mask.astype(np.uint8), ct_spacing(mask.shape)), path)


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


def write_brain_volume(path: Path, image: np.ndarray) -> None:
    """Write a rendered brain volume (X, Y, Z) in [0, 1] as uint16 scaled by 1/BRAIN_LEVELS (reads back in [0, 1])."""
    levels = np.round(np.clip(image, 0.0, 1.0) * BRAIN_LEVELS).astype(np.uint16)
    volume = _image(levels, brain3d_spacing(image.shape))
    volume.header.set_slope_inter(1.0 / BRAIN_LEVELS, 0.0)
    volume.header["cal_min"], volume.header["cal_max"] = 0.0, 1.0
    nib.save(volume, path)


def write_brain_mask(path: Path, mask: np.ndarray) -> None:
    """Write a boolean (X, Y, Z) brain-cohort mask as a uint8 0/1 NIfTI label map."""
    nib.save(_image(mask.astype(np.uint8), brain3d_spacing(mask.shape)), path)


def brain3d_description(size: int) -> dict[str, object]:
    """dataset.json fields the 3-D brain cohort adds: geometry, value range and storage, anatomy source."""
    shape = brain3d_shape(size)
    return {
        "modality_key": "brain_mri",
        "dims": 3,
        "shape": list(shape),
        "spacing_mm": [round(step, 6) for step in brain3d_spacing(shape)],
        "field_of_view_mm": list(BRAIN_FIELD_OF_VIEW_MM),
        "orientation": "RAS+",
        "value_range": [0.0, 1.0],
        "units": "display units (T1-weighted signal, [0, 1])",
        "storage": f"uint16 with scl_slope 1/{BRAIN_LEVELS}: 16 bits as the 2-D cohort's PNGs, half of float32",
        "effect_threshold_units": "display units",
        "anatomy": BRAIN_ANATOMY,
    }
