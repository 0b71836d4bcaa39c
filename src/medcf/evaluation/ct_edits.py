"""Chest CT edits as measurements where the truth is known: unseen semi-synthetic patients edited by a 3-D model
(diffusion: DDIM inversion; GAN: inversion of z), each edit read against the renderer's counterfactual volume of
the same patient, in Hounsfield units.

DGM-VLC (Xing et al. 2024) reports that smoking shifts lung attenuation; here a model's "this patient as a never
smoker" is held to the renderer's own shift in the same lungs, voxel by voxel, and a nodule's removal to the true
nodule mask (attribution AUROC of |change|).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from medcf.data.synthetic.ct import CT_EFFECT_THRESHOLD_HU
from medcf.data.synthetic.kinds import FIRST_UNSEEN, get_kind
from medcf.data.volume import from_unit_range, to_unit_range
from medcf.editing import edit_prompts
from medcf.editing.gan_counterfactual import gan_counterfactual
from medcf.evaluation.atrophy import change_agreement, confidence_interval
from medcf.metrics.attribution import pixel_auroc
from medcf.models import Components, GanComponents
from medcf.prompts import PromptTemplate
from medcf.volumes.counterfactual import counterfactual_volumes

# name: (the edit of the clinical row, which unseen patients it applies to, the renderer's overrides for the truth)
CT_EDITS: dict[str, tuple[str, Callable[[object], bool], dict[str, object]]] = {
    "smoking removed (current → never)": ("smoking=never", lambda s: s.smoking == "current", {"smoking": "never"}),
    "nodule removed": ("nodule=0", lambda s: s.nodule == 1, {"nodule": 0}),
}


@dataclass(frozen=True)
class CtCases:
    """Unseen patients: volumes and their true counterfactuals (n, X, Y, Z) in HU, lung masks, clinical rows."""

    volumes: np.ndarray
    truths: np.ndarray
    lungs: np.ndarray  # (n, X, Y, Z) bool, the renderer's lung label map
    rows: list[dict[str, object]]


def ct_cases(edit: str, n: int, *, size: int, seed: int = 0) -> CtCases:
    """The first `n` unseen patients (cohort index ≥ FIRST_UNSEEN) that `CT_EDITS[edit]` applies to."""
    _, applies, overrides = CT_EDITS[edit]
    kind, index, found = get_kind("ct"), FIRST_UNSEEN, []
    while len(found) < n:
        subject, index = kind.sample(seed, index), index + 1
        if applies(subject):
            factual = kind.render(subject, size)
            truth = kind.render(subject, size, **overrides).image
            found.append((factual.image, truth, factual.masks["lungs"], kind.row(subject)))
    volumes, truths, lungs, rows = zip(*found, strict=True)
    return CtCases(np.stack(volumes), np.stack(truths), np.stack(lungs).astype(bool), list(rows))


def edit_ct_cases(
    model: Components | GanComponents,
    template: PromptTemplate,
    cases: CtCases,
    edit: str,
    *,
    value_range: tuple[float, float],
    batch_size: int = 4,
    **engine: object,
) -> np.ndarray:
    """The cases' volumes edited by the model (residual edits: what the two prompts change, added to the volume),
    (n, X, Y, Z) in HU. `engine`: counterfactual_volumes' sampler options, or gan_counterfactual's `steps`."""
    edited = []
    for start in range(0, len(cases.rows), batch_size):
        rows = cases.rows[start : start + batch_size]
        sources, targets = edit_prompts(template, rows, [CT_EDITS[edit][0]])
        volumes = to_unit_range(cases.volumes[start : start + batch_size], value_range)[:, None]
        if isinstance(model, GanComponents):
            volumes = volumes.to(model.generator.device)
            result = gan_counterfactual(model, volumes, sources, targets, residual=True, **engine)
        else:
            volumes = volumes.to(model.unet.device)
            result = counterfactual_volumes(model, volumes, sources, targets, residual=True, **engine)
        edited.append(from_unit_range(result[:, 0].float().cpu(), value_range).numpy())
    return np.concatenate(edited)


def ct_edit_scores(cases: CtCases, edited: np.ndarray, *, seed: int = 0) -> dict[str, object]:
    """An edit against the truth, in HU: the mean lung change (model and truth, with 95% CIs), change_agreement's
    region, correlation and error numbers, the AUROC of |change| for the true effect region, and effectiveness:
    the share of patients whose mean change inside the true region has the true sign and at least half its size."""
    change, true = edited - cases.volumes, cases.truths - cases.volumes
    regions = np.abs(true) > CT_EFFECT_THRESHOLD_HU
    model_lung = np.array([c[lung].mean() for c, lung in zip(change, cases.lungs, strict=True)])
    true_lung = np.array([t[lung].mean() for t, lung in zip(true, cases.lungs, strict=True)])
    inside = np.array([(c[r].mean(), t[r].mean()) for c, t, r in zip(change, true, regions, strict=True)])
    effective = (np.sign(inside[:, 0]) == np.sign(inside[:, 1])) & (np.abs(inside[:, 0]) >= np.abs(inside[:, 1]) / 2)
    flat = (len(change), 1, change.shape[1], -1)  # (n, 1, X, Y·Z): pixel_auroc's (B, 1, H, W) over every voxel
    auroc = pixel_auroc(torch.from_numpy(change).reshape(flat), torch.from_numpy(regions).reshape(flat))
    agreement = change_agreement(cases.volumes, cases.truths, cases.lungs | regions, edited,
                                 threshold=CT_EFFECT_THRESHOLD_HU, seed=seed)  # fmt: skip
    return {
        "lung change (HU)": float(model_lung.mean()), "lung change 95% CI": confidence_interval(model_lung, seed),
        "true lung change (HU)": float(true_lung.mean()), "true 95% CI": confidence_interval(true_lung, seed),
        **agreement, "AUROC of |change|": auroc, "effectiveness": float(effective.mean()),
    }  # fmt: skip
