"""OASIS-3 (LaMontagne et al., medRxiv 2019) read as downloaded from NITRC-IR with NrgXnat/oasis-scripts.

Scans: download_oasis_scans.sh unpacks <dir>/OAS30001_MR_d0129/anat<n>/sub-OAS30001_ses-d0129_run-01_T1w.nii.gz
and download_oasis_scans_bids.sh <dir>/sub-OAS30001/ses-d0129/anat/ with the same file names; both are read.
OASIS removed dates: a session is labelled by its days from the participant's entry into the study (d0129).
Tables (the "OASIS3_data_files" downloads, found anywhere under root by name):
- OASIS3_demographics.csv: OASISID, AgeatEntry, GENDER (1 = male, 2 = female), ...;
- OASIS3_UDSb4_cdr.csv: OASISID, days_to_visit, CDRTOT (global CDR), MMSE, dx1, ... per clinical visit.

Age at a scan = AgeatEntry + days / 365.25. Clinical visits rarely fall on scan days; a scan takes the CDR of
the nearest rated visit of the participant within `max_days` (365: the NrgXnat oasis-scripts README's "common
criteria", one year before or after), else its diagnosis is unknown. The CDR is read the OASIS way (CDR 0 → CN,
> 0 → AD; medcf.data.adapters.brain_fields); OASIS-3 also enrols other dementias, whose clinician diagnosis
(dx1) medcf does not map.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medcf.data.adapters.brain_fields import cdr_columns, parse_cdr
from medcf.data.adapters.release import find_table, index_files, one_file
from medcf.data.adapters.volumes import check_axis, slice_cohort
from medcf.data.cohort import Cohort
from medcf.data.table import load_table, parse_column
from medcf.prompts import is_missing
from medcf.prompts.fields import parse_age

DEMOGRAPHICS = ("OASIS3_demographics*.csv",)
CLINICAL = ("OASIS3_UDSb4_cdr*.csv",)
T1W = re.compile(r"^sub-(OAS3\d{4}_ses-d\d+)(?:_acq-[A-Za-z0-9]+)?(?:_run-(\d+))?_T1w\.nii(?:\.gz)?$")
GENDER = {"1": "M", "2": "F"}  # OASIS-3 data dictionary: GENDER 1 = male, 2 = female
DAYS_PER_YEAR = 365.25
MAX_DAYS = 365


def oasis3(
    root: str | Path,
    *,
    axis: str = "axial",
    slices: Sequence[int] | None = None,
    demographics: str | Path | None = None,
    clinical: str | Path | None = None,
    max_days: int = MAX_DAYS,
) -> Cohort:
    """OASIS-3 T1-weighted MR sessions, one volume each (the lowest run-<n>), sliced along `axis`.

    Rows: id, patient_id (OASISID), session_id (OAS3xxxx_MR_dNNNN), path, slice_index, age (at the scan), sex,
    diagnosis (nearest rated visit's CDR), the finding flags and dementia_severity. Scans are raw (not
    registered across sessions). `demographics` / `clinical` override the tables found under root.
    """
    root = Path(root)
    check_axis(axis)
    people_csv = find_table(root, DEMOGRAPHICS, demographics, what="OASIS-3 demographics", argument="demographics")
    people = _demographics(people_csv)
    ratings = _ratings(find_table(root, CLINICAL, clinical, what="OASIS-3 CDR table", argument="clinical"))
    rows, stages = [], []
    for (subject, day), path in sorted(_sessions(root).items()):
        if subject not in people.index:
            raise ValueError(f"{people_csv}: no row for participant {subject}; use the table's current release")
        entry_age, session = people.loc[subject, "age"], f"{subject}_MR_d{day:04d}"
        rows.append({
            "scan": session, "patient_id": subject, "session_id": session, "path": str(path),
            "age": None if is_missing(entry_age) else float(entry_age) + day / DAYS_PER_YEAR,
            "sex": people.loc[subject, "sex"],
        })  # fmt: skip
        stages.append(_nearest_stage(ratings.get(subject, []), day, max_days))
    volumes = pd.DataFrame(rows).assign(**cdr_columns(stages))
    return slice_cohort(volumes, root=root, axis=axis, slices=slices)


def _sessions(root: Path) -> dict[tuple[str, int], Path]:
    """(OASISID, days from entry) → the session's T1w volume with the lowest run number."""
    runs: dict[tuple[str, int], list[tuple[int, Path]]] = {}
    for key, paths in index_files(root, T1W).items():
        subject, day = key.split("_ses-d")
        for path in paths:
            run = T1W.match(path.name).group(2)  # type: ignore[union-attr]
            runs.setdefault((subject, int(day)), []).append((int(run or 1), path))
    if not runs:
        raise FileNotFoundError(
            f"{root}: no OASIS-3 T1w scan (sub-OAS3xxxx_ses-dNNNN_run-NN_T1w.nii.gz); download them with "
            "NrgXnat/oasis-scripts download_oasis_scans.sh ... T1w into this folder"
        )
    first = {}
    for session, found in runs.items():
        run = min(number for number, _ in found)
        first[session] = one_file(f"{session[0]} d{session[1]}", [p for n, p in found if n == run], what="T1w run")
    return first


def _demographics(csv: Path) -> pd.DataFrame:
    """Age at entry and sex by OASISID."""
    table = load_table(csv, id_column="OASISID", required=["AgeatEntry", "GENDER"])
    return pd.DataFrame(
        {
            "age": parse_column(table, "AgeatEntry", parse_age, source=csv),
            "sex": parse_column(table, "GENDER", _parse_gender, source=csv),
        }
    ).set_index(table["OASISID"].str.strip())


def _parse_gender(value: object) -> str | None:
    if is_missing(value):
        return None
    if (sex := GENDER.get(str(value).strip().removesuffix(".0"))) is None:
        raise ValueError(f"GENDER '{value}' not understood; OASIS-3 codes 1 = male, 2 = female")
    return sex


def _ratings(csv: Path) -> dict[str, list[tuple[int, float]]]:
    """Each participant's (days to visit, global CDR) of the rated clinical visits."""
    table = load_table(csv, required=["OASISID", "days_to_visit", "CDRTOT"])
    days = parse_column(table, "days_to_visit", _parse_days, source=csv)
    stages = parse_column(table, "CDRTOT", parse_cdr, source=csv)
    ratings: dict[str, list[tuple[int, float]]] = {}
    for subject, day, stage in zip(table["OASISID"].str.strip(), days, stages, strict=True):
        if day is not None and stage is not None:
            ratings.setdefault(subject, []).append((day, stage))
    return ratings


def _parse_days(value: object) -> int | None:
    if is_missing(value):
        return None
    try:
        return int(float(str(value).strip()))
    except ValueError:
        raise ValueError(f"days_to_visit '{value}' is not a number of days") from None


def _nearest_stage(ratings: list[tuple[int, float]], day: int, max_days: int) -> float | None:
    """The CDR of the rated visit nearest to `day` within max_days (the earlier one on a tie), or None."""
    near = [(abs(visit - day), visit, stage) for visit, stage in ratings if abs(visit - day) <= max_days]
    return min(near)[2] if near else None
