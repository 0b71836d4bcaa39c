"""Patient-level train/val/test splits: no patient's images in two splits, so no identity leakage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from medcf.data.cohort import Cohort

DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
SUM_TOLERANCE = 1e-6


def split_by_patient(
    cohort: Cohort, fractions: Mapping[str, float] = DEFAULT_FRACTIONS, *, seed: int = 0
) -> dict[str, Cohort]:
    """Split patients (not images) at random into named parts of about `fractions` of the patients.

    Deterministic in (patients, fractions, seed) whatever the row order. Counts follow the largest-remainder
    rule and every part gets at least one patient. Rows gain a `split` column with the part name.
    """
    _check_fractions(fractions)
    patients = np.array(sorted(cohort.records["patient_id"].unique()), dtype=object)
    if len(patients) < len(fractions):
        raise ValueError(
            f"{cohort.root}: {len(patients)} patient(s) cannot fill {len(fractions)} non-empty splits "
            f"{list(fractions)}; use fewer splits or more patients"
        )
    shuffled = patients[np.random.default_rng(seed).permutation(len(patients))]
    counts = _allocate(list(fractions.values()), len(patients))
    bounds = np.cumsum([0, *counts])
    parts = {}
    for (name, _), start, stop in zip(fractions.items(), bounds[:-1], bounds[1:], strict=True):
        chosen = cohort.records["patient_id"].isin(set(shuffled[start:stop]))
        part = cohort.select(chosen)
        parts[name] = replace(part, records=part.records.assign(split=name))
    return parts


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if not fractions:
        raise ValueError("split fractions are empty; pass e.g. {'train': 0.8, 'val': 0.1, 'test': 0.1}")
    for name, fraction in fractions.items():
        if not 0 < fraction <= 1:
            raise ValueError(f"split '{name}' has fraction {fraction}; use a number in (0, 1] or drop the split")
    total = sum(fractions.values())
    if abs(total - 1) > SUM_TOLERANCE:
        raise ValueError(f"split fractions {dict(fractions)} sum to {total:g}; make them sum to 1")


def _allocate(fractions: list[float], total: int) -> list[int]:
    """Whole patient counts by largest remainder (Hamilton's method), then ≥ 1 per split from the largest."""
    exact = [fraction * total for fraction in fractions]
    counts = [int(share) for share in exact]
    by_remainder = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    for i, count in enumerate(counts):
        if count == 0:
            counts[i] = 1
            counts[counts.index(max(counts))] -= 1
    return counts


# A split column's values (a release's own: MIMIC-CXR's split table, NIH's train_val/test lists; or a user's):
# "train" rows train, the others are held out.
OFFICIAL_SPLITS = ("train", "validate", "val", "valid", "validation", "test")


def train_holdout(cohort: Cohort, holdout_fraction: float, *, seed: int) -> dict[str, Cohort]:
    """{"train", "holdout"} parts of `cohort`: the release's own split when its rows carry one (train = its
    training part, holdout = the rest, `holdout_fraction` unused), else `split_by_patient`. A holdout_fraction
    of 0 keeps every row for training."""
    if holdout_fraction <= 0:
        return {"train": cohort}
    if "split" not in cohort.records:
        return split_by_patient(cohort, {"train": 1 - holdout_fraction, "holdout": holdout_fraction}, seed=seed)
    split = cohort.records["split"]
    if unknown := sorted(set(split.astype(str)) - set(OFFICIAL_SPLITS)):
        raise ValueError(
            f"{cohort.root}: split column holds {unknown[:5]}; a split column says {', '.join(OFFICIAL_SPLITS)} "
            "(or rename the column to use medcf's patient split)"
        )
    train = split == "train"
    if shared := set(cohort.records["patient_id"][train]) & set(cohort.records["patient_id"][~train]):
        raise ValueError(f"{cohort.root}: patient(s) {sorted(shared)[:5]} in both the train and other splits")
    if not train.any():
        raise ValueError(f"{cohort.root}: no row of the official split is 'train'; nothing to train on")
    return {name: cohort.select(rows) for name, rows in (("train", train), ("holdout", ~train)) if rows.any()}
