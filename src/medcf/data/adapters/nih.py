"""NIH ChestX-ray14 (Wang et al., CVPR 2017): Data_Entry_2017.csv and 112,120 PNGs in images*/ folders.

Labels were text-mined from the radiology reports (NLP), and an image lists only the labels found, so
a label that is not listed means "not found in the report": it is recorded as absent (0), which is the
dataset's own convention, not a radiologist's negative reading.
"""

from __future__ import annotations

import os
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
REQUIRED = ["Finding Labels", "Patient ID", "Patient Age", "Patient Gender", "View Position"]
_SEX = {"M": "M", "F": "F"}
_VIEW = {"PA": "PA", "AP": "AP"}
EXAMPLES_SHOWN = 5


def nih_chestxray14(csv: str | Path, *, images: str | Path | None = None) -> Cohort:
    """Read Data_Entry_2017.csv into a Cohort; images are looked up by file name under `images`.

    `images` defaults to the CSV's folder, searched recursively once, so both images/ and the
    images_001/images ... images_012/images folders of the download are found.
    """
    csv = Path(csv)
    folder = Path(images) if images is not None else csv.parent
    table = load_table(csv, required=REQUIRED, id_column="Image Index")
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
            "sex": parse_column(table, "Patient Gender", _code(_SEX, "Patient Gender"), source=csv),
            "view": parse_column(table, "View Position", _code(_VIEW, "View Position"), source=csv),
        },
        index=table.index,
    )
    findings = parse_column(table, "Finding Labels", _parse_labels, source=csv)
    for key in LABELS.values():
        records[key] = pd.array([int(key in present) for present in findings], dtype="Int64")
    return Cohort(records, modality="chest X-ray", root=folder)


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
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"age '{value}' is not a number; give the age in years, e.g. 63") from None
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
