"""MIMIC-CXR-JPG 2.0.0 (Johnson et al., PhysioNet 2019): JPEG radiographs with CheXpert-labeler labels.

root/mimic-cxr-2.0.0-chexpert.csv(.gz)   subject_id, study_id, the 14 CheXpert labels (per study)
root/mimic-cxr-2.0.0-metadata.csv(.gz)   dicom_id, subject_id, study_id, ViewPosition, ... (per image)
root/files/p10/p10000032/s50414267/<dicom_id>.jpg
root/files/p10/p10000032/s50414267.txt   free-text report (MIMIC-CXR), optional
root/patients.csv(.gz)                   MIMIC-IV hosp patients (subject_id, gender, anchor_age), optional
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medcf.data.adapters.chexpert import LABELS, check_policy, parse_labels
from medcf.data.cohort import Cohort, check_files
from medcf.data.table import load_table, parse_column
from medcf.prompts import is_missing
from medcf.prompts.fields import parse_age

# DICOM ViewPosition values in the metadata. Oblique, decubitus and swimmer's views have no canonical
# view name, so they stay unknown; any value outside this table is an error (the release changed).
VIEW_POSITIONS: dict[str, str | None] = {
    "PA": "PA",
    "AP": "AP",
    "LATERAL": "lateral",
    "LL": "lateral",
    "RL": "lateral",
    "XTABLE LATERAL": "lateral",
    "AP AXIAL": None,
    "PA LLD": None,
    "PA RLD": None,
    "AP LLD": None,
    "AP RLD": None,
    "LAO": None,
    "RAO": None,
    "LPO": None,
    "SWIMMERS": None,
}
_GENDER = {"M": "M", "F": "F"}  # MIMIC-IV patients.gender


def mimic_cxr(root: str | Path, *, uncertain: str = "ignore", reports: bool = False) -> Cohort:
    """Read MIMIC-CXR-JPG into a Cohort: one row per JPEG, labels of its study, patient_id = subject_id.

    `reports=True` adds each study's report text as a `report` column (carried, never put in prompts).
    Age and sex come from a MIMIC-IV patients.csv in `root` when present (anchor_age: age in the
    patient's anchor year, capped at 91 by MIMIC de-identification).
    """
    root = Path(root)
    check_policy(uncertain)
    metadata_csv = _find(root, "mimic-cxr-2.0.0-metadata")
    labels_csv = _find(root, "mimic-cxr-2.0.0-chexpert")
    metadata = load_table(metadata_csv, required=["subject_id", "study_id", "ViewPosition"], id_column="dicom_id")
    labels = load_table(labels_csv, required=["subject_id", "study_id", *LABELS])
    _check_unique_studies(labels, labels_csv)
    findings = parse_labels(labels, uncertain=uncertain, source=labels_csv)
    findings[["subject_id", "study_id"]] = labels[["subject_id", "study_id"]]
    studies = [
        root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"  # folders group by subject prefix
        for subject, study in zip(metadata["subject_id"], metadata["study_id"], strict=True)
    ]
    records = pd.DataFrame(
        {
            "id": metadata["dicom_id"],
            "patient_id": metadata["subject_id"],
            "path": [str(study / f"{dicom}.jpg") for study, dicom in zip(studies, metadata["dicom_id"], strict=True)],
            "view": parse_column(metadata, "ViewPosition", _parse_view, source=metadata_csv),
            "subject_id": metadata["subject_id"],
            "study_id": metadata["study_id"],
        }
    )
    check_files(records["path"], source=root / "files")
    records = records.merge(findings, on=["subject_id", "study_id"], how="left", validate="many_to_one")
    if (patients_csv := _find(root, "patients", required=False)) is not None:
        records = records.merge(_patients(patients_csv), on="subject_id", how="left", validate="many_to_one")
    if reports:
        report_paths = [f"{study}.txt" for study in studies]  # one report per study, shared by its images
        check_files(dict.fromkeys(report_paths), source=root / "files", what="report")
        reports_text = {path: Path(path).read_text(encoding="utf-8") for path in dict.fromkeys(report_paths)}
        records["report"] = [reports_text[path] for path in report_paths]
    return Cohort(records.drop(columns=["subject_id", "study_id"]), modality="chest X-ray", root=root)


def _find(root: Path, stem: str, *, required: bool = True) -> Path | None:
    """root/<stem>.csv or root/<stem>.csv.gz (PhysioNet ships gzipped tables)."""
    found = [path for path in (root / f"{stem}.csv", root / f"{stem}.csv.gz") if path.is_file()]
    if len(found) > 1:
        raise ValueError(f"{root}: both {found[0].name} and {found[1].name} exist; keep one of them")
    if not found and required:
        raise FileNotFoundError(f"{root}: {stem}.csv(.gz) not found; point root at the MIMIC-CXR-JPG folder")
    return found[0] if found else None


def _check_unique_studies(labels: pd.DataFrame, source: Path) -> None:
    duplicated = labels.duplicated(["subject_id", "study_id"])
    if duplicated.any():
        study = labels.loc[duplicated.idxmax(), "study_id"]
        raise ValueError(f"{source}: study {study} has more than one label row; keep one row per study")


def _parse_view(value: object) -> str | None:
    if is_missing(value):
        return None
    if (text := str(value).strip().upper()) not in VIEW_POSITIONS:
        raise ValueError(f"ViewPosition '{value}' unknown; expected one of {', '.join(VIEW_POSITIONS)}")
    return VIEW_POSITIONS[text]


def _parse_gender(value: object) -> str | None:
    if is_missing(value):
        return None
    if (text := str(value).strip().upper()) not in _GENDER:
        raise ValueError(f"gender '{value}' not understood; MIMIC-IV uses M or F")
    return _GENDER[text]


def _patients(path: Path) -> pd.DataFrame:
    """MIMIC-IV patients: subject_id → sex, age (anchor_age)."""
    patients = load_table(path, required=["gender", "anchor_age"], id_column="subject_id")
    return pd.DataFrame(
        {
            "subject_id": patients["subject_id"],
            "age": parse_column(patients, "anchor_age", parse_age, source=path).astype("Float64"),
            "sex": parse_column(patients, "gender", _parse_gender, source=path),
        }
    )
