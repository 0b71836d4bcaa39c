"""Every image and mask of a cohort read in full before work starts, so one bad file among thousands (a
truncated JPEG, a damaged volume) is found up front — named, then refused or skipped as the user chose —
instead of stopping a training run halfway.

Files are decoded as the Dataset decodes them (a volume: its data, through the slice reader), on a thread
pool: the image decoders release the GIL, so the check scales with the cores.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from medcf.data.cohort import EXAMPLES_SHOWN, Cohort
from medcf.data.io import read_image

BAD_FILE_POLICIES = ("error", "skip", "unchecked")  # medcf.config_checks repeats them (a test keeps both equal)


@dataclass(frozen=True)
class BadFile:
    path: str
    reason: str  # the reader's one-line error


def unreadable_files(cohort: Cohort, *, progress: bool = True) -> list[BadFile]:
    """The image and mask files of `cohort` that do not decode, in table order (each file read once)."""
    files = _files(cohort)
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        reasons = pool.map(lambda item: _failure(*item, axis=cohort.axis), files.items())
        bar = tqdm(reasons, total=len(files), desc="medcf check files", unit="file", disable=not progress)
        found = [BadFile(path, reason) for path, reason in zip(files, bar, strict=True) if reason]
    return found


def readable_cohort(cohort: Cohort, policy: str, *, progress: bool = True) -> Cohort:
    """`cohort` after reading every file: "error" refuses any unreadable one (naming them and the fixes);
    "skip" drops the rows of unreadable files, saying which, and refuses only when none is left; "unchecked"
    reads nothing."""
    if policy not in BAD_FILE_POLICIES:
        raise ValueError(f"bad_files={policy!r} unknown; use one of {', '.join(BAD_FILE_POLICIES)}")
    if policy == "unchecked":
        return cohort
    bad = unreadable_files(cohort, progress=progress)
    if not bad:
        return cohort
    shown = "; ".join(f"{item.path} ({item.reason})" for item in bad[:EXAMPLES_SHOWN])
    if policy == "error":
        raise ValueError(
            f"{cohort.root}: {len(bad)} unreadable file(s): {shown}; replace them, or skip them with "
            "--set data.bad_files=skip (`medcf data check` lists them all)"
        )
    paths = {item.path for item in bad}
    columns = [column for column in ("path", "mask_path", "source_path") if column in cohort.records]
    keep = ~cohort.records[columns].isin(paths).any(axis=1)
    if not keep.any():
        raise ValueError(f"{cohort.root}: no image is readable ({shown}); check the dataset download")
    warnings.warn(f"{cohort.root}: skipped {int((~keep).sum())} image(s) of {len(bad)} unreadable file(s): {shown}",
                  stacklevel=2)  # fmt: skip
    return cohort.select(keep)


def _files(cohort: Cohort) -> dict[str, int | None]:
    """Each distinct file → a slice to read (a volume is checked by reading one of its slices, which loads
    and checks its whole data), or None for a 2-D file."""
    files: dict[str, int | None] = {}
    records = cohort.records
    groups = [("path", "slice_index")] + [("mask_path", "slice_index")] * cohort.has_masks
    groups += [("source_path", "source_slice_index")] * ("source_path" in records)  # image pairs (data/pairs.py)
    for path_column, index_column in groups:
        for path, index in zip(records[path_column], records[index_column], strict=True):
            files.setdefault(path, None if pd.isna(index) else int(index))
    return files


def _failure(path: str, index: int | None, *, axis: str) -> str:
    """Why the file does not decode, in one line; empty when it does."""
    try:
        read_image(path) if index is None else read_image(path, index=index, axis=axis)
    except (ValueError, OSError) as error:
        return " ".join(str(error).removeprefix(f"{path}: ").split())
    return ""
