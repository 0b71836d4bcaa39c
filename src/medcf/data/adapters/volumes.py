"""Brain MRI volumes as rows of 2-D slices: slice counts from the headers, one Cohort row per slice.

Volumes are NIfTI (.nii, .nii.gz) or Analyze 7.5 / NIfTI pairs (.img + .hdr, as OASIS ships them; a pair is
named by its .img). Only headers are read (nibabel loads lazily). Trailing singleton axes beyond the third are
ignored, as medcf.data.nifti reads them: OASIS's (176, 208, 176, 1) is one 3-D volume. Slice indices count along
`axis` after reorientation to RAS+, as medcf.data.io slices them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import pandas as pd

from medcf.data.adapters.brain_fields import FLAGS
from medcf.data.cohort import Cohort
from medcf.data.nifti import AXES, squeezed_shape

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".img")
IDENTITY = ("id", "patient_id", "session_id", "path", "slice_index")  # leading columns, in this order


def check_axis(axis: str) -> None:
    if axis not in AXES:
        raise ValueError(f"axis '{axis}' unknown; use one of {', '.join(AXES)}")


def is_volume(path: Path) -> bool:
    """A NIfTI file or the .img of an Analyze / NIfTI pair."""
    return path.name.lower().endswith(VOLUME_SUFFIXES)


def volume_slices(path: str, axis: str, slices: Sequence[int] | None) -> list[int]:
    """Slice indices along `axis` for one volume, from its header only.

    `slices` None keeps the central half of the volume (indices n//4 … n − n//4 − 1), which drops the near-empty
    slices at the edges of the field of view.
    """
    try:
        image = nib.load(path)
    except Exception as error:  # whatever a damaged header raises, as medcf.data.nifti does
        raise ValueError(f"{path}: not a readable NIfTI volume ({error}); re-export it") from None
    shape = squeezed_shape(image.shape)
    if len(shape) != 3:
        raise ValueError(f"{path}: volume has shape {image.shape}; brain cohorts need one 3-D volume per file")
    # The reader reorients to RAS+ (nibabel.as_closest_canonical), which follows io_orientation: voxel axis i
    # becomes world axis orientation[i, 0], so the slice count is the length of the voxel axis that maps to the
    # plane's normal.
    orientation = nib.orientations.io_orientation(image.affine)
    count = shape[[int(world) for world in orientation[:, 0]].index(AXES[axis])]
    if slices is None:
        return list(range(count // 4, count - count // 4))
    if bad := [index for index in slices if not 0 <= index < count]:
        raise ValueError(f"{path}: slice(s) {bad[:5]} outside 0–{count - 1} along {axis}; choose smaller indices")
    return [int(index) for index in slices]


def slice_cohort(volumes: pd.DataFrame, *, root: Path, axis: str, slices: Sequence[int] | None) -> Cohort:
    """The brain MRI Cohort with one row per slice of each volume row.

    `volumes` has a `scan` column naming each volume in the row ids (`<scan>_<axis><index:03d>`), `path`,
    `patient_id` and any clinical columns, which every slice row copies.
    """
    rows = []
    for volume in volumes.to_dict("records"):
        for index in volume_slices(volume["path"], axis, slices):
            rows.append(volume | {"id": f"{volume['scan']}_{axis}{index:03d}", "slice_index": index})
    records = pd.DataFrame(rows, columns=[*volumes.columns, "id", "slice_index"]).drop(columns="scan")
    leading = [column for column in IDENTITY if column in records]
    records = records[leading + [column for column in records if column not in leading]]
    for flag in FLAGS:
        if flag in records:
            records[flag] = records[flag].astype("Int64")
    if "age" in records:
        records["age"] = records["age"].astype("Float64")
    return Cohort(records, modality="brain MRI", root=root, axis=axis)
