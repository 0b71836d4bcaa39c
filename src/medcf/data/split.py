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
