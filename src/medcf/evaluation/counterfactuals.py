"""Counterfactual soundness of a model's edits on held-out real images (Monteiro et al., ICLR 2023).

Effectiveness: a classifier trained on real images agrees that a removed finding is gone and an added one is
there. Reversibility: removing a finding and adding it back returns the image (L1, 0–255 units).
Composition: the null edit (target prompt = source prompt) repeated 1, 2 and 10 times drifts this far.
Minimality needs the true effect of an edit, so it is scored on the semi-synthetic cases (attribution.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from medcf.classifier import ImageClassifier, classify, resize_for_classifier
from medcf.editing import counterfactual, edit_prompts
from medcf.metrics.soundness import composition, effectiveness, reversibility
from medcf.models import Components
from medcf.prompts import PromptTemplate
from medcf.prompts.fields import parse_finding


def finding_edits(
    components: Components,
    template: PromptTemplate,
    classifier: ImageClassifier,
    images: torch.Tensor,
    rows: Sequence[Mapping[str, object]],
    finding: str,
    *,
    n: int = 16,
    **edit_options: object,
) -> dict[str, object]:
    """Remove `finding` from up to n images that show it and add it back (effectiveness both ways and
    reversibility); add it to up to n images without it (effectiveness)."""
    present = [i for i, row in enumerate(rows) if parse_finding(finding, row.get(finding)) == 1][:n]
    absent = [i for i, row in enumerate(rows) if parse_finding(finding, row.get(finding)) == 0][:n]
    result: dict[str, object] = {"finding": finding, "n_removed": len(present), "n_added": len(absent)}
    if present:
        chosen = [rows[i] for i in present]
        with_it, without_it = edit_prompts(template, chosen, [f"{finding}=absent"])
        removed = None  # the forward edit is kept: the same draws are scored for removal effectiveness

        def remove(x: torch.Tensor) -> torch.Tensor:
            nonlocal removed
            removed = counterfactual(components, x, with_it, without_it, **edit_options)
            return removed

        result["reversibility_l1"] = reversibility(
            remove, lambda x: counterfactual(components, x, without_it, with_it, **edit_options), images[present]
        )
        result["removal_effectiveness"] = classifier_agreement(classifier, removed, finding, 0.0)
    if absent:
        chosen = [rows[i] for i in absent]
        without_it, with_it = edit_prompts(template, chosen, [f"{finding}=present"])
        added = counterfactual(components, images[absent], without_it, with_it, **edit_options)
        result["addition_effectiveness"] = classifier_agreement(classifier, added, finding, 1.0)
    return result


def null_edit_composition(
    components: Components,
    template: PromptTemplate,
    images: torch.Tensor,
    rows: Sequence[Mapping[str, object]],
    *,
    repeats: Sequence[int] = (1, 2, 10),
    **edit_options: object,
) -> dict[int, float]:
    """L1 (0–255) after the null edit (source prompt = target prompt) applied k times, for k in `repeats`."""
    prompts = _own_prompts(template, rows)
    return composition(lambda x: counterfactual(components, x, prompts, prompts, **edit_options), images, repeats)


def _own_prompts(template: PromptTemplate, rows: Sequence[Mapping[str, object]]) -> list[str]:
    editing = template.for_editing()
    return [editing.render(row) for row in rows]


def classifier_agreement(
    classifier: ImageClassifier, images: torch.Tensor, finding: str, target: float
) -> float | None:
    """Fraction of images the classifier scores as `target` for the finding (None: the classifier lacks it)."""
    if finding not in classifier.label_names:
        return None
    probabilities = classify(classifier, resize_for_classifier(classifier, images))
    targets = torch.full(probabilities.shape, float("nan"), dtype=torch.float64)
    targets[:, classifier.label_names.index(finding)] = target
    return effectiveness(probabilities, targets, classifier.label_names)["mean_accuracy"]
