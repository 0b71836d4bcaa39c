"""Soundness of counterfactual image edits: effectiveness, composition, reversibility and minimality.

Composition, reversibility and effectiveness are the axioms of Pearl's counterfactuals turned into metrics by
Monteiro et al., "Measuring axiomatic soundness of counterfactual image models" (ICLR 2023): a null edit
(target = source) should be the identity however often it is applied, an edit undone by its reverse edit should
give back the image, and a classifier trained on real data should find the intended attribute in the result.
Effectiveness follows Chambon et al. (RoentGen, 2022): the fraction of images in which a real-data classifier
finds the prompted label. Minimality scores where the change lies against a known true-effect mask.

Distances are mean absolute differences in 0–255 grey levels, the convention of Monteiro et al.: images live
in the model range [-1, 1], so |Δ| is multiplied by 127.5. Edit outputs are scored as returned, not clipped to
[-1, 1], so an edit that drifts out of range is charged for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

PIXEL_SCALE = 127.5  # [-1, 1] spans 2 units = 255 grey levels
RANGE_TOLERANCE = 1e-3  # rounding slack on the [-1, 1] check; it is there to catch [0, 255] inputs

Edit = Callable[[torch.Tensor], torch.Tensor]  # images (B, C, H, W) in [-1, 1] -> edited images, same shape


def _check_images(images: torch.Tensor, name: str) -> None:
    if images.dim() != 4:
        raise ValueError(f"{name} have shape {tuple(images.shape)}; pass (B, C, H, W) tensors in [-1, 1]")
    if images.detach().abs().max() > 1 + RANGE_TOLERANCE:
        low, high = float(images.min()), float(images.max())
        raise ValueError(f"{name} span [{low:.3g}, {high:.3g}]; pass images in the model range [-1, 1]")


def _apply(edit: Edit, images: torch.Tensor, name: str) -> torch.Tensor:
    """Run one edit and check it kept the shape; detached so repeated edits build no autograd graph."""
    edited = edit(images)
    if edited.shape != images.shape:
        raise ValueError(
            f"{name} returned shape {tuple(edited.shape)} for input {tuple(images.shape)}; an edit must keep the shape"
        )
    return edited.detach()


def _l1_255(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean |a − b| over all pixels, channels and images, in 0–255 grey levels."""
    return float((a.double() - b.double()).abs().mean() * PIXEL_SCALE)


def effectiveness(
    probabilities: torch.Tensor, targets: torch.Tensor, label_names: Sequence[str]
) -> dict[str, dict[str, float | int | None] | float]:
    """Per-label accuracy and AUROC of a real-data classifier on edited images, for the labels each edit sets.

    probabilities (N, L) in [0, 1]; targets (N, L) with 1/0 for the intended value and NaN where the edit leaves
    the label unspecified (ignored). Returns {label: {"accuracy", "auroc", "n"}} for every label with at least one
    target, plus "mean_accuracy", the unweighted mean over those labels. A prediction is positive when p > 0.5
    (as torchmetrics and medcf.classifier); "auroc" is None where the targets of a label hold one class only.
    """
    scores = torch.as_tensor(probabilities).detach().cpu().double().numpy()
    wanted = torch.as_tensor(targets).detach().cpu().double().numpy()
    if scores.ndim != 2 or scores.shape != wanted.shape:
        raise ValueError(
            f"probabilities {scores.shape} and targets {wanted.shape} must both be (N, L) with one column per label"
        )
    if len(label_names) != scores.shape[1] or len(set(label_names)) != len(label_names):
        raise ValueError(f"label_names {list(label_names)} must name each of the {scores.shape[1]} columns once")
    if "mean_accuracy" in label_names:
        raise ValueError("a label is called 'mean_accuracy', which clashes with the summary key; rename it")
    if not np.all((scores >= 0) & (scores <= 1)):
        raise ValueError("probabilities must lie in [0, 1] without NaN; apply the sigmoid/softmax first")
    specified = ~np.isnan(wanted)
    if not np.all((wanted[specified] == 0) | (wanted[specified] == 1)):
        raise ValueError("targets must be 1, 0 or NaN (label not set by the edit); binarise them first")
    if not specified.any():
        raise ValueError("every target is NaN; pass the intended label values of the edits")
    report: dict[str, dict[str, float | int | None] | float] = {}
    for column, name in enumerate(label_names):
        rows = specified[:, column]
        if not rows.any():
            continue
        label, score = wanted[rows, column], scores[rows, column]
        both_classes = 0 < label.sum() < len(label)
        report[name] = {
            "accuracy": float(np.mean((score > 0.5) == label)),
            "auroc": float(roc_auc_score(label, score)) if both_classes else None,
            "n": int(rows.sum()),
        }
    report["mean_accuracy"] = float(np.mean([entry["accuracy"] for entry in report.values()]))
    return report


def composition(null_edit: Edit, images: torch.Tensor, repeats: Sequence[int] = (1, 2, 10)) -> dict[int, float]:
    """L1 (0–255) between images and k-fold applications of a null edit, {k: distance} for each k in repeats.

    Monteiro et al. (2023), composition: do(a := a_source) must leave the image unchanged, so the ideal distance
    is 0 for every k. The edit is applied iteratively, once per step up to max(repeats).
    """
    _check_images(images, "images")
    if not repeats or min(repeats) < 1:
        raise ValueError(f"repeats={tuple(repeats)}; pass positive numbers of applications, e.g. (1, 2, 10)")
    distances = {}
    edited = images
    for step in range(1, max(repeats) + 1):
        edited = _apply(null_edit, edited, "null_edit")
        if step in repeats:
            distances[step] = _l1_255(images, edited)
    return {k: distances[k] for k in sorted(set(repeats))}


def reversibility(forward: Edit, backward: Edit, images: torch.Tensor) -> float:
    """L1 (0–255) between images and backward(forward(images)); 0 for an ideal edit (Monteiro et al. 2023).

    forward sets the counterfactual attribute value, backward sets the original one back.
    """
    _check_images(images, "images")
    return _l1_255(images, _apply(backward, _apply(forward, images, "forward"), "backward"))


def minimality(originals: torch.Tensor, counterfactuals: torch.Tensor, effect_masks: torch.Tensor) -> dict[str, float]:
    """Where the change lies, given the true effect region: mean |Δ| (0–255) inside and outside the mask.

    effect_masks (B, 1, H, W) in {0, 1} broadcast over channels. "inside_l1" / "outside_l1" are mean |Δ| over
    the pixels of all images inside / outside the mask; "outside_fraction" is the share of the summed |Δ| that
    lies outside (0 for an edit that touches only the effect region). Only originals are range-checked.
    """
    _check_images(originals, "originals")
    if counterfactuals.shape != originals.shape:
        raise ValueError(
            f"counterfactuals {tuple(counterfactuals.shape)} and originals {tuple(originals.shape)} differ in shape"
        )
    batch, _, height, width = originals.shape
    if effect_masks.shape != (batch, 1, height, width):
        raise ValueError(f"effect_masks have shape {tuple(effect_masks.shape)}; pass ({batch}, 1, {height}, {width})")
    masks = effect_masks.detach().double()
    if not torch.all((masks == 0) | (masks == 1)):
        raise ValueError("effect_masks must hold only 0 and 1; binarise them first (e.g. mask > 0.5)")
    covered = masks.flatten(1).mean(dim=1)  # (B,) share of each image inside the mask
    for index, share in enumerate(covered.tolist()):
        if share in (0.0, 1.0):
            problem = "is empty" if share == 0 else "covers the whole image"
            raise ValueError(f"effect mask of image {index} {problem}; minimality needs pixels inside and outside")
    change = (counterfactuals.detach().double() - originals.detach().double()).abs() * PIXEL_SCALE
    masks = masks.expand_as(change)
    inside, outside = (change * masks).sum(), (change * (1 - masks)).sum()
    if inside + outside == 0:
        raise ValueError("counterfactuals equal the originals; there is no change to locate")
    return {
        "inside_l1": float(inside / masks.sum()),
        "outside_l1": float(outside / (1 - masks).sum()),
        "outside_fraction": float(outside / (inside + outside)),
    }
