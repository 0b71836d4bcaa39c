"""Canonical clinical fields of brain MRI cohorts: diagnosis codes and Clinical Dementia Ratings → CN / MCI / AD.

ADNI codes (DX, DX_bl, the IDA Group): SMC ("significant memory concern") participants test cognitively
normal by ADNI2 criteria; EMCI / LMCI are MCI stages. Older ADNIMERGE releases write the diagnosis of a visit
where a conversion was recorded as a transition ("NL to MCI", "MCI to Dementia", "Dementia to MCI", "MCI to NL");
the participant's state at that visit is the later one, after "to".

OASIS rates dementia with the Clinical Dementia Rating (Morris, Neurology 1993) and diagnosed every CDR > 0
participant with very mild to moderate Alzheimer's disease (Marcus et al., J. Cogn. Neurosci. 2007), so CDR 0 →
CN and CDR 0.5 / 1 / 2 / 3 → AD, with the stage kept as `dementia_severity`. OASIS has no MCI group.

A missing value stays unknown: no diagnosis, no finding flags, so a prompt never says "No Alzheimer's disease"
for a blank CDR. Missing is tested with `is_missing` (pandas 3 turns None into NaN inside text columns).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from medcf.data.table import parse_column
from medcf.prompts import is_missing
from medcf.prompts.fields import format_number, parse_age, parse_sex

DIAGNOSES = {"CN": "CN", "NL": "CN", "SMC": "CN", "MCI": "MCI", "EMCI": "MCI", "LMCI": "MCI"}
DIAGNOSES |= {"AD": "AD", "DEMENTIA": "AD"}
CDR_STAGES = {0.0: None, 0.5: "very mild", 1.0: "mild", 2.0: "moderate", 3.0: "severe"}
FLAGS = ("alzheimers_disease", "mild_cognitive_impairment")  # 0/1 finding columns, Int64 with <NA> when unknown


def parse_diagnosis(value: object) -> str | None:
    """CN / MCI / AD from an ADNI diagnosis code (a transition gives its later state), or None when missing."""
    if is_missing(value):
        return None
    code = str(value).strip().upper().rsplit(" TO ", 1)[-1].strip()
    if code not in DIAGNOSES:
        raise ValueError(f"diagnosis '{value}' unknown; use one of {', '.join(DIAGNOSES)} (or 'X to Y')")
    return DIAGNOSES[code]


def parse_cdr(value: object) -> float | None:
    """A Clinical Dementia Rating (0, 0.5, 1, 2, 3), or None when missing."""
    if is_missing(value):
        return None
    try:
        stage = float(str(value).strip())
    except ValueError:
        stage = -1.0
    if stage not in CDR_STAGES:
        stages = ", ".join(format_number(stage) for stage in CDR_STAGES)
        raise ValueError(f"CDR '{value}' is not a Clinical Dementia Rating; use one of {stages}")
    return stage


def cdr_diagnosis(stage: float | None) -> str | None:
    """OASIS's reading of a CDR: 0 → CN, above 0 → AD (module docstring)."""
    return None if stage is None else "CN" if stage == 0 else "AD"


def diagnosis_columns(diagnoses: Sequence[str | None]) -> dict[str, list[object]]:
    """The diagnosis column and its finding flags; unknown diagnoses leave the flags unknown."""
    return {
        "diagnosis": list(diagnoses),
        "alzheimers_disease": [None if code is None else int(code == "AD") for code in diagnoses],
        "mild_cognitive_impairment": [None if code is None else int(code == "MCI") for code in diagnoses],
    }


def cdr_columns(stages: Sequence[float | None]) -> dict[str, list[object]]:
    """Diagnosis, finding flags and dementia_severity from CDR stages (OASIS)."""
    columns = diagnosis_columns([cdr_diagnosis(stage) for stage in stages])
    columns["dementia_severity"] = [None if stage is None else CDR_STAGES[stage] for stage in stages]
    return columns


def clinical_fields(
    table: pd.DataFrame,
    source: Path,
    *,
    age: str | None = None,
    sex: str | None = None,
    cdr: str | None = None,
    diagnosis: str | None = None,
    parse_sex_value: Callable[[object], str | None] = parse_sex,
) -> pd.DataFrame:
    """Canonical age, sex, diagnosis, flags (and dementia_severity from a CDR column) of each table row.

    Column arguments name the table's columns; a bad value raises naming the file, line and column. A
    diagnosis column wins over the CDR for the diagnosis; the CDR still gives the dementia stage.
    """
    fields = pd.DataFrame(index=table.index)
    if age:
        fields["age"] = parse_column(table, age, parse_age, source=source).astype("Float64")
    if sex:
        fields["sex"] = parse_column(table, sex, parse_sex_value, source=source)
    columns: dict[str, list[object]] = {}
    if cdr:
        columns = cdr_columns(list(parse_column(table, cdr, parse_cdr, source=source)))
    if diagnosis:
        columns |= diagnosis_columns(list(parse_column(table, diagnosis, parse_diagnosis, source=source)))
    for name in ("diagnosis", *FLAGS, "dementia_severity"):
        if name in columns:
            fields[name] = pd.Series(columns[name], index=table.index, dtype=object)
    return fields
