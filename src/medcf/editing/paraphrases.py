"""Paraphrase sets of an edit's source and target rows: the sentence groups of pix2pix-zero's edit direction.

Parmar et al. (SIGGRAPH 2023, §3.2) average the text embeddings of many sentences about the source and about
the target, so that the direction Δc holds what the two groups differ in, not one sentence's wording. Here the
sentences are the "diverse" wordings of the clinical rows themselves (`PromptTemplate`, one per seed): the same
patient and findings, paraphrased, with the edited field the only systematic difference between the groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medcf.editing.rows import counterfactual_rows
from medcf.prompts import PromptTemplate

PARAPHRASES = 16  # sentences per group; the diverse style draws its wording from a few dozen combinations

PromptSets = tuple[list[list[str]], list[list[str]]]  # (per image: source sentences, per image: target sentences)


def paraphrase_prompts(
    template: PromptTemplate,
    rows: Sequence[Mapping[str, object]],
    edits: Sequence[str],
    *,
    count: int = PARAPHRASES,
) -> PromptSets:
    """For each row, `count` diverse wordings of its source row and of its edited row (seeds 0…count−1)."""
    diverse = _diverse(template, count)
    pairs = [counterfactual_rows(row, edits, vocabulary=diverse.vocabulary) for row in rows]
    return (
        [[diverse.render(source, seed=seed) for seed in range(count)] for source, _ in pairs],
        [[diverse.render(target, seed=seed) for seed in range(count)] for _, target in pairs],
    )


def healthy_paraphrases(
    template: PromptTemplate, rows: Sequence[Mapping[str, object]], *, count: int = PARAPHRASES
) -> PromptSets:
    """For each row, `count` diverse wordings of it and of its healthy counterpart (visual attribution)."""
    diverse = _diverse(template, count)
    return (
        [[diverse.render(row, seed=seed) for seed in range(count)] for row in rows],
        [[diverse.healthy(row, seed=seed) for seed in range(count)] for row in rows],
    )


def _diverse(template: PromptTemplate, count: int) -> PromptTemplate:
    if count < 1:
        raise ValueError(f"count={count}: give at least one paraphrase per row (pix2pix-zero uses many, e.g. 16)")
    return PromptTemplate(
        template.modality, style="diverse", patient_info=template.patient_info, vocabulary=template.vocabulary
    )
