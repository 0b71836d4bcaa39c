"""Cohort: the table of a dataset, one row per 2-D image, in the canonical clinical row of medcf.

Columns: id (unique), patient_id, path (absolute), slice_index (int, or <NA> for single-image files),
optionally mask_path, then canonical clinical fields (age, sex, smoking, view, diagnosis, findings).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from medcf.prompts import is_missing

REQUIRED_COLUMNS = ("id", "patient_id", "path")
EXAMPLES_SHOWN = 5  # missing files quoted in an error message; the rest are counted


@dataclass(frozen=True, eq=False)  # eq=False: DataFrame equality is element-wise, not a bool
class Cohort:
    """One row per 2-D image with its clinical fields; validated and normalised on construction."""

    records: pd.DataFrame
    modality: str  # prompt modality, e.g. "chest X-ray", "brain MRI"
    root: Path  # dataset folder; relative paths in `records` are taken relative to it
    axis: str = "axial"  # slicing plane of rows with a slice_index in NIfTI volumes
    # COVID-19 Radiography ships 256×256 lung masks for 299×299 images; such masks are resized to their
    # image (nearest neighbour). Elsewhere a size mismatch is an error, since it means the wrong mask.
    resize_masks: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())  # rows re-normalised on select stay put
        object.__setattr__(self, "records", _normalize(self.records, self.root))

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (
            f"Cohort({len(self)} images of {self.records['patient_id'].nunique()} patients, "
            f"modality={self.modality!r}, root='{self.root}')"
        )

    @property
    def has_masks(self) -> bool:
        return "mask_path" in self.records.columns

    def select(self, rows: pd.Series | Iterable[bool]) -> Cohort:
        """The cohort restricted to `rows` (a boolean mask over records), other settings kept."""
        return replace(self, records=self.records[list(rows)].reset_index(drop=True))


def _normalize(records: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Check identity columns and return a copy with string ids, absolute paths and Int64 slice_index."""
    if missing := [column for column in REQUIRED_COLUMNS if column not in records.columns]:
        raise ValueError(
            f"{root}: cohort table lacks column(s) {missing} (has {list(records.columns)}); "
            "every row needs id, patient_id and path"
        )
    if records.empty:
        raise ValueError(f"{root}: the cohort has no images; check the dataset folder and its table")
    records = records.reset_index(drop=True)
    identity = ["id", "patient_id", "path"] + (["mask_path"] if "mask_path" in records.columns else [])
    for column in identity:
        blank = records[column].map(is_missing)
        if blank.any():
            first = records.loc[blank.idxmax(), "id"] if column != "id" else f"row {blank.idxmax()}"
            raise ValueError(
                f"{root}: {int(blank.sum())} image(s) lack a {column} (first: {first}); "
                f"give every image a {column}" + (" or drop the mask column" if column == "mask_path" else "")
            )
    records = records.assign(
        id=records["id"].astype(str),
        patient_id=records["patient_id"].astype(str),
        **{column: _absolute(records[column], root) for column in ("path", "mask_path") if column in records},
        slice_index=_slice_indices(records, root),
    )
    duplicated = records["id"][records["id"].duplicated()].unique()
    if len(duplicated):
        shown = ", ".join(repr(value) for value in duplicated[:EXAMPLES_SHOWN])
        raise ValueError(f"{root}: {len(duplicated)} duplicate image id(s) (e.g. {shown}); ids must be unique")
    return records


def _absolute(paths: pd.Series, root: Path) -> pd.Series:
    return paths.map(lambda path: os.path.normpath(root / str(path)))  # root / absolute = absolute


def _slice_indices(records: pd.DataFrame, root: Path) -> pd.Series:
    if "slice_index" not in records.columns:
        return pd.Series(pd.NA, index=records.index, dtype="Int64")
    try:
        return records["slice_index"].astype("Int64")
    except (TypeError, ValueError):
        raise ValueError(f"{root}: slice_index must hold whole numbers or be empty") from None


def check_files(paths: Iterable[str], *, source: Path, what: str = "image") -> None:
    """Every path must be an existing file; the error lists the first few missing ones."""
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        shown = ", ".join(missing[:EXAMPLES_SHOWN])
        raise FileNotFoundError(
            f"{source}: {len(missing)} {what} file(s) not found (e.g. {shown}); "
            "download them, fix the paths or the dataset root"
        )
