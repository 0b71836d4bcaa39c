"""OASIS-1 and OASIS-2 (oasis-brains.org) read as downloaded: Analyze volumes in session folders + the release table.

OASIS-1 (Marcus et al., J. Cogn. Neurosci. 2007): 416 participants aged 18–96, one session each, shipped as
twelve discs (disc1/ … disc12/) of session folders <ID>/ with RAW/, PROCESSED/MPRAGE/{SUBJ_111,T88_111}/ and
FSL_SEG/; table oasis_cross-sectional.csv (ID, M/F, Hand, Age, Educ, SES, MMSE, CDR, eTIV, nWBV, ASF, Delay).
20 nondemented participants were rescanned within 90 days for reliability: session <ID>_MR2 is the same person
as <ID>_MR1, so the patient id is the ID without its _MR<n> suffix and a patient split keeps both scans together.

OASIS-2 (Marcus et al., J. Cogn. Neurosci. 2010): 150 participants aged 60–96, 373 sessions ≥ 1 year apart,
raw scans only, OAS2_RAW_PART1/ and OAS2_RAW_PART2/ holding <MRI ID>/RAW/mpr-<n>.nifti.img/.hdr (3–4 MP-RAGE
scans per session); table oasis_longitudinal.csv (Subject ID, MRI ID, Group, Visit, MR Delay, M/F, Hand, Age,
EDUC, SES, MMSE, CDR, eTIV, nWBV, ASF). Age is the age at that visit.

Diagnosis: from the CDR of the session (rules in medcf.data.adapters.brain_fields); a blank CDR stays unknown.
OASIS-2's Group is a label of the participant over the whole study, not of a visit: Nondemented throughout,
Demented throughout, or Converted (nondemented at the first visit, demented at a later one), so a Converted
participant's early visits are CN. The per-visit CDR says which visits those are; Group is not read.

The cohort holds the sessions whose volume is under root (one disc, a few, or all): a table row without its
volume is left out, a volume without a table row is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medcf.data.adapters.brain_fields import clinical_fields
from medcf.data.adapters.release import find_table, index_files, one_file
from medcf.data.adapters.volumes import check_axis, slice_cohort
from medcf.data.cohort import Cohort
from medcf.data.table import load_table

OASIS1_TABLES = ("oasis_cross-sectional*.csv", "oasis_cross-sectional*.xlsx")
OASIS2_TABLES = ("oasis_longitudinal*.csv", "oasis_longitudinal*.xlsx")
# T88_111: the session's MP-RAGE scans averaged (n = their number), registered to the Talairach–Tournoux atlas
# (Buckner et al. 2004) at 1 mm, gain-field (bias) corrected; "masked" adds the brain mask.
T88 = re.compile(r"^(OAS1_\d{4}_MR\d+)_mpr_n\d+_anon_111_t88_gfc\.img$")
T88_MASKED = re.compile(r"^(OAS1_\d{4}_MR\d+)_mpr_n\d+_anon_111_t88_masked_gfc\.img$")
RAW_SCAN = re.compile(r"^mpr-(\d+)\.nifti\.img$")
SESSION = re.compile(r"^OAS[12]_\d{4}_MR\d+$")


def oasis1(
    root: str | Path,
    *,
    masked: bool = False,
    axis: str = "axial",
    slices: Sequence[int] | None = None,
    table: str | Path | None = None,
) -> Cohort:
    """OASIS-1 as downloaded: each session's atlas-registered, bias-corrected T88_111 volume
    (<ID>_mpr_n<n>_anon_111_t88_gfc.img; `masked` → the brain-masked ..._t88_masked_gfc.img), sliced along `axis`.

    Rows: id, patient_id (OAS1_xxxx), session_id (the table's ID), path, slice_index, age, sex, diagnosis, the
    finding flags and dementia_severity. `slices` as in brain_mri; `table` overrides the table found under root.
    """
    root = Path(root)
    check_axis(axis)
    csv = find_table(root, OASIS1_TABLES, table, what="OASIS-1 table", argument="table")
    rows = load_table(csv, id_column="ID", required=["M/F", "Age", "CDR"])
    fields = clinical_fields(rows, csv, age="Age", sex="M/F", cdr="CDR").assign(session_id=rows["ID"].str.strip())
    images = index_files(root, T88_MASKED if masked else T88)
    what = "T88_111 masked_gfc" if masked else "T88_111 gfc"
    if not images:
        raise FileNotFoundError(
            f"{root}: no OASIS-1 {what} volume (disc*/OAS1_xxxx_MRn/PROCESSED/MPRAGE/T88_111/*.img); unpack the "
            "discs (oasis_cross-sectional_disc1.tar.gz, ...) under this folder"
        )
    chosen = {session: one_file(session, found, what=what) for session, found in images.items()}
    volumes = _volumes(fields, chosen, csv)
    volumes["patient_id"] = volumes["session_id"].str.replace(r"_MR\d+$", "", regex=True)
    return slice_cohort(volumes, root=root, axis=axis, slices=slices)


def oasis2(
    root: str | Path, *, axis: str = "axial", slices: Sequence[int] | None = None, table: str | Path | None = None
) -> Cohort:
    """OASIS-2 as downloaded: each session's first raw MP-RAGE scan, sliced along `axis`.

    A session holds 3–4 scans of one visit, mpr-1 … mpr-4; the one with the lowest number (mpr-1 when present)
    is read, so every visit contributes one volume. Raw scans are neither bias-corrected nor registered: slice k
    of two visits is not the same anatomy (see medcf.data.longitudinal). The planes follow the header's
    orientation; a pair with an Analyze header (no orientation) gets nibabel's Analyze convention
    (medcf.data.nifti), which need not be the scanner's: check a slice before training on a plane.
    Rows: id, patient_id (Subject ID), session_id (MRI ID), path, slice_index, age (at the visit), sex,
    diagnosis (from the visit's CDR), the finding flags and dementia_severity.
    """
    root = Path(root)
    check_axis(axis)
    csv = find_table(root, OASIS2_TABLES, table, what="OASIS-2 table", argument="table")
    rows = load_table(csv, id_column="MRI ID", required=["Subject ID", "M/F", "Age", "CDR"])
    fields = clinical_fields(rows, csv, age="Age", sex="M/F", cdr="CDR").assign(
        session_id=rows["MRI ID"].str.strip(), patient_id=rows["Subject ID"].str.strip()
    )
    scans = _first_raw_scans(root)
    if not scans:
        raise FileNotFoundError(
            f"{root}: no OASIS-2 raw scan (OAS2_RAW_PART*/OAS2_xxxx_MRn/RAW/mpr-<n>.nifti.img); unpack "
            "OAS2_RAW_PART1.tar.gz / OAS2_RAW_PART2.tar.gz under this folder"
        )
    return slice_cohort(_volumes(fields, scans, csv), root=root, axis=axis, slices=slices)


def _first_raw_scans(root: Path) -> dict[str, Path]:
    """Each OASIS-2 session's lowest-numbered RAW/mpr-<n>.nifti.img."""
    by_session: dict[str, list[tuple[int, Path]]] = {}
    for path in root.rglob("mpr-*.img"):
        match, session = RAW_SCAN.match(path.name), path.parent.parent.name
        if match and path.parent.name == "RAW" and SESSION.match(session):
            by_session.setdefault(session, []).append((int(match.group(1)), path))
    first = {}
    for session, scans in by_session.items():
        number = min(scan for scan, _ in scans)
        first[session] = one_file(session, [path for scan, path in scans if scan == number], what=f"mpr-{number}")
    return first


def _volumes(fields: pd.DataFrame, images: dict[str, Path], csv: Path) -> pd.DataFrame:
    """One row per image: its session's table fields, scan name and path; a session missing from the table fails."""
    if unlisted := sorted(set(images) - set(fields["session_id"])):
        raise ValueError(
            f"{csv}: no row for session(s) {', '.join(unlisted[:5])} found under the dataset folder; use the table "
            "of the same release (or pass table=)"
        )
    volumes = fields[fields["session_id"].isin(images)].copy()
    volumes["scan"] = volumes["session_id"]
    volumes["path"] = [str(images[session]) for session in volumes["session_id"]]
    return volumes.sort_values("session_id").reset_index(drop=True)
