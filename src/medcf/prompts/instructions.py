"""Edit instructions: the text of an image pair for InstructPix2Pix (Brooks et al., CVPR 2023), written from the
difference of the two clinical rows — "remove the pleural effusion", "make the patient 20 years older".

Latent Drifting trains InstructPix2Pix on longitudinal pairs with ageing instructions; medcf writes one instruction
for any pair of rows, so counterfactual pairs, repeat visits and a user's pairs all train the same model, and an
edit at inference (`--set pleural_effusion=absent`) becomes the instruction the model was trained with.
"""

from __future__ import annotations

from collections.abc import Mapping

from .fields import ClinicalRow, format_number, parse_row
from .vocabulary import DEFAULT_VOCABULARY, Vocabulary

_SMOKING = {"never": "a never smoker", "former": "a former smoker", "current": "a current smoker"}
_SEX = {"M": "male", "F": "female"}
NO_CHANGE = "keep the image as it is"  # the instruction of a pair whose rows do not differ


def edit_instruction(
    source: Mapping[str, object], target: Mapping[str, object], *, vocabulary: Vocabulary = DEFAULT_VOCABULARY
) -> str:
    """One instruction naming every clinical difference from `source` to `target`, in a fixed order (findings in
    vocabulary order, then age, sex, smoking, view), so one pair always gets the same text."""
    before, after = parse_row(source, vocabulary), parse_row(target, vocabulary)
    parts = _finding_changes(before, after, vocabulary) + _patient_changes(before, after)
    return ", ".join(parts) if parts else NO_CHANGE


def _finding_changes(before: ClinicalRow, after: ClinicalRow, vocabulary: Vocabulary) -> list[str]:
    was, now = dict(before.findings), dict(after.findings)
    changes = []
    for key, finding in vocabulary.findings.items():
        if finding.normal or was.get(key) == now.get(key) or now.get(key) is None:
            continue  # the study-level normal marker follows from the findings; unknown targets say nothing
        changes.append(f"add {finding.paraphrases[0]}" if now[key] == 1 else f"remove the {finding.phrase}")
    return changes


def _patient_changes(before: ClinicalRow, after: ClinicalRow) -> list[str]:
    changes = []
    if before.age is not None and after.age is not None and after.age != before.age:
        years = format_number(abs(after.age - before.age))
        changes.append(f"make the patient {years} years {'older' if after.age > before.age else 'younger'}")
    if after.sex is not None and after.sex != before.sex:
        changes.append(f"make the patient {_SEX[after.sex]}")
    if after.smoking is not None and after.smoking != before.smoking:
        changes.append(f"make the patient {_SMOKING[after.smoking]}")
    if after.view is not None and after.view != before.view:
        changes.append(f"show a {after.view} view")
    return changes
