"""Brain MRI cohorts (OASIS, ADNI style): one NIfTI volume per subject + a demographics table.

Volumes are found by a `path` column (relative to root), else as root/<subject>.nii(.gz), else as the one
NIfTI file under root/<subject>/. Each selected slice becomes a row (slice_index along `axis` after
reorientation to RAS+, as medcf.data.io slices them); only headers are read here (nibabel loads lazily).

Diagnosis: a diagnosis column (ADNI codes) wins; otherwise OASIS's Clinical Dementia Rating (Morris,
Neurology 1993). OASIS diagnosed every CDR > 0 subject with very mild to moderate Alzheimer's disease
(Marcus et al., J. Cogn. Neurosci. 2007), so CDR 0 → CN and CDR 0.5 / 1 / 2 / 3 → AD, with the CDR stage
kept as `dementia_severity` ("very mild" / "mild" / "moderate" / "severe"). OASIS has no MCI group.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import pandas as pd

from medcf.data.cohort import Cohort
from medcf.data.nifti import AXES
from medcf.data.table import load_table, parse_column, where
from medcf.prompts import is_missing
from medcf.prompts.fields import format_number, parse_age, parse_sex

NIFTI_SUFFIXES = (".nii", ".nii.gz")
# Diagnosis codes of ADNI (DX, DX_bl, Group) → canonical CN / MCI / AD. SMC ("significant memory
# concern") participants test cognitively normal by ADNI2 criteria; EMCI / LMCI are MCI stages.
DIAGNOSES = {"CN": "CN", "NL": "CN", "SMC": "CN", "MCI": "MCI", "EMCI": "MCI", "LMCI": "MCI"}
DIAGNOSES |= {"AD": "AD", "DEMENTIA": "AD"}
CDR_STAGES = {0.0: None, 0.5: "very mild", 1.0: "mild", 2.0: "moderate", 3.0: "severe"}
# Column names accepted for each field, compared case-insensitively (OASIS-1: M/F, CDR; ADNI: Sex,
# Group; ADNIMERGE: PTGENDER, DX).
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
    if axis not in AXES:
        raise ValueError(f"axis '{axis}' unknown; use one of {', '.join(AXES)}")
    table = load_table(csv, id_column=id_column, required=[patient_column] if patient_column else [])
    columns = {field: _column(table, names, csv) for field, names in ALIASES.items()}
    clinical = _subject_fields(table, columns, csv)
    names = table[id_column].astype(str)
    listed = table[columns["path"]] if columns["path"] else pd.Series(None, index=table.index, dtype=object)
    subjects = clinical.assign(
        subject=names,
        patient_id=table[patient_column].astype(str) if patient_column else names,
        path=[_volume(root, names[index], listed[index], csv, index) for index in table.index],
    )
    rows = []
    for subject in subjects.to_dict("records"):
        for index in _slices(subject["path"], axis, slices):
            rows.append(subject | {"id": f"{subject['subject']}_{axis}{index:03d}", "slice_index": index})
    records = pd.DataFrame(rows).drop(columns="subject")
    records = records[["id", "patient_id", "path", "slice_index", *clinical.columns]]
    for key in ("alzheimers_disease", "mild_cognitive_impairment"):
        if key in records:
            records[key] = records[key].astype("Int64")
    return Cohort(records, modality="brain MRI", root=root, axis=axis)


def _column(table: pd.DataFrame, names: tuple[str, ...], csv: Path) -> str | None:
    """The one table column spelled as any of `names` (case-insensitive), or None."""
    found = [column for column in table.columns if str(column).strip().lower() in names]
    if len(found) > 1:
        raise ValueError(f"{csv}: columns {found} mean the same field; keep one of them")
    return found[0] if found else None


def _subject_fields(table: pd.DataFrame, columns: dict[str, str | None], csv: Path) -> pd.DataFrame:
    """Canonical age, sex, diagnosis, findings and dementia stage of each subject row."""
    fields = pd.DataFrame(index=table.index)
    if columns["age"]:
        fields["age"] = parse_column(table, columns["age"], parse_age, source=csv).astype("Float64")
    if columns["sex"]:
        fields["sex"] = parse_column(table, columns["sex"], parse_sex, source=csv)
    if columns["cdr"]:
        stages = parse_column(table, columns["cdr"], _parse_cdr, source=csv)
        fields["dementia_severity"] = [None if stage is None else CDR_STAGES[stage] for stage in stages]
    if columns["diagnosis"]:
        diagnoses = parse_column(table, columns["diagnosis"], _parse_diagnosis, source=csv)
    elif columns["cdr"]:
        diagnoses = pd.Series([None if stage is None else "CN" if stage == 0 else "AD" for stage in stages])
    else:
        return fields
    fields["diagnosis"] = list(diagnoses)
    fields["alzheimers_disease"] = [None if code is None else int(code == "AD") for code in diagnoses]
    fields["mild_cognitive_impairment"] = [None if code is None else int(code == "MCI") for code in diagnoses]
    return fields


def _parse_diagnosis(value: object) -> str | None:
    if is_missing(value):
        return None
    if (code := str(value).strip().upper()) not in DIAGNOSES:
        raise ValueError(f"diagnosis '{value}' unknown; use one of {', '.join(DIAGNOSES)}")
    return DIAGNOSES[code]


def _parse_cdr(value: object) -> float | None:
    if is_missing(value):
        return None
    try:
        stage = float(str(value).strip())
    except ValueError:
        stage = -1.0
    if stage not in CDR_STAGES:
        stages = ", ".join(format_number(stage) for stage in CDR_STAGES)
        raise ValueError(f"CDR '{value}' is not a Clinical Dementia Rating; use one of {stages}")
    return stage


def _volume(root: Path, subject: str, listed: object, csv: Path, index: object) -> str:
    """The subject's NIfTI: the path column, root/<subject>.nii(.gz), or the one NIfTI in root/<subject>/."""
    if not is_missing(listed):
        path = root / str(listed)
        if not path.is_file():
            raise FileNotFoundError(f"{where(csv, index)}: volume {path} not found; fix the path column")
        return str(path)
    candidates = [root / f"{subject}{suffix}" for suffix in NIFTI_SUFFIXES]
    candidates = [path for path in candidates if path.is_file()]
    if (root / subject).is_dir():
        candidates += sorted(path for path in (root / subject).rglob("*") if path.name.endswith(NIFTI_SUFFIXES))
    if len(candidates) != 1:
        found = "none" if not candidates else ", ".join(str(path) for path in candidates[:3])
        raise FileNotFoundError(
            f"{where(csv, index)}: subject {subject} needs exactly one NIfTI volume (.nii/.nii.gz; convert "
            f"Analyze .img/.hdr) at {root}/{subject}.nii.gz or in {root}/{subject}/, found {found}; "
            "or add a path column"
        )
    return str(candidates[0])


def _slices(path: str, axis: str, slices: Sequence[int] | None) -> list[int]:
    """Slice indices along `axis` for one volume, from its header only."""
    try:
        image = nib.load(path)
    except Exception as error:  # whatever a damaged header raises, as medcf.data.nifti does
        raise ValueError(f"{path}: not a readable NIfTI volume ({error}); re-export it") from None
    if len(image.shape) != 3:
        raise ValueError(f"{path}: volume has shape {image.shape}; brain_mri needs one 3-D volume per file")
    # The reader reorients to RAS+ (nibabel.as_closest_canonical), which follows io_orientation: voxel
    # axis i becomes world axis orientation[i, 0], so the slice count is the length of the voxel axis
    # that maps to the plane's normal.
    orientation = nib.orientations.io_orientation(image.affine)
    count = image.shape[[int(world) for world in orientation[:, 0]].index(AXES[axis])]
    if slices is None:
        return list(range(count // 4, count - count // 4))
    if bad := [index for index in slices if not 0 <= index < count]:
        raise ValueError(f"{path}: slice(s) {bad[:5]} outside 0–{count - 1} along {axis}; choose smaller indices")
    return [int(index) for index in slices]
