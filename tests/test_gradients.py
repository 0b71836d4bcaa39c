"""Gradient saliency and Grad-CAM: exact on classifiers with known gradients, localising on a trained one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medcf.attribution.gradients import grad_cam, gradient_saliency
from medcf.classifier import ImageClassifier, fit_classifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32


class LinearClassifier(nn.Module):
    """logits = images · weights: the input gradient of logit k is exactly weights[k]."""

    def __init__(self, weights: torch.Tensor) -> None:  # (K, 1, H, W)
        super().__init__()
        self.weights = nn.Parameter(weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,kchw->bk", images, self.weights)


class PooledClassifier(nn.Module):
    """Feature map A = [pool(x), -pool(x)], logits = [mean A₀ - 0.5 mean A₁, -mean A₀]: Grad-CAM is known."""

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = F.avg_pool2d(images, 4)
        feature_map = torch.cat([pooled, -pooled], dim=1)  # (B, 2, H/4, W/4)
        means = feature_map.mean(dim=(2, 3))
        return feature_map, torch.stack([means[:, 0] - 0.5 * means[:, 1], -means[:, 0]], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)[1]


class BatchNormClassifier(nn.Module):
    """Conv-BatchNorm-ReLU: in train mode its outputs would mix the images of a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4, 2)
        with torch.no_grad():  # non-trivial running statistics
            self.features[1].running_mean.uniform_(-0.5, 0.5)
            self.features[1].running_var.uniform_(0.5, 2.0)

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.features(images)
        return feature_map, self.head(feature_map.mean(dim=(2, 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)[1]


def blob_images(count: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noisy 32×32 images, half with a bright Gaussian blob (σ = 2 px) anywhere; labels (N, 1); blob masks."""
    generator = torch.Generator().manual_seed(seed)
    images = -0.1 + 0.15 * torch.randn(count, 1, SIZE, SIZE, generator=generator)
    labels = (torch.arange(count) % 2).float()[:, None]
    masks = torch.zeros_like(images)
    rows, columns = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    for index in range(1, count, 2):
        centre_row, centre_column = torch.randint(5, SIZE - 5, (2,), generator=generator)
        squared = (rows - centre_row) ** 2 + (columns - centre_column) ** 2
        images[index, 0] += torch.exp(-squared / (2 * 2.0**2))
        masks[index, 0] = (squared <= 9).float()  # within 1.5 σ of the centre
    return images.clamp(-1, 1), labels, masks


@pytest.fixture(scope="module")
def blob_classifier(one_torch_thread: None) -> ImageClassifier:
    images, labels, _ = blob_images(256, seed=0)
    model, _ = fit_classifier(
        images, labels, ["blob"], steps=150, batch_size=32, learning_rate=3e-3, seed=0, channels=(8, 16),
        progress=False,
    )  # fmt: skip
    return model


def test_saliency_of_a_linear_classifier_is_its_weight():
    weights = torch.randn(3, 1, 8, 8)
    classifier = LinearClassifier(weights)
    images = torch.randn(4, 1, 8, 8)
    signed = gradient_saliency(classifier, images, 1, signed=True)
    assert signed.shape == (4, 1, 8, 8)
    torch.testing.assert_close(signed, weights[1:2].expand(4, -1, -1, -1))
    torch.testing.assert_close(gradient_saliency(classifier, images, 2), weights[2:3].abs().expand(4, -1, -1, -1))


def test_saliency_matches_finite_differences_per_image():
    torch.manual_seed(0)
    classifier = ImageClassifier(["a", "b"], image_size=16, channels=(8, 16)).double().eval()
    images = torch.rand(3, 1, 16, 16, dtype=torch.float64) * 2 - 1
    saliency = gradient_saliency(classifier, images, 1, signed=True)
    step = 1e-6
    for image, row, column in [(0, 3, 4), (1, 8, 8), (2, 15, 0), (2, 0, 11)]:
        plus, minus = images[image : image + 1].clone(), images[image : image + 1].clone()
        plus[0, 0, row, column] += step
        minus[0, 0, row, column] -= step
        with torch.no_grad():
            difference = (classifier(plus)[0, 1] - classifier(minus)[0, 1]) / (2 * step)
        torch.testing.assert_close(saliency[image, 0, row, column], difference, rtol=1e-5, atol=1e-8)


def test_grad_cam_equals_the_closed_form_of_a_known_classifier():
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    images[1] = -images[1].abs()  # all negative: no positive evidence for label 0
    # Label 0: α = (1, -0.5) / 16, so Σ α_c A_c = 1.5 pool(x) / 16 and the map is ReLU(pool(x)) / its maximum.
    expected = F.interpolate(F.relu(F.avg_pool2d(images, 4)), size=(16, 16), mode="bilinear", align_corners=False)
    expected[0] /= expected[0].max()
    maps = grad_cam(PooledClassifier(), images, 0)
    assert maps.shape == (2, 1, 16, 16)
    torch.testing.assert_close(maps, expected)
    assert torch.equal(maps[1], torch.zeros(1, 16, 16))  # kept zero, not divided by zero
    opposite = grad_cam(PooledClassifier(), images, 1)  # label 1 = -mean A₀: the negative regions
    assert opposite[1].max() == 1 and (opposite[0][maps[0] == 1] == 0).all()


def test_grad_cam_peaks_inside_the_blob(blob_classifier):
    images, _, masks = blob_images(16, seed=5)
    with_blob = masks.flatten(1).any(dim=1)
    maps = grad_cam(blob_classifier, images[with_blob], 0)
    assert maps.shape == (8, 1, SIZE, SIZE) and maps.min() >= 0 and maps.amax(dim=(1, 2, 3)).eq(1).all()
    inside = (maps * masks[with_blob]).sum(dim=(1, 2, 3)) / masks[with_blob].sum(dim=(1, 2, 3))
    outside = (maps * (1 - masks[with_blob])).sum(dim=(1, 2, 3)) / (1 - masks[with_blob]).sum(dim=(1, 2, 3))
    assert (inside > 2 * outside).all(), (inside, outside)


def test_saliency_is_largest_near_the_blob(blob_classifier):
    images, _, masks = blob_images(16, seed=6)
    with_blob = masks.flatten(1).any(dim=1)
    saliency = gradient_saliency(blob_classifier, images[with_blob], 0)
    inside = (saliency * masks[with_blob]).sum() / masks[with_blob].sum()
    outside = (saliency * (1 - masks[with_blob])).sum() / (1 - masks[with_blob]).sum()
    assert inside > 2 * outside


@pytest.mark.parametrize("method", [gradient_saliency, grad_cam])
def test_maps_are_per_image_in_eval_mode_and_modes_and_flags_are_restored(method):
    torch.manual_seed(0)
    classifier = BatchNormClassifier().train()
    classifier.head.eval()  # mixed modes come back module by module
    classifier.head.bias.requires_grad_(False)
    statistics = classifier.features[1].running_mean.clone()
    images = torch.randn(4, 1, 12, 12)
    together = method(classifier, images, 1)
    alone = torch.cat([method(classifier, images[index : index + 1], 1) for index in range(4)])
    torch.testing.assert_close(together, alone)
    assert classifier.training and classifier.features[1].training and not classifier.head.training
    assert [parameter.requires_grad for parameter in classifier.parameters()] == [True] * 5 + [False]
    assert all(parameter.grad is None for parameter in classifier.parameters())
    assert torch.equal(classifier.features[1].running_mean, statistics)  # eval mode: statistics not updated
    assert not together.requires_grad


@pytest.mark.parametrize("method", [gradient_saliency, grad_cam])
def test_maps_work_under_no_grad_and_with_frozen_weights(method, blob_classifier):
    images, _, _ = blob_images(2, seed=7)
    reference = method(blob_classifier, images, 0)
    blob_classifier.requires_grad_(False)
    try:
        with torch.no_grad():
            torch.testing.assert_close(method(blob_classifier, images, 0), reference)
    finally:
        blob_classifier.requires_grad_(True)


@pytest.mark.parametrize("method", [gradient_saliency, grad_cam])
def test_bad_label_or_image_shape_is_refused(method, blob_classifier):
    images, _, _ = blob_images(2, seed=8)
    with pytest.raises(ValueError, match=r"label_index=1: the classifier has 1 labels"):
        method(blob_classifier, images, 1)
    with pytest.raises(ValueError, match=r"pass grey images \(B, 1, H, W\)"):
        method(blob_classifier, images[:, 0], 0)
