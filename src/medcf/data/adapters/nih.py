"""NIH ChestX-ray14 (Wang et al., CVPR 2017): a table of 112,120 PNGs with text-mined labels.

Layouts and tables read (https://nihcc.app.box.com/v/ChestXray-NIHCC and its Kaggle copies):
- Data_Entry_2017_v2020.csv (NIH, current): sex column "Patient Sex"; images_001.tar.gz ... images_012.tar.gz
  all unpack into one images/ folder.
- Data_Entry_2017.csv (NIH 2017 release; Kaggle nih-chest-xrays/data): sex column "Patient Gender"; images in
  images_001/images ... images_012/images on Kaggle. Both tables' header ends in a comma (an unnamed empty
  column) and splits OriginalImage[Width,Height] at its comma; those columns are not read.
- sample_labels.csv (Kaggle nih-chest-xrays/sample, 5,606 images under sample/images/): "Patient Gender", and
  ages as DICOM age strings (PS3.5 §6.2 AS: "060Y"; the standard's months/weeks/days forms 011M, 003W,
  010D are read too).
Images are found by file name anywhere under the images folder (default: the table's folder).
The official split, when train_val_list.txt and test_list.txt (one image name per line) sit beside the table,
becomes a `split` column: "train" (train_val_list) or "test". The official list has no separate validation
part: take one from "train" by patient (medcf's patient split) if you need one.

Labels were text-mined from the radiology reports (NLP), and an image lists only the labels found, so
a label that is not listed means "not found in the report": it is recorded as absent (0), which is the
dataset's own convention, not a radiologist's negative reading.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from medcf.data.cohort import Cohort
from medcf.data.table import load_table, parse_column
from medcf.prompts import is_missing
from medcf.prompts.fields import MAX_AGE_YEARS, parse_age

# Finding Labels vocabulary → canonical finding key.
LABELS = {
    "No Finding": "no_finding",
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Effusion": "pleural_effusion",
    "Emphysema": "emphysema",
    "Fibrosis": "fibrosis",
    "Hernia": "hernia",
    "Infiltration": "infiltration",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pleural_Thickening": "pleural_thickening",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
}
REQUIRED = ["Finding Labels", "Patient ID", "Patient Age", "View Position"]
# The sex column's header in each release table (v2020 renamed it).
SEX_COLUMNS = {"Patient Gender": "Data_Entry_2017.csv, sample_labels.csv", "Patient Sex": "Data_Entry_2017_v2020.csv"}
SPLIT_LISTS = {"train_val_list.txt": "train", "test_list.txt": "test"}  # official list → `split` value
AGE_UNITS = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}  # DICOM age string (AS) units → years
_AGE_STRING = re.compile(r"(\d{1,3})([YMWD])")
_SEX = {"M": "M", "F": "F"}
_VIEW = {"PA": "PA", "AP": "AP"}
EXAMPLES_SHOWN = 5


def nih_chestxray14(csv: str | Path, *, images: str | Path | None = None) -> Cohort:
    """Read Data_Entry_2017(_v2020).csv or sample_labels.csv into a Cohort (module docstring: the layouts).

    `images` defaults to the CSV's folder, searched recursively once, so images/, images_001/images ...
    images_012/images and sample/images are all found.
    """
    csv = Path(csv)
    folder = Path(images) if images is not None else csv.parent
    table = load_table(csv, required=REQUIRED, id_column="Image Index")
    sex = _sex_column(table, csv)
    split = _official_split(table, csv)
    located = _image_paths(folder)
    if missing := [name for name in table["Image Index"] if name not in located]:
        raise FileNotFoundError(
            f"{folder}: {len(missing)} image(s) listed in {csv.name} not found "
            f"(e.g. {', '.join(missing[:EXAMPLES_SHOWN])}); download them or pass images= their folder"
        )
    records = pd.DataFrame(
        {
            "id": [Path(name).stem for name in table["Image Index"]],
            "patient_id": table["Patient ID"],
            "path": [str(located[name]) for name in table["Image Index"]],
            "age": _ages(table, csv),
            "sex": parse_column(table, sex, _code(_SEX, sex), source=csv),
            "view": parse_column(table, "View Position", _code(_VIEW, "View Position"), source=csv),
        },
        index=table.index,
    )
    findings = parse_column(table, "Finding Labels", _parse_labels, source=csv)
    for key in LABELS.values():
        records[key] = pd.array([int(key in present) for present in findings], dtype="Int64")
    if split is not None:
        records["split"] = split
    return Cohort(records, modality="chest X-ray", root=folder)


def _sex_column(table: pd.DataFrame, csv: Path) -> str:
    """The table's sex column: 'Patient Gender' or 'Patient Sex', whichever release the table is from."""
    present = [column for column in SEX_COLUMNS if column in table.columns]
    if len(present) != 1:
        releases = "; ".join(f"'{column}' in {tables}" for column, tables in SEX_COLUMNS.items())
        found = "both" if present else "neither"
        raise ValueError(f"{csv}: {found} of the sex columns ({releases}); keep the one column of the release")
    return present[0]


def _official_split(table: pd.DataFrame, csv: Path) -> pd.Series | None:
    """Each image's part of the official split from the lists beside `csv`, or None without the lists."""
    lists = {csv.parent / name: part for name, part in SPLIT_LISTS.items()}
    if not (present := [path.name for path in lists if path.is_file()]):
        return None
    parts: dict[str, str] = {}
    for path, part in lists.items():
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: not found beside {present[0]}; the official split needs both lists (download both)"
            )
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if (name := line.strip()) and parts.setdefault(name, part) != part:
                raise ValueError(f"{path}: line {number}: {name} is in both lists; restore the released lists")
    if missing := [name for name in table["Image Index"] if name not in parts]:
        raise ValueError(
            f"{csv}: {len(missing)} image(s) in neither {' nor '.join(SPLIT_LISTS)} (e.g. "
            f"{', '.join(missing[:EXAMPLES_SHOWN])}); put the lists of the same release beside the table"
        )
    return pd.Series([parts[name] for name in table["Image Index"]], index=table.index, dtype=object)


def _image_paths(folder: Path) -> dict[str, Path]:
    """File name → path for every PNG under `folder` (one walk; names must be unique)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found; pass images= the folder with the PNGs")
    located: dict[str, Path] = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            if not name.lower().endswith(".png"):
                continue
            if name in located:
                raise ValueError(
                    f"{folder}: image {name} found twice ({located[name]}, {Path(directory) / name}); remove the copy"
                )
            located[name] = Path(directory) / name
    return located


def _parse_labels(value: object) -> set[str]:
    names = set() if is_missing(value) else {name.strip() for name in str(value).split("|")}
    if unknown := sorted(names - set(LABELS)):
        raise ValueError(f"unknown label(s) {unknown}; ChestX-ray14 labels are {', '.join(LABELS)}")
    if "No Finding" in names and len(names) > 1:
        raise ValueError(f"'{value}' combines No Finding with findings; keep one or the other")
    return {LABELS[name] for name in names}


def _code(mapping: dict[str, str], column: str) -> Callable[[object], str | None]:
    """A parser of one coded column for parse_column."""

    def parse(value: object) -> str | None:
        if is_missing(value):
            return None
        if (text := str(value).strip().upper()) not in mapping:
            raise ValueError(f"{column} '{value}' not understood; expected {' or '.join(mapping)}")
        return mapping[text]

    return parse


def _ages(table: pd.DataFrame, csv: Path) -> pd.Series:
    """Ages in years. The 2017 release holds a few impossible ages (up to 414 years): recording errors,
    kept as unknown with a warning rather than rendered into prompts."""

    def parse(value: object) -> float | None:
        if is_missing(value):
            return None
        text = str(value).strip().upper()
        if (match := _AGE_STRING.fullmatch(text)) is not None:  # sample_labels.csv: "060Y"
            number = int(match.group(1)) * AGE_UNITS[match.group(2)]
        else:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(
                    f"age '{value}' is neither years (63) nor a DICOM age string (063Y, 011M, 003W, 010D); fix it"
                ) from None
        return number if number > MAX_AGE_YEARS else parse_age(number)  # negative ages are still errors

    ages = parse_column(table, "Patient Age", parse, source=csv).astype("Float64")
    impossible = ages > MAX_AGE_YEARS
    if impossible.any():
        warnings.warn(
            f"{csv}: {int(impossible.sum())} age(s) above {MAX_AGE_YEARS} years "
            f"(e.g. {ages[impossible].iloc[0]:g}) are recording errors; they are treated as unknown",
            stacklevel=3,
        )
        ages[impossible] = pd.NA
    return ages
