"""Attribution against ground truth on the semi-synthetic cohorts, where the true counterfactual exists.

Cases are unseen patients (cohort indices from FIRST_UNSEEN on, beyond any written dataset) that have the
finding; the truth is the effect mask of removing it (|x − x_healthy| > threshold ∪ the finding's mask).
Each method's maps are scored by pixel AUROC, NCC and Dice after Otsu (VA-GAN, CVPR 2018; Wolleb et al.,
MICCAI 2022), the healthy-counterpart method beside the two classifier baselines, all on the same images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from medcf.attribution.difference import counterpart_attribution
from medcf.attribution.gradients import at_classifier_size, grad_cam, gradient_saliency
from medcf.classifier import ImageClassifier
from medcf.data.synthetic import effect_mask
from medcf.data.synthetic.kinds import FIRST_UNSEEN, get_kind
from medcf.editing import edit_prompts, healthy_prompts
from medcf.metrics import dice_otsu, normalized_cross_correlation, pixel_auroc
from medcf.models import Components
from medcf.prompts import PromptTemplate


@dataclass(frozen=True)
class FindingCases:
    """Images with a finding (N, 1, R, R) in [-1, 1], their true healthy versions and effect masks (N, 1, R, R)."""

    finding: str
    images: torch.Tensor
    healthy: torch.Tensor
    masks: torch.Tensor
    rows: list[dict[str, object]]


def finding_cases(finding: str, *, n: int, size: int, kind: str = "cxr", seed: int = 0) -> FindingCases:
    """The first `n` unseen subjects of the cohort `seed` that have `finding` and in whom it shows at `size`
    (a few-pixel nodule can vanish below the effect threshold at 32 px: nothing there to localise)."""
    cohort = get_kind(kind)
    if finding not in {factor.name for factor in cohort.factors if factor.levels == (0, 1)}:
        raise ValueError(f"finding {finding!r} is not a binary factor of the {kind} cohort")
    factual, healthy, masks, rows, index = [], [], [], [], FIRST_UNSEEN
    while len(rows) < n:
        subject, index = cohort.sample(seed, index), index + 1
        if getattr(subject, finding) != 1:
            continue
        image, counterpart = cohort.render(subject, size), cohort.render(subject, size, **{finding: 0})
        mask = effect_mask(image, counterpart, finding)
        if not mask.any() or mask.all():
            continue
        factual.append(image.image)
        healthy.append(counterpart.image)
        masks.append(mask)
        rows.append(cohort.row(subject))

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays).astype(np.float32))[:, None]

    return FindingCases(finding, stack(factual) * 2 - 1, stack(healthy) * 2 - 1, stack(masks), rows)


def score_maps(maps: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Pixel AUROC, NCC and Dice after Otsu of |maps| against the masks."""
    return {
        "auroc": pixel_auroc(maps, masks),
        "ncc": normalized_cross_correlation(maps, masks),
        "dice": dice_otsu(maps, masks),
    }


def compare_methods(
    components: Components,
    template: PromptTemplate,
    cases: FindingCases,
    *,
    classifier: ImageClassifier | None = None,
    batch_size: int = 16,
    counterparts: list[torch.Tensor] | None = None,
    per_finding: bool = False,
    **counterpart_options: object,
) -> list[dict[str, object]]:
    """One row per method: the true counterpart (the ceiling), healthy counterparts from the model, and the
    classifier's gradient saliency and Grad-CAM for the finding; with the seconds each took.

    per_finding: the model's counterpart removes the scored finding only (`medcf attribute --finding`), as the
    true counterpart does, instead of every finding of the patient.

    `counterparts`, when given, receives the model's healthy counterparts batch by batch, so
    soundness metrics can score the very draws the maps came from (the first seed's, (B, C, H, W)).
    """
    methods: dict[str, Callable[[slice], torch.Tensor]] = {"true counterpart": lambda s: _truth(cases, s)}

    def counterpart(part: slice) -> torch.Tensor:
        rows = cases.rows[part]
        edit = [f"{cases.finding}=absent"]
        source, healthy = edit_prompts(template, rows, edit) if per_finding else healthy_prompts(template, rows)
        result = counterpart_attribution(components, cases.images[part], source, healthy, **counterpart_options)
        if counterparts is not None:
            counterparts.append(result.counterparts)
        return result.maps

    methods["healthy counterpart (medcf)"] = counterpart
    if classifier is not None:
        label = classifier.label_names.index(cases.finding)
        methods["gradient saliency"] = lambda s: at_classifier_size(
            gradient_saliency, classifier, cases.images[s], label
        )
        methods["Grad-CAM"] = lambda s: at_classifier_size(grad_cam, classifier, cases.images[s], label)
    rows = []
    for name, method in methods.items():
        start = time.perf_counter()
        parts = [slice(i, i + batch_size) for i in range(0, len(cases.rows), batch_size)]
        maps = torch.cat([method(part) for part in parts])
        rows.append({"method": name, **score_maps(maps, cases.masks), "seconds": time.perf_counter() - start})
    return rows


def _truth(cases: FindingCases, part: slice) -> torch.Tensor:
    return (cases.images[part] - cases.healthy[part]) / 2
