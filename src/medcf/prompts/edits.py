"""Attribute edits on a clinical row, the "negate the label" counterfactuals of Latent Drifting.

Grammar: `<finding>=present|absent|1|0`, `age=<years>`, `age+=<years>`, `age-=<years>`, `sex=M|F`,
`smoking=never|former|current`, `view=PA|AP|lateral`, `diagnosis=<code>`, or `<column>=<text>` for
another column already in the row. Edits return a new row and never change the one given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .fields import MAX_AGE_YEARS, format_number, parse_age, parse_finding, parse_row, parse_sex, parse_view
from .vocabulary import DEFAULT_VOCABULARY, Vocabulary

_EDIT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\+=|-=|=)\s*(.*?)\s*")
_FINDING_VALUES = {"present": 1, "1": 1, "absent": 0, "0": 0}
_SMOKING = ("never", "former", "current")


def apply_edit(
    row: Mapping[str, object], edit: str, *, vocabulary: Vocabulary = DEFAULT_VOCABULARY
) -> dict[str, object]:
    """A copy of `row` with one edit applied, e.g. "pleural_effusion=absent", "age+=20", "sex=F"."""
    match = _EDIT.fullmatch(edit)
    if match is None:
        raise ValueError(
            f"edit '{edit}' not understood; write field=value, age+=years or age-=years, e.g. pleural_effusion=absent"
        )
    field, operator, text = match.groups()
    edited = dict(row)
    if operator != "=":
        edited["age"] = _shifted_age(edit, field, operator, text, edited.get("age"))
    elif not text:
        raise ValueError(f"edit '{edit}': empty value; give a value after '='")
    elif field in vocabulary.findings:
        _set_finding(edited, edit, field, text, vocabulary)
    else:
        edited[field] = _field_value(edit, field, text, edited, vocabulary)
    try:
        parse_row(edited, vocabulary)  # the edited row must still render
    except ValueError as error:
        raise ValueError(f"edit '{edit}' makes an invalid row: {error}") from None
    return edited


def _shifted_age(edit: str, field: str, operator: str, text: str, age: object) -> float:
    """age+=N / age-=N in years on a row whose age is known."""
    if field != "age":
        raise ValueError(f"edit '{edit}': only age supports += and -=; write {field}=<value>")
    try:
        years = float(text)
    except ValueError:
        raise ValueError(f"edit '{edit}': '{text}' is not a number of years") from None
    current = parse_age(age)
    if current is None:
        raise ValueError(f"edit '{edit}': the row's age is unknown; set it with age=<years>")
    shifted = current + years if operator == "+=" else current - years
    if not 0 <= shifted <= MAX_AGE_YEARS:
        raise ValueError(f"edit '{edit}' gives age {format_number(shifted)}, outside 0–{MAX_AGE_YEARS} years")
    return shifted


def _set_finding(edited: dict[str, object], edit: str, key: str, text: str, vocabulary: Vocabulary) -> None:
    """Set a finding; a present pathology clears normal markers and a present normal marker pathologies."""
    if (value := _FINDING_VALUES.get(text.lower())) is None:
        raise ValueError(f"edit '{edit}': finding value '{text}' not understood; use present, absent, 1 or 0")
    edited[key] = value
    _recode_diagnosis(edited, key, value, vocabulary)
    finding = vocabulary.findings[key]
    if value != 1 or not (finding.pathology or finding.normal):
        return
    # CheXpert's "No Finding" is 1 only when no pathology is present, so the two flip together (a scoped
    # marker, ADNI's CN, only with the pathologies it rules out).
    for other in vocabulary.findings:
        if other != key and vocabulary.contradicts(key, other) and parse_finding(other, edited.get(other)) == 1:
            edited[other] = 0


def _recode_diagnosis(edited: dict[str, object], key: str, value: int | None, vocabulary: Vocabulary) -> None:
    """A diagnosis code (ADNI's "AD") follows an edit of the finding it codes or of one it contradicts: it becomes
    the edited finding's code where there is one (alzheimers_disease=present: "AD"), else it is cleared."""
    coded = vocabulary.diagnoses.get(str(edited.get("diagnosis", "")).strip().upper())
    if coded is None or not (coded == key and value == 0 or value == 1 and vocabulary.contradicts(coded, key)):
        return
    codes = [code for code, finding in vocabulary.diagnoses.items() if finding == key]
    edited["diagnosis"] = codes[0] if value == 1 and codes else ""


def _field_value(edit: str, field: str, text: str, row: dict[str, object], vocabulary: Vocabulary) -> object:
    """Value of a non-finding edit, parsed the way the row parser will read it."""
    if field == "age":
        return parse_age(text)
    if field == "sex":
        return parse_sex(text)
    if field == "smoking":
        if text.lower() not in _SMOKING:
            raise ValueError(f"edit '{edit}': smoking must be never, former or current")
        return text.lower()
    if field == "view":
        return parse_view(text)
    if field == "diagnosis":
        return text
    if field in vocabulary.identity_fields:
        raise ValueError(f"edit '{edit}': '{field}' identifies the image and cannot be edited")
    if field not in row:
        raise ValueError(
            f"edit '{edit}': unknown field '{field}'; use a finding key (e.g. pleural_effusion), "
            "age, sex, smoking, view, diagnosis or a column of this row"
        )
    return text
