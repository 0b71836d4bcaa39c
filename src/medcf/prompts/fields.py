"""Field formatters for the canonical clinical row: missing values, age, sex, smoking, view, findings.

Missing means unknown and is skipped, as DGM-VLC's tabular→text skips NaN cells (arXiv 2410.13823,
generate_prompts.ipynb): None, NaN (float or numpy), pandas.NA / NaT and blank strings all count.
Every other value must parse exactly; nothing is guessed (STYLE.md rule 8).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .vocabulary import Vocabulary

CANONICAL_FIELDS = ("age", "sex", "smoking", "view", "diagnosis")
MAX_AGE_YEARS = 130  # oldest verified human ≈ 122 y; larger values are months/days or typos
SEX_WORDS = {"M": "male", "F": "female"}
# First wording is the canonical one ("simple"/"table"); the rest are paraphrases for "diverse".
# yes/no flags say smoker or not without timing, so they never become "current"/"never" (no guessing).
SMOKING_WORDS = {
    "never": ("never smoker", "lifelong non-smoker"),
    "former": ("former smoker", "ex-smoker"),
    "current": ("current smoker", "active smoker"),
    "yes": ("smoker",),
    "no": ("non-smoker", "nonsmoker"),
}
_SEX = {"m": "M", "male": "M", "f": "F", "female": "F"}
_SMOKING = {
    "never": "never",
    "former": "former",
    "current": "current",
    "yes": "yes",
    "true": "yes",
    "1": "yes",
    "1.0": "yes",
    "no": "no",
    "false": "no",
    "0": "no",
    "0.0": "no",
}
# DICOM ViewPosition (PS3.3 C.8.11.5.1.1) writes laterals as LL / RL.
_VIEW = {"pa": "PA", "ap": "AP", "lateral": "lateral", "ll": "lateral", "rl": "lateral"}
_PRESENT = {"1", "1.0", "true", "yes", "present", "positive"}
_ABSENT = {"0", "0.0", "false", "no", "absent", "negative"}


def is_missing(value: object) -> bool:
    """True for None, NaN, pandas.NA/NaT and blank strings: all mean "unknown"."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(value != value)  # NaN is the only value unequal to itself; works without numpy
    except TypeError:  # pandas.NA: comparisons return NA, whose truth value raises
        return True


def format_number(value: float, *, decimals: int | None = None) -> str:
    """63.0 → "63"; other floats keep their digits (or `decimals` of them)."""
    number = float(value) if decimals is None else round(float(value), decimals)
    return str(int(number)) if number.is_integer() else repr(number)


def format_age(age: float) -> str:
    """Years with one decimal ("63", "80.5"); two below one year, so infants do not read as 0."""
    return format_number(age, decimals=1 if age >= 1 else 2)


def format_value(value: object) -> str:
    """Text of an "other field" value: numbers without a spurious ".0", booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Real):
        return format_number(value)
    return str(value).strip()


def humanize(field: str) -> str:
    """Column name as words: "pack_years" → "pack years"."""
    return " ".join(field.replace("_", " ").split())


def parse_age(value: object) -> float | None:
    """Age in years, or None when missing."""
    if is_missing(value):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        age = float(value) if isinstance(value, numbers.Real) else float(str(value).strip())
    except ValueError:
        raise ValueError(f"age value '{value}' is not a number; give the age in years, e.g. 63") from None
    if not (math.isfinite(age) and 0 <= age <= MAX_AGE_YEARS):
        raise ValueError(f"age value '{value}' is outside 0–{MAX_AGE_YEARS} years; give the age in years")
    return age


def parse_sex(value: object) -> str | None:
    """Sex as "M" or "F" (from M/F/male/female in any case), or None when missing."""
    if is_missing(value):
        return None
    if (sex := _SEX.get(str(value).strip().lower())) is None:
        raise ValueError(f"sex value '{value}' not understood; use M or F")
    return sex


def parse_smoking(value: object) -> str | None:
    """never/former/current, or yes/no for a bare smoker flag (yes/no, true/false, 1/0), or None."""
    if is_missing(value):
        return None
    text = str(value).strip().lower()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        text = format_number(value)
    if (smoking := _SMOKING.get(text)) is None:
        raise ValueError(f"smoking value '{value}' not understood; use never, former or current (or yes/no)")
    return smoking


def parse_view(value: object) -> str | None:
    """PA, AP or lateral (DICOM LL/RL accepted), or None when missing."""
    if is_missing(value):
        return None
    if (view := _VIEW.get(str(value).strip().lower())) is None:
        raise ValueError(f"view value '{value}' not understood; use PA, AP or lateral")
    return view


def parse_finding(key: str, value: object) -> int | None:
    """1 (present), 0 (absent) or None (not mentioned)."""
    if is_missing(value):
        return None
    text = format_value(value).lower()
    if text in _PRESENT:
        return 1
    if text in _ABSENT:
        return 0
    hint = "; map CheXpert uncertain labels (-1) to 1, 0 or empty first" if text == "-1" else ""
    raise ValueError(
        f"finding column '{key}' value '{value}' not understood; use 1 (present), 0 (absent) or empty{hint}"
    )


@dataclass(frozen=True)
class ClinicalRow:
    """A parsed row: canonical fields, finding states in vocabulary order, other fields as text."""

    age: float | None = None
    sex: str | None = None
    smoking: str | None = None
    view: str | None = None
    diagnosis: str | None = None  # only codes the vocabulary does not map to a finding
    findings: tuple[tuple[str, int | None], ...] = ()
    other: tuple[tuple[str, str], ...] = ()

    def healthy(self) -> ClinicalRow:
        """The same patient with every mentioned finding absent and no free-text diagnosis."""
        return replace(self, diagnosis=None, findings=tuple((key, 0) for key, _ in self.findings))


def parse_row(row: Mapping[str, object], vocabulary: Vocabulary) -> ClinicalRow:
    """Parse a dict or pandas row into a ClinicalRow; identity columns are dropped."""
    values = dict(row)  # a pandas Series converts through keys()/__getitem__ like a Mapping
    findings = {key: parse_finding(key, values[key]) for key in vocabulary.findings if key in values}
    diagnosis = None if is_missing(values.get("diagnosis")) else format_value(values["diagnosis"])
    if diagnosis is not None and (key := vocabulary.diagnoses.get(diagnosis.upper())) is not None:
        if findings.get(key) == 0:
            raise ValueError(f"diagnosis '{diagnosis}' means {key}=1 but the row has {key}=0; fix one of them")
        findings[key], diagnosis = 1, None
    _check_normal_consistency(findings, vocabulary)
    skipped = set(CANONICAL_FIELDS) | set(vocabulary.findings) | vocabulary.identity_fields
    return ClinicalRow(
        age=parse_age(values.get("age")),
        sex=parse_sex(values.get("sex")),
        smoking=parse_smoking(values.get("smoking")),
        view=parse_view(values.get("view")),
        diagnosis=diagnosis,
        findings=tuple((key, findings[key]) for key in vocabulary.findings if key in findings),
        other=tuple(
            (str(name), format_value(value))
            for name, value in values.items()
            if name not in skipped and not is_missing(value)
        ),
    )


def _check_normal_consistency(findings: dict[str, int | None], vocabulary: Vocabulary) -> None:
    """A normal marker (CheXpert "No Finding", a CN diagnosis) cannot come with a pathology it rules out."""
    present = [key for key, value in findings.items() if value == 1]
    for normal in (key for key in present if vocabulary.findings[key].normal):
        if disease := [key for key in present if vocabulary.contradicts(normal, key)]:
            raise ValueError(
                f"row marks {normal}=1 (normal) and {disease[0]}=1, which {normal} rules out; "
                "fix one of them (diagnosis codes count as their finding)"
            )
