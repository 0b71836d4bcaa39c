"""medcf.metrics.soundness against scikit-learn and edits whose soundness is known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, roc_auc_score

from medcf.metrics.soundness import composition, effectiveness, minimality, reversibility


def _images(batch: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    """(B, 1, size, size) random images in [-0.5, 0.5], so constant shifts of up to 0.5 stay in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=generator) - 0.5


def _effect_masks(batch: int = 3, size: int = 16) -> torch.Tensor:
    """(B, 1, size, size) masks: a 4 × 8 block at a different row in each image (32 of 256 pixels)."""
    masks = torch.zeros(batch, 1, size, size)
    for index in range(batch):
        masks[index, 0, 2 + 3 * index : 6 + 3 * index, 4:12] = 1
    return masks


def test_effectiveness_matches_scikit_learn_and_ignores_unspecified_labels():
    generator = np.random.default_rng(0)
    probabilities = generator.uniform(size=(40, 3))
    targets = (generator.uniform(size=(40, 3)) < 0.5).astype(float)
    targets[generator.uniform(size=(40, 3)) < 0.3] = np.nan  # edits that do not set the label
    targets[:, 2] = np.nan
    targets[:5, 2] = 1  # third label: set by 5 edits, all to "present"
    report = effectiveness(torch.tensor(probabilities), torch.tensor(targets), ["effusion", "edema", "device"])
    for column, name in enumerate(["effusion", "edema"]):
        rows = ~np.isnan(targets[:, column])
        label, score = targets[rows, column], probabilities[rows, column]
        assert report[name]["n"] == rows.sum()
        assert report[name]["accuracy"] == pytest.approx(accuracy_score(label, score > 0.5), abs=1e-12)
        assert report[name]["auroc"] == pytest.approx(roc_auc_score(label, score), abs=1e-12)
    assert report["device"] == {"accuracy": float(np.mean(probabilities[:5, 2] > 0.5)), "auroc": None, "n": 5}
    expected_mean = np.mean([report[name]["accuracy"] for name in ("effusion", "edema", "device")])
    assert report["mean_accuracy"] == pytest.approx(expected_mean, abs=1e-12)


def test_effectiveness_hand_example_drops_labels_no_edit_sets():
    probabilities = torch.tensor([[0.9, 0.1], [0.2, 0.7], [0.6, 0.4], [0.5, 0.3]])
    targets = torch.tensor([[1.0, math.nan], [0.0, math.nan], [0.0, math.nan], [1.0, math.nan]])
    report = effectiveness(probabilities, targets, ["a", "b"])
    # Row 0 right, row 1 right, row 2 wrong (0.6 > 0.5 but target 0), row 3 wrong (0.5 is not > 0.5).
    assert report["a"]["accuracy"] == 0.5
    assert report["a"]["auroc"] == pytest.approx(0.75)  # positive scores {0.9, 0.5} vs negatives {0.2, 0.6}: 3/4
    assert "b" not in report and report["mean_accuracy"] == 0.5


def test_effectiveness_refuses_malformed_input():
    probabilities, targets = torch.full((4, 2), 0.5), torch.ones(4, 2)
    with pytest.raises(ValueError, match="must both be"):
        effectiveness(probabilities, torch.ones(4, 3), ["a", "b"])
    with pytest.raises(ValueError, match="must name each"):
        effectiveness(probabilities, targets, ["a", "a"])
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        effectiveness(probabilities * 3, targets, ["a", "b"])
    with pytest.raises(ValueError, match="must be 1, 0 or NaN"):
        effectiveness(probabilities, targets * 0.5, ["a", "b"])
    with pytest.raises(ValueError, match="every target is NaN"):
        effectiveness(probabilities, targets * math.nan, ["a", "b"])


def test_composition_of_identity_is_zero_and_of_a_shift_grows_linearly():
    images = _images()
    assert composition(lambda x: x.clone(), images) == {1: 0.0, 2: 0.0, 10: 0.0}
    shift = 0.01  # in [-1, 1] units; no clipping, so k applications move every pixel by k · 0.01 · 127.5
    result = composition(lambda x: x + shift, images, repeats=(10, 1, 3))
    assert list(result) == [1, 3, 10]
    for k, distance in result.items():
        assert distance == pytest.approx(k * shift * 127.5, rel=1e-5)


def test_composition_applies_the_edit_once_per_step():
    calls = []

    def null_edit(images: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return images * 0.5  # contracts toward 0: after k steps |Δ| = (1 − 2^-k) |x|

    images = _images()
    result = composition(null_edit, images, repeats=(1, 2, 10))
    assert len(calls) == 10
    mean_magnitude = float(images.double().abs().mean() * 127.5)
    for k in (1, 2, 10):
        assert result[k] == pytest.approx((1 - 0.5**k) * mean_magnitude, rel=1e-6)


def test_reversibility_of_inverse_edits_is_zero_and_of_a_lossy_pair_is_the_loss():
    images = _images()
    assert reversibility(lambda x: x + 0.3, lambda x: x - 0.3, images) == pytest.approx(0.0, abs=1e-4)
    # backward forgets half of the shift: every pixel ends 0.1 above the original, i.e. 12.75 grey levels.
    assert reversibility(lambda x: x + 0.2, lambda x: x - 0.1, images) == pytest.approx(0.1 * 127.5, rel=1e-5)


def test_edits_and_images_are_checked():
    images = _images()
    with pytest.raises(ValueError, match="an edit must keep the shape"):
        composition(lambda x: x[:, :, :8], images)
    with pytest.raises(ValueError, match=r"pass images in the model range \[-1, 1\]"):
        reversibility(lambda x: x, lambda x: x, images * 255)
    with pytest.raises(ValueError, match="positive numbers of applications"):
        composition(lambda x: x, images, repeats=(0, 1))


def test_minimality_of_a_change_inside_the_mask_has_no_outside_share():
    images, masks = _images(), _effect_masks()
    counterfactuals = images - 0.4 * masks
    report = minimality(images, counterfactuals, masks)
    assert report["outside_fraction"] == 0.0 and report["outside_l1"] == 0.0
    assert report["inside_l1"] == pytest.approx(0.4 * 127.5, rel=1e-5)


def test_minimality_hand_computed_split():
    images, masks = _images(), _effect_masks()
    # Inside: |Δ| = 0.2 on 32 px per image; outside: |Δ| = 0.05 on the other 224 px.
    counterfactuals = images + 0.2 * masks - 0.05 * (1 - masks)
    report = minimality(images, counterfactuals, masks)
    assert report["inside_l1"] == pytest.approx(0.2 * 127.5, rel=1e-5)
    assert report["outside_l1"] == pytest.approx(0.05 * 127.5, rel=1e-5)
    assert report["outside_fraction"] == pytest.approx(224 * 0.05 / (224 * 0.05 + 32 * 0.2), rel=1e-5)
    # Channels share the mask: a 3-channel copy of the same edit gives the same numbers.
    assert minimality(images.repeat(1, 3, 1, 1), counterfactuals.repeat(1, 3, 1, 1), masks) == pytest.approx(report)


def test_minimality_refuses_undefined_masks():
    images, masks = _images(), _effect_masks()
    counterfactuals = images + 0.1
    empty, full = masks.clone(), masks.clone()
    empty[1] = 0
    full[2] = 1
    with pytest.raises(ValueError, match="effect mask of image 1 is empty"):
        minimality(images, counterfactuals, empty)
    with pytest.raises(ValueError, match="effect mask of image 2 covers the whole image"):
        minimality(images, counterfactuals, full)
    with pytest.raises(ValueError, match="only 0 and 1"):
        minimality(images, counterfactuals, masks * 0.5)
    with pytest.raises(ValueError, match=r"pass \(3, 1, 16, 16\)"):
        minimality(images, counterfactuals, masks[:, :, :8])
    with pytest.raises(ValueError, match="no change to locate"):
        minimality(images, images.clone(), masks)
