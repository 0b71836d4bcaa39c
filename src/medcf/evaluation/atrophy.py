"""Brain edits as measurements where the truth is known: held-out cognitively normal patients made older (or
given Alzheimer's disease) by a model, each atrophy measure's change (medcf.metrics.brain) beside the renderer's
true change for the same patients, with bootstrap 95% CIs of the means.

Latent Drifting (Zhang et al.) ages brains with InstructPix2Pix on longitudinal pairs and judges the result by eye;
here the same question gets a number: does the model's "10 years older" enlarge the ventricles, widen the sulci
and darken the cortex as much as ageing does in the cohort's generative model?
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medcf.attribution.effect import bootstrap_interval
from medcf.data.synthetic.factors import AGE_RANGE
from medcf.data.synthetic.kinds import FIRST_UNSEEN, get_kind
from medcf.editing import counterfactual, edit_prompts
from medcf.metrics.brain import MEASURES, atrophy_change
from medcf.models import Components
from medcf.prompts import PromptTemplate


@dataclass(frozen=True)
class AtrophyCases:
    """Unseen cognitively normal patients without a lesion: images, their true edited images, brain masks, rows."""

    images: np.ndarray  # (n, H, W) display units
    truths: np.ndarray  # (n, H, W) the renderer's counterfactual under the edit
    brains: np.ndarray  # (n, H, W) bool
    rows: list[dict[str, object]]


def atrophy_cases(
    n: int, truth_of: Callable[[object], dict[str, object]], *, size: int, years: float = 0.0, seed: int = 0
) -> AtrophyCases:
    """The first `n` unseen CN patients without a lesion, young enough to age `years` within the cohort's range,
    with the renderer's counterfactual under the factor overrides `truth_of(subject)`."""
    kind, images, truths, brains, rows, index = get_kind("brain"), [], [], [], [], FIRST_UNSEEN
    while len(rows) < n:
        subject, index = kind.sample(seed, index), index + 1
        if subject.alzheimers_disease or subject.lesion or subject.age + years > AGE_RANGE[1]:
            continue
        factual = kind.render(subject, size)
        images.append(factual.image)
        truths.append(kind.render(subject, size, **truth_of(subject)).image)
        brains.append(factual.masks["brain"])
        rows.append(kind.row(subject))
    return AtrophyCases(np.stack(images), np.stack(truths), np.stack(brains), rows)


def atrophy_effect(
    components: Components,
    template: PromptTemplate,
    cases: AtrophyCases,
    edits: Sequence[str],
    *,
    per: float = 1.0,
    batch_size: int = 8,
    seed: int = 0,
    **sampler: object,
) -> list[dict[str, object]]:
    """One row per atrophy measure: the model's and the truth's mean change (divided by `per`, e.g. 2 for
    "per decade" of a 20-year edit) with 95% CIs, their ratio and the correlation across patients."""
    edited = []
    for start in range(0, len(cases.rows), batch_size):
        rows = cases.rows[start : start + batch_size]
        sources, targets = edit_prompts(template, rows, list(edits), seed=seed)
        images = torch.from_numpy(cases.images[start : start + batch_size]).float()[:, None] * 2 - 1
        result = counterfactual(components, images, sources, targets,
                                generator=torch.Generator().manual_seed(seed + start), **sampler)  # fmt: skip
        edited.append(((result[:, 0].float().cpu() + 1) / 2).clamp(0, 1).numpy())
    edited = np.concatenate(edited)
    quadruples = zip(cases.images, edited, cases.truths, cases.brains, strict=True)
    changes = [(atrophy_change(image, out, brain), atrophy_change(image, truth, brain))
               for image, out, truth, brain in quadruples]  # fmt: skip
    return [_measure_row(name, changes, per, seed) for name in MEASURES]


def _measure_row(name: str, changes: list[tuple[dict, dict]], per: float, seed: int) -> dict[str, object]:
    model = np.array([model[name] for model, _ in changes]) / per
    truth = np.array([truth[name] for _, truth in changes]) / per
    correlation = float(np.corrcoef(model, truth)[0, 1]) if model.std() > 0 and truth.std() > 0 else float("nan")
    return {
        "measure": name,
        "patients": len(model),
        "model": float(model.mean()),
        "model 95% CI": _interval(model, seed),
        "truth": float(truth.mean()),
        "truth 95% CI": _interval(truth, seed),
        "model / truth": float(model.mean() / truth.mean()) if truth.mean() != 0 else float("nan"),
        "correlation across patients": correlation,
    }


def _interval(values: np.ndarray, seed: int) -> str:
    low, high = bootstrap_interval(values, seed=seed)
    return f"{low:.4g} to {high:.4g}"
