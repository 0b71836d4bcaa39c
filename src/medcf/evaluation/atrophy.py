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
from medcf.data.synthetic.factors import AGE_RANGE, EFFECT_THRESHOLD
from medcf.data.synthetic.kinds import FIRST_UNSEEN, get_kind
from medcf.editing import counterfactual, edit_prompts, paraphrase_prompts
from medcf.editing.rows import edit_instructions
from medcf.metrics.brain import MEASURES, atrophy_change
from medcf.models import Components
from medcf.prompts import PromptTemplate

# name: (edits, the renderer's overrides that are their truth, years the cohort must allow, AD status of the
# patients, divisor of the change: 2 turns a 20-year change into one per decade)
BRAIN_EDITS: dict[str, tuple[tuple[str, ...], Callable[[object], dict[str, object]], float, int, float]] = {
    "Alzheimer's disease added": (("alzheimers_disease=present",), lambda s: {"alzheimers_disease": 1}, 0, 0, 1.0),
    "Alzheimer's disease removed": (("alzheimers_disease=absent",), lambda s: {"alzheimers_disease": 0}, 0, 1, 1.0),
    "20 years older": (("age+=20",), lambda subject: {"age": subject.age + 20}, 20, 0, 2.0),
}


@dataclass(frozen=True)
class AtrophyCases:
    """Unseen patients without a lesion: images, their true edited images, brain masks, clinical rows."""

    images: np.ndarray  # (n, H, W) display units
    truths: np.ndarray  # (n, H, W) the renderer's counterfactual under the edit
    brains: np.ndarray  # (n, H, W) bool
    rows: list[dict[str, object]]


def atrophy_cases(
    n: int,
    truth_of: Callable[[object], dict[str, object]],
    *,
    size: int,
    years: float = 0.0,
    alzheimers: int = 0,
    seed: int = 0,
) -> AtrophyCases:
    """The first `n` unseen patients without a lesion, cognitively normal (or with AD: `alzheimers=1`) and young
    enough to age `years` within the cohort's range, with the renderer's counterfactual under the factor overrides
    `truth_of(subject)`."""
    kind, images, truths, brains, rows, index = get_kind("brain"), [], [], [], [], FIRST_UNSEEN
    while len(rows) < n:
        subject, index = kind.sample(seed, index), index + 1
        if subject.alzheimers_disease != alzheimers or subject.lesion or subject.age + years > AGE_RANGE[1]:
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
    edited = edit_cases(components, template, cases, edits, batch_size=batch_size, seed=seed, **sampler)
    return atrophy_rows(cases, edited, per=per, seed=seed)


def edit_cases(
    components: Components,
    template: PromptTemplate,
    cases: AtrophyCases,
    edits: Sequence[str],
    *,
    engine: str = "inversion",
    batch_size: int = 8,
    seed: int = 0,
    **sampler: object,
) -> np.ndarray:
    """The cases' images (n, H, W) edited by `engine` under `edits`: prompts rendered from each row and its
    edited row, pix2pix-zero's direction from their paraphrase sets, the instruct engine's instruction."""
    edited = []
    for start in range(0, len(cases.rows), batch_size):
        rows = cases.rows[start : start + batch_size]
        sources, targets = edit_prompts(template, rows, list(edits), seed=seed)
        options = dict(sampler)
        if engine == "instruct":
            targets = edit_instructions(rows, list(edits), vocabulary=template.vocabulary)
        elif engine == "pix2pix-zero":
            options["direction_prompts"] = paraphrase_prompts(template, rows, list(edits))
        images = torch.from_numpy(cases.images[start : start + batch_size]).float()[:, None] * 2 - 1
        result = counterfactual(components, images, sources, targets, engine=engine,
                                generator=torch.Generator().manual_seed(seed + start), **options)  # fmt: skip
        edited.append(((result[:, 0].float().cpu() + 1) / 2).clamp(0, 1).numpy())
    return np.concatenate(edited)


def atrophy_rows(cases: AtrophyCases, edited: np.ndarray, *, per: float = 1.0, seed: int = 0) -> list[dict]:
    """Each atrophy measure's change on the edits beside the truth's (atrophy_effect's rows)."""
    quadruples = zip(cases.images, edited, cases.truths, cases.brains, strict=True)
    changes = [(atrophy_change(image, out, brain), atrophy_change(image, truth, brain))
               for image, out, truth, brain in quadruples]  # fmt: skip
    return [_measure_row(name, changes, per, seed) for name in MEASURES]


def truth_agreement(cases: AtrophyCases, edited: np.ndarray, *, seed: int = 0) -> dict[str, object]:
    """change_agreement of brain edits (display units; the effect region within the brain)."""
    return change_agreement(cases.images, cases.truths, cases.brains, edited, threshold=EFFECT_THRESHOLD, seed=seed)


def change_agreement(
    images: np.ndarray, truths: np.ndarray, anatomy: np.ndarray, edited: np.ndarray, *, threshold: float, seed: int = 0
) -> dict[str, object]:
    """Where and how an edit changed each image (or volume) against the true counterfactual's change: mean |change|
    inside and outside the true effect region (|true change| > threshold, within `anatomy`), the Pearson
    correlation of the edit's signed change with the true change over each image's pixels, and the error
    |edit − truth| beside the untouched image's |image − truth|."""
    change, true = edited - images, truths - images
    regions = (np.abs(true) > threshold) & anatomy
    inside = np.array([np.abs(c[r]).mean() if r.any() else np.nan for c, r in zip(change, regions, strict=True)])
    outside = np.array([np.abs(c[~r]).mean() for c, r in zip(change, regions, strict=True)])
    r = np.array([_correlation(c.ravel(), t.ravel()) for c, t in zip(change, true, strict=True)])
    r = r[np.isfinite(r)]  # an image left unchanged correlates with nothing
    return {
        "patients": len(edited),
        "inside": float(np.nanmean(inside)),
        "outside": float(outside.mean()),
        "correlation with true change": float(r.mean()) if len(r) else float("nan"),
        "correlation 95% CI": confidence_interval(r, seed) if len(r) else "n/a",
        "error": float(np.abs(edited - truths).mean()),
        "error of the unedited image": float(np.abs(true).mean()),
    }


def _measure_row(name: str, changes: list[tuple[dict, dict]], per: float, seed: int) -> dict[str, object]:
    model = np.array([model[name] for model, _ in changes]) / per
    truth = np.array([truth[name] for _, truth in changes]) / per
    correlation = _correlation(model, truth)
    return {
        "measure": name,
        "patients": len(model),
        "model": float(model.mean()),
        "model 95% CI": confidence_interval(model, seed),
        "truth": float(truth.mean()),
        "truth 95% CI": confidence_interval(truth, seed),
        "model / truth": float(model.mean() / truth.mean()) if truth.mean() != 0 else float("nan"),
        "correlation across patients": correlation,
    }


def _correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Pearson's r; NaN where either side is constant (no change to correlate with)."""
    return float(np.corrcoef(first, second)[0, 1]) if first.std() > 0 and second.std() > 0 else float("nan")


def confidence_interval(values: np.ndarray, seed: int) -> str:
    """The bootstrap 95% CI of the mean, as text."""
    low, high = bootstrap_interval(values, seed=seed)
    return f"{low:.4g} to {high:.4g}"
