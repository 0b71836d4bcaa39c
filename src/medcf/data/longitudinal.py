"""Longitudinal pairs: two scans of one patient, an earlier and a later one, with the age and diagnosis at each.

Latent Drifting's ageing counterfactuals (Yeganeh et al., CVPR 2025) train InstructPix2Pix (Brooks et al., CVPR
2023) on (earlier scan, instruction, later scan) triples of one person. OASIS-2, OASIS-3 and ADNI revisit their
participants; their adapters (medcf.data.adapters.oasis2 / oasis3 / adni) give each row the scan's session_id
and the age at that scan, which is all the pairing needs.

Registration: raw volumes of different visits (OASIS-2 RAW, OASIS-3, ADNI) are not registered to each other:
the head lies differently in the scanner at every visit, so slice k of the earlier volume is not the anatomy of
slice k of the later one. Register each pair (rigidly, e.g. ANTs or FSL FLIRT) or both volumes to an atlas
before using slice pairs as pixel-aligned targets. OASIS-1's T88_111 volumes are atlas-registered, but its only
repeat scans (the _MR2 reliability sessions) lie within 90 days of the first.
"""

from __future__ import annotations

import pandas as pd

from medcf.data.cohort import Cohort

SCAN_FIELDS = ("session_id", "path", "age", "diagnosis")  # taken from each scan as earlier_* / later_*
PAIR_COLUMNS = [
    "id", "patient_id", "sex", "earlier_session_id", "later_session_id", "earlier_path", "later_path",
    "earlier_age", "later_age", "age_gap", "earlier_diagnosis", "later_diagnosis",
]  # fmt: skip


def longitudinal_pairs(cohort: Cohort, *, consecutive: bool = True, min_gap_years: float = 0.0) -> pd.DataFrame:
    """One row per pair of one patient's scans, earlier → later by age at the scan.

    `consecutive`: each scan is paired with the patient's next visit (the scans of the next larger age; several
    when that visit has several scans); False pairs it with every later scan. Scans of the same age (repeats
    within one visit) never pair. Pairs less than `min_gap_years` apart are dropped; scans of unknown age cannot
    be ordered and are left out. Columns: id (<earlier session>_to_<later session>), patient_id, sex,
    earlier_/later_session_id, _path, _age, age_gap (years), earlier_/later_diagnosis.
    """
    records = cohort.records
    if missing := [column for column in ("session_id", "age") if column not in records]:
        raise ValueError(
            f"{cohort.root}: the cohort lacks column(s) {missing}; longitudinal pairs need a cohort read by "
            "oasis2, oasis3 or adni (or any cohort with session_id and age columns)"
        )
    scans = records.drop_duplicates("session_id")  # the slices of one scan share its fields
    scans = scans[scans["age"].notna()].assign(age=lambda table: table["age"].astype(float))
    pairs = []
    for patient, visits in scans.sort_values(["age", "session_id"]).groupby("patient_id", sort=True):
        visits = visits.to_dict("records")
        for earlier in visits:
            later = [scan for scan in visits if scan["age"] > earlier["age"]]
            if consecutive and later:
                later = [scan for scan in later if scan["age"] == later[0]["age"]]
            pairs += [_pair(patient, earlier, scan) for scan in later]
    table = pd.DataFrame(pairs, columns=PAIR_COLUMNS)
    return table[table["age_gap"] >= min_gap_years].reset_index(drop=True)


def slice_pairs(cohort: Cohort, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per slice index that both scans of a pair have in the cohort: the pair's columns plus
    slice_index and earlier_id / later_id (the cohort rows of the two slices). Read the two images with
    medcf.data.io.read_image(<earlier|later>_path, index=slice_index, axis=cohort.axis).

    `pairs` defaults to longitudinal_pairs(cohort). The same index is the same voxel plane, the same anatomy
    only when the volumes are registered (module docstring).
    """
    pairs = longitudinal_pairs(cohort) if pairs is None else pairs
    slices = cohort.records[["session_id", "slice_index", "id"]]
    table = pairs.merge(
        slices.rename(columns={"session_id": "earlier_session_id", "id": "earlier_id"}), on="earlier_session_id"
    ).merge(
        slices.rename(columns={"session_id": "later_session_id", "id": "later_id"}),
        on=["later_session_id", "slice_index"],
    )
    names = zip(table["id"], table["slice_index"], strict=True)
    table["id"] = [f"{pair}_{cohort.axis}{index:03d}" for pair, index in names]
    return table.sort_values(["id"]).reset_index(drop=True)


def _pair(patient: object, earlier: dict[str, object], later: dict[str, object]) -> dict[str, object]:
    row = {"id": f"{earlier['session_id']}_to_{later['session_id']}", "patient_id": patient}
    row |= {"sex": earlier.get("sex"), "age_gap": float(later["age"]) - float(earlier["age"])}  # type: ignore[arg-type]
    for when, scan in (("earlier", earlier), ("later", later)):
        row |= {f"{when}_{field}": scan.get(field) for field in SCAN_FIELDS}
    return row
