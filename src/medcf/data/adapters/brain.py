"""Brain MRI in a generic layout: one volume per table row + a demographics table with a subject id column.

Volumes (NIfTI .nii / .nii.gz, or Analyze .img + .hdr) are found by a `path` column (relative to root), else as
root/<subject>.nii(.gz) / .img, else as the one volume under root/<subject>/. Each selected slice becomes a row
(medcf.data.adapters.volumes). The published OASIS-1/2/3 and ADNI downloads have their own readers (oasis1,
oasis2, oasis3, adni), which know their layouts, tables and visits.

Diagnosis: a diagnosis column (ADNI codes) wins; otherwise a CDR column read the OASIS way (CDR 0 → CN, > 0 →
AD, stage kept as `dementia_severity`); rules in medcf.data.adapters.brain_fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medcf.data.adapters.brain_fields import clinical_fields
from medcf.data.adapters.volumes import check_axis, is_volume, slice_cohort
from medcf.data.cohort import Cohort
from medcf.data.table import load_table, where
from medcf.prompts import is_missing

# Column names accepted for each field, compared case-insensitively (OASIS-1: M/F, CDR; ADNI: Sex, Group;
# ADNIMERGE: PTGENDER, DX).
ALIASES = {
    "path": ("path",),
    "age": ("age",),
    "sex": ("sex", "gender", "m/f", "ptgender"),
    "diagnosis": ("diagnosis", "dx", "dx_bl", "group"),
    "cdr": ("cdr",),
}


def brain_mri(
    root: str | Path,
    csv: str | Path,
    *,
    axis: str = "axial",
    slices: Sequence[int] | None = None,
    id_column: str = "subject_id",
    patient_column: str | None = None,
) -> Cohort:
    """A Cohort of 2-D slices of brain MRI volumes with each subject's age, sex and diagnosis.

    `slices`: slice indices along `axis` for every volume; None keeps the central half of each volume
    (indices n//4 … n − n//4 − 1), which drops the near-empty slices at the edges of the field of view.
    `patient_column`: who the subject is (several sessions of one patient); None means id = patient.
    """
    root, csv = Path(root), Path(csv)
    check_axis(axis)
    table = load_table(csv, id_column=id_column, required=[patient_column] if patient_column else [])
    columns = {field: _column(table, names, csv) for field, names in ALIASES.items()}
    clinical = clinical_fields(
        table, csv, age=columns["age"], sex=columns["sex"], cdr=columns["cdr"], diagnosis=columns["diagnosis"]
    )
    names = table[id_column].astype(str)
    listed = table[columns["path"]] if columns["path"] else pd.Series(None, index=table.index, dtype=object)
    volumes = clinical.assign(
        scan=names,
        patient_id=table[patient_column].astype(str) if patient_column else names,
        path=[_volume(root, names[index], listed[index], csv, index) for index in table.index],
    )
    return slice_cohort(volumes, root=root, axis=axis, slices=slices)


def _column(table: pd.DataFrame, names: tuple[str, ...], csv: Path) -> str | None:
    """The one table column spelled as any of `names` (case-insensitive), or None."""
    found = [column for column in table.columns if str(column).strip().lower() in names]
    if len(found) > 1:
        raise ValueError(f"{csv}: columns {found} mean the same field; keep one of them")
    return found[0] if found else None


def _volume(root: Path, subject: str, listed: object, csv: Path, index: object) -> str:
    """The subject's volume: the path column, root/<subject>.nii(.gz) / .img, or the one volume in root/<subject>/."""
    if not is_missing(listed):
        path = root / str(listed)
        if not path.is_file():
            raise FileNotFoundError(f"{where(csv, index)}: volume {path} not found; fix the path column")
        return str(path)
    candidates = [root / f"{subject}{suffix}" for suffix in (".nii", ".nii.gz", ".img")]
    candidates = [path for path in candidates if path.is_file()]
    if (root / subject).is_dir():
        candidates += sorted(path for path in (root / subject).rglob("*") if is_volume(path))
    if len(candidates) != 1:
        found = "none" if not candidates else ", ".join(str(path) for path in candidates[:3])
        raise FileNotFoundError(
            f"{where(csv, index)}: subject {subject} needs exactly one NIfTI volume (.nii/.nii.gz, or Analyze "
            f".img) at {root}/{subject}.nii.gz or in {root}/{subject}/, found {found}; add a path column, or read a "
            "published download with oasis1 / oasis2 / oasis3 / adni"
        )
    return str(candidates[0])
