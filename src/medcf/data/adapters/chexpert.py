"""CheXpert (Irvin et al., AAAI 2019): train.csv / valid.csv with 14 labeler outputs per radiograph.

Layouts read (train.csv and valid.csv alike; both name images by paths that start with the release folder,
"CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", or "CheXpert-v1.0/..." at full size):
- Stanford download: CheXpert-v1.0-small/{train.csv, valid.csv, train/, valid/}, the CSV inside the release
  folder its paths start with: paths resolve from the CSV folder's parent.
- Kaggle copy (ashery/chexpert): the same files unpacked into archive/ (or any other folder name), the CSV's
  paths unchanged: the release folder is stripped and paths resolve from the CSV's folder.
- A CSV beside the unpacked release folder (tables/train.csv + tables/CheXpert-v1.0-small/): from the CSV's
  folder; paths without a release folder ("train/patient00001/...") also resolve from the CSV's folder.
The rule is chosen once per table, never per row, so files that are really missing are named as such.

Labels are 1.0 (positive), 0.0 (negative), -1.0 (uncertain) or blank (not mentioned in the report); valid.csv
holds the radiologists' 1.0 / 0.0 only. The same labeler and columns are used by MIMIC-CXR-JPG, which reuses
`parse_labels` from here.
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
# The folder the release CSVs' paths start with: downsampled ("-small") and full-resolution releases.
RELEASE_FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")


def chexpert(
    csv: str | Path, *, root: str | Path | None = None, uncertain: str = "ignore", frontal_only: bool = False
) -> Cohort:
    """Read a CheXpert train.csv/valid.csv into a Cohort (one row per radiograph).

    Paths resolve by the layout rule of the module docstring; `root` overrides it: the CSV's paths, as
    written, are joined to `root` (the folder that holds the release folder).
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
            "path": _resolve(table["Path"], csv, root),
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


def _resolve(paths: pd.Series, csv: Path, root: str | Path | None) -> list[str]:
    """Image paths of the table: `root` / path, else the layout rule of the module docstring."""
    if root is not None:
        return [str(Path(root) / path) for path in paths]
    base, strip = _layout(paths, csv)
    return [str(base / PurePosixPath(path).as_posix().removeprefix(strip)) for path in paths]


def _layout(paths: pd.Series, csv: Path) -> tuple[Path, str]:
    """(folder the paths resolve from, leading folder to strip), decided once for the whole table."""
    first = {PurePosixPath(path).parts[0] for path in paths}
    release = sorted(first & set(RELEASE_FOLDERS))
    if not release:
        return csv.parent, ""
    if len(first) > 1:
        raise ValueError(
            f"{csv}: column 'Path' mixes paths that start with {', '.join(sorted(first)[:3])}; a CheXpert table's "
            f"paths all start with {release[0]}/ (restore the released CSV or pass root=)"
        )
    folder = release[0]
    if csv.parent.name == folder:  # Stanford: CheXpert-v1.0-small/train.csv names CheXpert-v1.0-small/train/...
        return csv.parent.parent, ""
    if (csv.parent / folder).is_dir():  # the CSV sits beside the unpacked release folder
        return csv.parent, ""
    return csv.parent, f"{folder}/"  # Kaggle: the release folder unpacked as archive/ (or renamed)


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
