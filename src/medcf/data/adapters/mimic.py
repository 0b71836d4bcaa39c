"""MIMIC-CXR-JPG 2.0.0 (Johnson et al., PhysioNet 2019): JPEG radiographs with CheXpert-labeler labels.

Layout read (the PhysioNet download folder, physionet.org/files/mimic-cxr-jpg/2.0.0/; 2.1.0 keeps these names):
root/mimic-cxr-2.0.0-metadata.csv(.gz)   dicom_id, subject_id, study_id, ..., ViewPosition, ..., StudyDate, ...
root/mimic-cxr-2.0.0-chexpert.csv(.gz)   subject_id, study_id, the 14 CheXpert labels (one row per study)
root/mimic-cxr-2.0.0-split.csv(.gz)      dicom_id, study_id, subject_id, split (train/validate/test), optional
root/files/p10/p10000032/s50414267/<dicom_id>.jpg
Also read, from their own downloads:
- MIMIC-IV's hosp/patients.csv(.gz) (subject_id, gender, anchor_age, anchor_year, anchor_year_group, dod):
  `patients=`, else root/patients.csv(.gz) when present. It gives sex and the age at each study.
- MIMIC-CXR's mimic-cxr-reports.zip, unpacked to files/p10/p10000032/s50414267.txt: `reports_root=`, else root.

Age at the study = anchor_age + (StudyDate year − anchor_year): MIMIC-CXR's dates are shifted per patient
consistently with MIMIC-IV, and anchor_age is the age in the shifted anchor_year (mimic.mit.edu, hosp/patients).
It is exact to a year (the birthday is not released). MIMIC-IV sets anchor_age to 91 for every patient over 89
in the anchor year, so for them no age at a study is known beyond "over 89": it is left unknown (with a
warning) rather than rendered into prompts as a precise number.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

from medcf.data.adapters.chexpert import LABELS, check_policy, parse_labels
from medcf.data.cohort import EXAMPLES_SHOWN, Cohort, check_files
from medcf.data.table import load_table, parse_column
from medcf.prompts import is_missing
from medcf.prompts.fields import MAX_AGE_YEARS

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
SPLITS = ("train", "validate", "test")  # values of the split table, kept as the cohort's `split` column
CAPPED_ANCHOR_AGE = 91  # MIMIC-IV's anchor_age of every patient over 89 in the anchor year
REPORTS_DOWNLOAD = "mimic-cxr-reports.zip"  # MIMIC-CXR (not -JPG) on PhysioNet
_GENDER = {"M": "M", "F": "F"}  # MIMIC-IV patients.gender
_STUDY_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")  # DICOM DA, YYYYMMDD


def mimic_cxr(
    root: str | Path,
    *,
    uncertain: str = "ignore",
    reports: bool = False,
    reports_root: str | Path | None = None,
    patients: str | Path | None = None,
) -> Cohort:
    """Read MIMIC-CXR-JPG into a Cohort: one row per JPEG, labels of its study, patient_id = subject_id.

    Adds `split` when the split table is present, `sex` and `age` (at the study) when a patients table is, and
    with `reports=True` each study's report text as `report` (carried, never put in prompts), read from
    `reports_root` (the folder holding the unpacked files/ of mimic-cxr-reports.zip; default `root`).
    """
    root = Path(root)
    check_policy(uncertain)
    if reports_root is not None and not reports:
        raise ValueError("reports_root= says where the reports are, but reports=False; pass reports=True to read them")
    metadata_csv = _find(root, "mimic-cxr-2.0.0-metadata")
    metadata = load_table(metadata_csv, required=["subject_id", "study_id", "ViewPosition"], id_column="dicom_id")
    records = _images(root, metadata, metadata_csv)
    labels = _study_labels(root, uncertain)
    check_files(records["path"], source=root / "files")
    records = records.merge(labels, on=["subject_id", "study_id"], how="left", validate="many_to_one")
    if (split_csv := _find(root, "mimic-cxr-2.0.0-split", required=False)) is not None:
        records["split"] = _split(split_csv, records["id"])
    patients_csv = Path(patients) if patients is not None else _find(root, "patients", required=False)
    if patients_csv is not None:
        records = _demographics(records, patients_csv, metadata_csv)
    if reports:
        records["report"] = _reports(Path(reports_root) if reports_root is not None else root, records)
    keys = ["subject_id", "study_id", "study_year"]
    return Cohort(records.drop(columns=keys, errors="ignore"), modality="chest X-ray", root=root)


def _find(root: Path, stem: str, *, required: bool = True) -> Path | None:
    """root/<stem>.csv or root/<stem>.csv.gz (PhysioNet ships gzipped tables)."""
    found = [path for path in (root / f"{stem}.csv", root / f"{stem}.csv.gz") if path.is_file()]
    if len(found) > 1:
        raise ValueError(f"{root}: both {found[0].name} and {found[1].name} exist; keep one of them")
    if not found and required:
        raise FileNotFoundError(f"{root}: {stem}.csv(.gz) not found; point root at the MIMIC-CXR-JPG folder")
    return found[0] if found else None


def _images(root: Path, metadata: pd.DataFrame, source: Path) -> pd.DataFrame:
    """One row per image of the metadata table: id, patient_id, path, view and the keys to join on."""
    studies = [
        root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"  # folders group by subject prefix
        for subject, study in zip(metadata["subject_id"], metadata["study_id"], strict=True)
    ]
    images = pd.DataFrame(
        {
            "id": metadata["dicom_id"],
            "patient_id": metadata["subject_id"],
            "path": [str(study / f"{dicom}.jpg") for study, dicom in zip(studies, metadata["dicom_id"], strict=True)],
            "view": parse_column(metadata, "ViewPosition", _parse_view, source=source),
            "subject_id": metadata["subject_id"],
            "study_id": metadata["study_id"],
        }
    )
    if "StudyDate" in metadata.columns:  # the release has it; without it no age at the study is known
        images["study_year"] = parse_column(metadata, "StudyDate", _parse_year, source=source).astype("Int64")
    return images


def _study_labels(root: Path, uncertain: str) -> pd.DataFrame:
    labels_csv = _find(root, "mimic-cxr-2.0.0-chexpert")
    labels = load_table(labels_csv, required=["subject_id", "study_id", *LABELS])
    duplicated = labels.duplicated(["subject_id", "study_id"])
    if duplicated.any():
        study = labels.loc[duplicated.idxmax(), "study_id"]
        raise ValueError(f"{labels_csv}: study {study} has more than one label row; keep one row per study")
    findings = parse_labels(labels, uncertain=uncertain, source=labels_csv)
    findings[["subject_id", "study_id"]] = labels[["subject_id", "study_id"]]
    return findings


def _split(path: Path, dicom_ids: pd.Series) -> pd.Series:
    """The official split of each image: train, validate or test (split table values, by dicom_id)."""
    table = load_table(path, required=["study_id", "subject_id", "split"], id_column="dicom_id")

    def parse(value: object) -> str:
        if (text := "" if is_missing(value) else str(value).strip()) not in SPLITS:
            raise ValueError(f"split '{value}' is not one of {', '.join(SPLITS)}; restore the released table")
        return text

    split = pd.Series(parse_column(table, "split", parse, source=path).to_numpy(), index=table["dicom_id"])
    if missing := [dicom for dicom in dicom_ids if dicom not in split.index]:
        raise ValueError(
            f"{path}: {len(missing)} image(s) of the metadata have no split "
            f"(e.g. {', '.join(missing[:EXAMPLES_SHOWN])}); use the split table of the same release"
        )
    return pd.Series(split[dicom_ids].to_numpy(), index=dicom_ids.index)


def _demographics(records: pd.DataFrame, path: Path, metadata_csv: Path) -> pd.DataFrame:
    """Records with `sex` and `age` at the study from MIMIC-IV patients (module docstring: how and why)."""
    patients = load_table(path, required=["gender", "anchor_age", "anchor_year"], id_column="subject_id")
    table = pd.DataFrame(
        {
            "subject_id": patients["subject_id"],
            "sex": parse_column(patients, "gender", _parse_gender, source=path),
            "anchor_age": parse_column(patients, "anchor_age", _parse_whole, source=path).astype("Int64"),
            "anchor_year": parse_column(patients, "anchor_year", _parse_whole, source=path).astype("Int64"),
        }
    )
    records = records.merge(table, on="subject_id", how="left", validate="many_to_one")
    if unknown := int(records["anchor_year"].isna().sum()):
        warnings.warn(f"{path}: {unknown} image(s) of subjects not in this table have unknown age and sex "
                      f"(e.g. subject {records['subject_id'][records['anchor_year'].isna()].iloc[0]})",
                      stacklevel=3)  # fmt: skip
    records["age"] = _ages_at_study(records, path, metadata_csv)
    return records.drop(columns=["anchor_age", "anchor_year"])


def _ages_at_study(records: pd.DataFrame, path: Path, metadata_csv: Path) -> pd.Series:
    if "study_year" not in records.columns:
        warnings.warn(f"{metadata_csv}: no StudyDate column, so ages at the study are unknown; "
                      "use the released metadata table", stacklevel=4)  # fmt: skip
        return pd.Series(pd.NA, index=records.index, dtype="Float64")
    ages = (records["anchor_age"] + (records["study_year"] - records["anchor_year"])).astype("Float64")
    capped = records["anchor_age"].eq(CAPPED_ANCHOR_AGE).fillna(False).astype(bool)
    if capped.any():
        warnings.warn(f"{path}: {int(capped.sum())} image(s) of patients over 89 (anchor_age {CAPPED_ANCHOR_AGE}, "
                      "MIMIC-IV de-identification) have unknown age", stacklevel=4)  # fmt: skip
        ages[capped] = pd.NA
    impossible = ((ages < 0) | (ages > MAX_AGE_YEARS)).fillna(False).astype(bool)
    if impossible.any():
        row = records[impossible].iloc[0]
        raise ValueError(
            f"{path}: image {row['id']} would be {ages[impossible].iloc[0]:g} years old at its study (anchor_age "
            f"{row['anchor_age']} in {row['anchor_year']}, study in {row['study_year']}), so these are not the "
            "patients MIMIC-CXR's dates were shifted with; use MIMIC-IV's hosp/patients.csv.gz"
        )
    return ages


def _reports(folder: Path, records: pd.DataFrame) -> list[str]:
    """Each image's study report: folder/files/p10/p10000032/s50414267.txt, read once per study."""
    paths = [
        folder / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        for subject, study in zip(records["subject_id"], records["study_id"], strict=True)
    ]
    studies = list(dict.fromkeys(paths))
    if missing := [path for path in studies if not path.is_file()]:
        raise FileNotFoundError(
            f"{folder / 'files'}: {len(missing)} report file(s) not found (e.g. {missing[0]}); the reports come in "
            f"MIMIC-CXR's {REPORTS_DOWNLOAD}: unpack it into {folder} or pass reports_root= the folder it unpacked to"
        )
    text = {path: path.read_text(encoding="utf-8") for path in studies}
    return [text[path] for path in paths]


def _parse_view(value: object) -> str | None:
    if is_missing(value):
        return None
    if (text := str(value).strip().upper()) not in VIEW_POSITIONS:
        raise ValueError(f"ViewPosition '{value}' unknown; expected one of {', '.join(VIEW_POSITIONS)}")
    return VIEW_POSITIONS[text]


def _parse_year(value: object) -> int | None:
    if is_missing(value):
        return None
    if (match := _STUDY_DATE.fullmatch(str(value).strip())) is None:
        raise ValueError(f"StudyDate '{value}' is not a date YYYYMMDD (e.g. 21800506); restore the released table")
    return int(match.group(1))


def _parse_gender(value: object) -> str | None:
    if is_missing(value):
        return None
    if (text := str(value).strip().upper()) not in _GENDER:
        raise ValueError(f"gender '{value}' not understood; MIMIC-IV uses M or F")
    return _GENDER[text]


def _parse_whole(value: object) -> int | None:
    if is_missing(value):
        return None
    if not (text := str(value).strip()).isdigit():
        raise ValueError(f"value '{value}' is not a whole number of years; restore MIMIC-IV's patients table")
    return int(text)
