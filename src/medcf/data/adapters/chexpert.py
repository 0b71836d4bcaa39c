"""CheXpert (Irvin et al., AAAI 2019): train.csv / valid.csv with 14 labeler outputs per radiograph.

Labels are 1.0 (positive), 0.0 (negative), -1.0 (uncertain) or blank (not mentioned in the report).
The same labeler and columns are used by MIMIC-CXR-JPG, which reuses `parse_labels` from here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath

import pandas as pd

from medcf.data.cohort import Cohort, check_files
from medcf.data.table import load_table, parse_column
from medcf.prompts import is_missing
from medcf.prompts.fields import parse_age

# CheXpert label column → canonical finding key, in the release's column order.
LABELS = {
    "No Finding": "no_finding",
    "Enlarged Cardiomediastinum": "enlarged_cardiomediastinum",
    "Cardiomegaly": "cardiomegaly",
    "Lung Opacity": "lung_opacity",
    "Lung Lesion": "lung_lesion",
    "Edema": "edema",
    "Consolidation": "consolidation",
    "Pneumonia": "pneumonia",
    "Atelectasis": "atelectasis",
    "Pneumothorax": "pneumothorax",
    "Pleural Effusion": "pleural_effusion",
    "Pleural Other": "pleural_other",
    "Fracture": "fracture",
    "Support Devices": "support_devices",
}
# What an uncertain (-1) label becomes. "ignore" (default): not mentioned, because a prompt must not
# assert a finding the report only hedged on. "zeros" / "ones" are the U-Zeros / U-Ones policies of
# Irvin et al. (AAAI 2019, §4), which map every uncertain label to negative / positive.
UNCERTAIN_POLICIES: dict[str, int | None] = {"ignore": None, "zeros": 0, "ones": 1}
_SEX = {"male": "M", "female": "F", "unknown": None}
_FRONTAL_VIEWS = {"AP": "AP", "PA": "PA"}  # the AP/PA column also holds LL/RL on a few frontal rows
_AP_PA_VALUES = {"AP", "PA", "LL", "RL"}
_PATIENT = re.compile(r"patient\d+")


def chexpert(
    csv: str | Path, *, root: str | Path | None = None, uncertain: str = "ignore", frontal_only: bool = False
) -> Cohort:
    """Read a CheXpert train.csv/valid.csv into a Cohort (one row per radiograph).

    Paths in the release start with the dataset folder ("CheXpert-v1.0-small/train/..."), so by default
    a path whose first folder is the CSV's own folder is resolved from the CSV's parent folder; any other
    relative path is resolved from the CSV's folder. `root` overrides both: paths are joined to it.
    """
    csv = Path(csv)
    check_policy(uncertain)
    required = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *LABELS]
    table = load_table(csv, required=required, id_column="Path")
    views = parse_column(table, "Frontal/Lateral", _parse_frontal_lateral, source=csv)
    if frontal_only:
        table, views = table[views != "lateral"], views[views != "lateral"]
        if table.empty:
            raise ValueError(f"{csv}: no frontal radiographs; pass frontal_only=False to keep laterals")
    records = pd.DataFrame(
        {
            "id": [PurePosixPath(path).with_suffix("").as_posix() for path in table["Path"]],
            "patient_id": parse_column(table, "Path", _parse_patient, source=csv),
            "path": [str(_resolve(path, csv, root)) for path in table["Path"]],
            "age": parse_column(table, "Age", parse_age, source=csv).astype("Float64"),
            "sex": parse_column(table, "Sex", _parse_sex, source=csv),
            "view": [_view(view, ap_pa) for view, ap_pa in zip(views, _ap_pa(table, csv), strict=True)],
        },
        index=table.index,
    )
    records = pd.concat([records, parse_labels(table, uncertain=uncertain, source=csv)], axis=1)
    check_files(records["path"], source=csv)
    return Cohort(records, modality="chest X-ray", root=Path(root) if root is not None else csv.parent)


def check_policy(uncertain: str) -> None:
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain='{uncertain}' unknown; use one of {', '.join(UNCERTAIN_POLICIES)}")


def parse_labels(table: pd.DataFrame, *, uncertain: str, source: Path) -> pd.DataFrame:
    """The 14 label columns as canonical finding columns (Int64: 1, 0 or <NA>) under an uncertainty policy."""
    check_policy(uncertain)

    def parse(value: object) -> int | None:
        if is_missing(value):
            return None
        try:
            number = float(str(value))
        except ValueError:
            number = math.nan
        if number not in (1, 0, -1):
            raise ValueError(f"label '{value}' is not 1.0, 0.0, -1.0 or blank; fix the labeler output")
        return UNCERTAIN_POLICIES[uncertain] if number == -1 else int(number)

    columns = {key: parse_column(table, name, parse, source=source) for name, key in LABELS.items()}
    return pd.DataFrame({key: values.astype("Int64") for key, values in columns.items()}, index=table.index)


def _resolve(path: str, csv: Path, root: str | Path | None) -> Path:
    if root is not None:
        return Path(root) / path
    if PurePosixPath(path).parts[0] == csv.parent.name:
        return csv.parent.parent / path
    return csv.parent / path


def _parse_patient(path: object) -> str:
    if (match := _PATIENT.search(str(path))) is None:
        raise ValueError(f"path '{path}' has no 'patientNNNNN' folder; CheXpert paths name the patient")
    return match.group()


def _parse_sex(value: object) -> str | None:
    if is_missing(value):
        return None
    if (text := str(value).strip().lower()) not in _SEX:
        raise ValueError(f"sex '{value}' not understood; CheXpert uses Male, Female or Unknown")
    return _SEX[text]


def _parse_frontal_lateral(value: object) -> str:
    text = "" if is_missing(value) else str(value).strip()
    if text not in ("Frontal", "Lateral"):
        raise ValueError(f"value '{value}' is not Frontal or Lateral")
    return text.lower()


def _ap_pa(table: pd.DataFrame, csv: Path) -> pd.Series:
    def parse(value: object) -> str | None:
        if is_missing(value):
            return None
        if (text := str(value).strip()) not in _AP_PA_VALUES:
            raise ValueError(f"projection '{value}' not understood; CheXpert uses AP, PA, LL, RL or blank")
        return text

    return parse_column(table, "AP/PA", parse, source=csv)


def _view(frontal_lateral: str, ap_pa: str | None) -> str | None:
    """Canonical view: lateral for laterals; AP or PA for frontals whose projection is recorded."""
    if frontal_lateral == "lateral":
        return "lateral"
    return _FRONTAL_VIEWS.get(ap_pa or "")
