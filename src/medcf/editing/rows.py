"""Attribute edits on the clinical row → the source and target prompts of a counterfactual.

An edit names the change ("pleural_effusion=absent", "age+=20", "sex=F", "smoking=current"); the prompts
come from the model's own `PromptTemplate`, so the two differ in the edited field and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medcf.prompts import DEFAULT_VOCABULARY, PromptTemplate, Vocabulary, apply_edit
from medcf.prompts.fields import parse_finding
from medcf.prompts.instructions import edit_instruction


def counterfactual_rows(
    row: Mapping[str, object], edits: Sequence[str], *, vocabulary: Vocabulary = DEFAULT_VOCABULARY
) -> tuple[dict[str, object], dict[str, object]]:
    """(source row, target row) for edits applied in order.

    A finding the row does not mention is taken to be the opposite of what the edit sets: asking for
    "pneumonia=absent" says the image shows pneumonia. Other fields must already be known where an edit
    needs them (age+=20 needs an age).
    """
    if not edits:
        raise ValueError("no edit given; pass at least one, e.g. pleural_effusion=absent or age+=20")
    source, target = dict(row), dict(row)
    for edit in edits:
        target = apply_edit(target, edit, vocabulary=vocabulary)
        for key in vocabulary.findings:
            set_by_edit = parse_finding(key, target.get(key))
            if set_by_edit is not None and parse_finding(key, source.get(key)) is None:
                source = apply_edit(source, f"{key}={1 - set_by_edit}", vocabulary=vocabulary)
    return source, target


def edit_prompts(
    template: PromptTemplate, rows: Sequence[Mapping[str, object]], edits: Sequence[str], *, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Source and target prompts for each row, rendered with `template.for_editing()`."""
    template = template.for_editing()
    pairs = [counterfactual_rows(row, edits, vocabulary=template.vocabulary) for row in rows]
    return [template.render(s, seed=seed) for s, _ in pairs], [template.render(t, seed=seed) for _, t in pairs]


def healthy_prompts(
    template: PromptTemplate, rows: Sequence[Mapping[str, object]], *, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Source prompts and the healthy-counterpart prompts of visual attribution (Siddiqui et al. 2025)."""
    template = template.for_editing()
    return [template.render(row, seed=seed) for row in rows], [template.healthy(row, seed=seed) for row in rows]


def edit_instructions(rows: Sequence[Mapping[str, object]], edits: Sequence[str], *,
                      vocabulary: Vocabulary = DEFAULT_VOCABULARY) -> list[str]:  # fmt: skip
    """The instruct engine's text for each row: the instruction from the source to the edited row."""
    pairs = [counterfactual_rows(row, edits, vocabulary=vocabulary) for row in rows]
    return [edit_instruction(source, target, vocabulary=vocabulary) for source, target in pairs]


def healthy_instructions(rows: Sequence[Mapping[str, object]], *,
                         vocabulary: Vocabulary = DEFAULT_VOCABULARY) -> list[str]:  # fmt: skip
    """The instruct engine's healthy-counterpart text: remove every finding the row has ("remove the nodule")."""
    return [edit_instruction(row, healthy_row(row, vocabulary=vocabulary), vocabulary=vocabulary) for row in rows]


def healthy_row(row: Mapping[str, object], *, vocabulary: Vocabulary = DEFAULT_VOCABULARY) -> dict[str, object]:
    """The row with every present pathology absent and no diagnosis code: the healthy counterpart's row."""
    healthy = {key: value for key, value in row.items() if key != "diagnosis"}
    coded = vocabulary.diagnoses.get(str(row.get("diagnosis", "")).strip().upper())  # e.g. ADNI's "AD"
    for key, finding in vocabulary.findings.items():
        present = parse_finding(key, row.get(key)) == 1 or key == coded
        if finding.pathology and not finding.normal and present:
            healthy = apply_edit(healthy, f"{key}=absent", vocabulary=vocabulary)
    return healthy
