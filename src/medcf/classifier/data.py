"""Labelled images for the classifier: a cohort's images at one resolution and its binary label columns.

Labels are finding columns (1 present, 0 absent, empty unknown) or `smoking_current`, derived from the
smoking column (1 current; 0 never, former or "no"). Rows with an unknown label are left out; `ids` tells
which rows were kept. Images are read, centre-cropped and resized exactly as for diffusion training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch

from medcf.data import Cohort, read_image
from medcf.data.adapters import image_folder
from medcf.data.dataset import resize_square
from medcf.data.intensity import to_model_range
from medcf.prompts import DEFAULT_VOCABULARY

SMOKING_CURRENT = "smoking_current"


class LabelledImages(NamedTuple):
    images: torch.Tensor  # (N, 1, R, R) in [-1, 1]
    labels: torch.Tensor  # (N, K) float32 in {0, 1}
    label_names: list[str]  # K names, the columns of `labels`
    ids: list[str]  # N image ids of the cohort rows kept


def load_labelled_images(
    root: str | Path,
    *,
    resolution: int,
    label_names: Sequence[str] | None = None,
    csv: str = "metadata.csv",
    modality: str = "chest X-ray",
) -> LabelledImages:
    """The dataset folder `root` (medcf.data.adapters.image_folder layout) as labelled images."""
    return labelled_images(image_folder(root, csv, modality=modality), resolution=resolution, label_names=label_names)


def labelled_images(cohort: Cohort, *, resolution: int, label_names: Sequence[str] | None = None) -> LabelledImages:
    """Images and labels of the rows whose labels are all known; default labels: every finding column."""
    names = list(label_names) if label_names is not None else default_label_names(cohort)
    table = pd.DataFrame({name: _label_column(cohort, name) for name in names})
    known = table.notna().all(axis=1).to_numpy()
    if not known.any():
        raise ValueError(
            f"{cohort.root}: no row has all of the labels {names} known; choose labels the table fills in"
        )
    rows = cohort.records[known]
    images = [_image(row.path, row.slice_index, axis=cohort.axis, resolution=resolution) for row in rows.itertuples()]
    labels = torch.tensor(table[known].to_numpy(dtype="float32"))
    return LabelledImages(torch.stack(images), labels, names, rows["id"].tolist())


def default_label_names(cohort: Cohort) -> list[str]:
    """The finding columns of the cohort (vocabulary findings), in table order."""
    names = [column for column in cohort.records.columns if column in DEFAULT_VOCABULARY.findings]
    if not names:
        raise ValueError(f"{cohort.root}: the table has no finding columns; pass label_names, e.g. ['nodule']")
    return names


def _label_column(cohort: Cohort, name: str) -> pd.Series:
    """One label as float 1 / 0 / NaN (unknown)."""
    records = cohort.records
    if name == SMOKING_CURRENT and "smoking" in records:
        if (records["smoking"] == "yes").any():
            raise ValueError(
                f"{cohort.root}: smoking 'yes' does not tell current from former smokers; "
                f"record never/former/current or drop the {SMOKING_CURRENT} label"
            )
        return records["smoking"].map({"current": 1.0, "former": 0.0, "never": 0.0, "no": 0.0})
    if name not in records:
        raise ValueError(
            f"{cohort.root}: label {name!r} is not a column (has {list(records.columns)}); "
            f"name a finding column or {SMOKING_CURRENT!r} (needs a smoking column)"
        )
    values = pd.to_numeric(records[name], errors="coerce").astype("Float64")
    if not values.dropna().isin([0, 1]).all() or values.isna().sum() != records[name].isna().sum():
        raise ValueError(f"{cohort.root}: column {name!r} holds values other than 1, 0 or empty; it is not a label")
    return values.astype("float64")  # <NA> becomes NaN


def _image(path: str, slice_index: object, *, axis: str, resolution: int) -> torch.Tensor:
    """One image (1, R, R) in [-1, 1]: a slice or frame when slice_index is set."""
    index = None if pd.isna(slice_index) else int(slice_index)
    pixels = torch.from_numpy(read_image(path, index=index, axis=axis).pixels).float()
    return to_model_range(resize_square(pixels, resolution))[None]
