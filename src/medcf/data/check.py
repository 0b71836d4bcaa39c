"""`medcf data check`: what a user runs first on a dataset download, before training on it.

It reads the folder through an adapter exactly as training would, decodes every file, and reports: counts
(images, files, patients, sessions), unreadable files by name, the split training would use (the release's
own, else medcf's patient split) with label prevalence per split, age and sex per split, the prompts a few
rows become, and a preview grid — as index.html + report.md + summary.json beside the pictures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medcf.atomic import atomic_folder, atomic_path, new_output_folder
from medcf.data.cohort import Cohort
from medcf.data.dataset import resize_square
from medcf.data.io import read_image
from medcf.data.split import train_holdout
from medcf.data.verify import BadFile, unreadable_files
from medcf.figures import bar_charts, grid, save_figure
from medcf.prompts import DEFAULT_VOCABULARY, PromptTemplate, is_missing
from medcf.report import Section, write_report

TILE = 96  # px of each preview image
BAD_FILES_LISTED = 200  # rows of the unreadable-files table; the rest are counted
AGE_BINS = [0, 20, 30, 40, 50, 60, 70, 80, 90, 200]


@dataclass(frozen=True)
class DatasetCheck:
    report: Path
    images: int
    patients: int
    bad_files: list[BadFile]
    prompt_errors: int  # rows whose prompt cannot be rendered

    @property
    def problems(self) -> int:
        return len(self.bad_files) + self.prompt_errors


def check_dataset(
    cohort: Cohort, out: Path, *, name: str, holdout_fraction: float = 0.1, seed: int = 0, prompts: int = 8,
    preview: int = 16, progress: bool = True,
) -> DatasetCheck:  # fmt: skip
    """Check `cohort` (read by adapter `name`) and write the report into the new folder `out`."""
    out = new_output_folder(out)
    parts = train_holdout(cohort, holdout_fraction, seed=seed)  # before the long read: a bad split fails at once
    bad = unreadable_files(cohort, progress=progress)
    prompt_table = [_prompt_row(cohort.modality, row, seed) for row in _sample(cohort.records, prompts, seed)]
    errors = sum(str(row["prompt"]).startswith("error:") for row in prompt_table)
    check = DatasetCheck(out / "index.html", len(cohort), cohort.records["patient_id"].nunique(), bad, errors)
    with atomic_folder(out) as staging:
        sections = [
            _overview(cohort, name, parts, holdout_fraction=holdout_fraction),
            _files_section(cohort, bad),
            _labels_section(parts),
            _demographics_section(parts, staging),
            Section("Prompts", ["A few rows in the training prompt style (diverse)."], table=prompt_table),
            _preview_section(cohort, bad, staging, preview, seed),
        ]
        write_report(staging, f"Dataset check: {name} at {cohort.root}", sections)
        _write_summary(staging / "summary.json", check, parts)
    return check


def _overview(cohort: Cohort, name: str, parts: dict[str, Cohort], *, holdout_fraction: float) -> Section:
    records = cohort.records
    how = f"medcf's patient split (holdout {holdout_fraction:g})"
    if "split" in records:
        how = "the release's own split column"
    table = [{"": "all", **_counts(records)}] + [{"": part, **_counts(c.records)} for part, c in parts.items()]
    paragraphs = [
        f"Adapter {name}; modality {cohort.modality}; {len(records)} images from "
        f"{records['path'].nunique()} files of {records['patient_id'].nunique()} patients.",
        f"Training would use {how}: no patient is in two parts.",
    ]
    return Section("Overview", paragraphs, table=table)


def _counts(records: pd.DataFrame) -> dict[str, int]:
    counts = {"images": len(records), "files": records["path"].nunique(), "patients": records["patient_id"].nunique()}
    if "session_id" in records:
        counts["sessions"] = records["session_id"].nunique()
    return counts


def _files_section(cohort: Cohort, bad: list[BadFile]) -> Section:
    files = cohort.records["path"].nunique() + (cohort.records["mask_path"].nunique() if cohort.has_masks else 0)
    if not bad:
        return Section("Files", [f"All {files} image and mask files decode."])
    text = (
        f"{len(bad)} of {files} files do not decode. Replace them, or train with --set data.bad_files=skip, which "
        "drops their rows and says so."
    )
    table = [{"file": item.path, "why": item.reason} for item in bad[:BAD_FILES_LISTED]]
    if len(bad) > BAD_FILES_LISTED:
        text += f" The table shows {BAD_FILES_LISTED}; summary.json lists them all."
    return Section("Unreadable files", [text], table=table)


def _labels_section(parts: dict[str, Cohort]) -> Section:
    """Per finding and part: positives / images with a known label (%), and how many are unknown."""
    findings = [key for key in DEFAULT_VOCABULARY.findings if any(key in part.records for part in parts.values())]
    table = []
    for key in findings:
        row: dict[str, object] = {"finding": key}
        for name, part in parts.items():
            values = part.records[key] if key in part.records else pd.Series(dtype="Int64")
            known = values.dropna()
            share = f" ({100 * known.mean():.1f}%)" if len(known) else ""
            row[name] = f"{int(known.sum())} / {len(known)}{share}, {len(values) - len(known)} unknown"
        table.append(row)
    if not table:
        return Section("Labels", ["No finding columns: prompts carry patient fields only."])
    return Section("Labels per split", ["positives / images with a known label (%), unknown."], table=table)


def _demographics_section(parts: dict[str, Cohort], out: Path) -> Section:
    ages = {name: _age_counts(part.records) for name, part in parts.items()}
    sexes = {name: _value_counts(part.records, "sex") for name, part in parts.items()}
    panels = {"age (years)": ages, "sex": sexes}
    if any("diagnosis" in part.records for part in parts.values()):
        panels["diagnosis"] = {name: _value_counts(part.records, "diagnosis") for name, part in parts.items()}
    shares = {title: {part: _percent(n) for part, n in by_part.items()} for title, by_part in panels.items()}
    bar_charts(shares, out / "demographics.png", ylabel="% of the split's images")  # splits differ in size
    table = [{"": title} | {part: _describe(n) for part, n in by_part.items()} for title, by_part in panels.items()]
    figure = ("demographics.png", "share of each split's images; the table counts them")
    return Section("Age and sex", figures=[figure], table=table)


def _age_counts(records: pd.DataFrame) -> dict[str, float]:
    labels = [f"{low}–{high - 1}" for low, high in zip(AGE_BINS[:-2], AGE_BINS[1:-1], strict=True)] + ["90+"]
    ages = pd.to_numeric(records["age"], errors="coerce") if "age" in records else pd.Series(dtype=float)
    binned = pd.cut(ages.dropna(), AGE_BINS, right=False, labels=labels)
    counts = {label: int(count) for label, count in binned.value_counts(sort=False).items()}
    return counts | {"unknown": int(ages.isna().sum()) + (0 if "age" in records else len(records))}


def _value_counts(records: pd.DataFrame, column: str) -> dict[str, float]:
    values = records[column] if column in records else pd.Series([None] * len(records), dtype=object)
    named = values.map(lambda value: "unknown" if is_missing(value) else str(value))
    return {str(key): int(count) for key, count in named.value_counts().sort_index().items()}


def _percent(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {key: 100 * value / total for key, value in counts.items()}


def _describe(counts: dict[str, float]) -> str:
    return ", ".join(f"{key} {int(value)}" for key, value in counts.items() if value)


def _sample(records: pd.DataFrame, count: int, seed: int) -> list[dict[str, object]]:
    chosen = np.random.default_rng(seed).permutation(len(records))[:count]
    return [records.iloc[int(index)].to_dict() for index in sorted(chosen)]


def _prompt_row(modality: str, row: dict[str, object], seed: int) -> dict[str, object]:
    try:
        prompt = PromptTemplate(modality, style="diverse").render(row, seed=seed)
    except ValueError as error:
        prompt = f"error: {error}"
    return {"id": row["id"], "prompt": prompt}


def _preview_section(cohort: Cohort, bad: list[BadFile], out: Path, count: int, seed: int) -> Section:
    broken = {item.path for item in bad}
    readable = cohort.records[~cohort.records["path"].isin(broken)]
    rows = _sample(readable, count, seed + 1)
    if not rows:
        return Section("Preview", ["No readable image to show."])
    tiles = [_tile(row, cohort.axis) for row in rows]
    save_figure(grid(tiles, columns=8), out / "preview.png")
    table = [{"#": number, "id": row["id"], "file": row["path"]} for number, row in enumerate(rows)]
    return Section("Preview", figures=[("preview.png", "randomly chosen images, as training reads them")], table=table)


def _tile(row: dict[str, object], axis: str) -> np.ndarray:
    index = None if is_missing(row["slice_index"]) else int(row["slice_index"])
    image = read_image(row["path"]) if index is None else read_image(row["path"], index=index, axis=axis)
    return resize_square(torch.from_numpy(image.pixels), TILE).numpy()


def _write_summary(path: Path, check: DatasetCheck, parts: dict[str, Cohort]) -> None:
    summary = {
        "images": check.images,
        "patients": check.patients,
        "splits": {name: _counts(part.records) for name, part in parts.items()},
        "unreadable_files": [{"file": item.path, "why": item.reason} for item in check.bad_files],
        "prompt_errors": check.prompt_errors,
    }
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(summary, indent=2), encoding="utf-8")
