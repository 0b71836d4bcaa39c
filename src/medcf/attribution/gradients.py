"""Classifier attribution baselines: gradient saliency and Grad-CAM, maps (B, 1, H, W) in image space.

A classifier here is any module mapping grey images (B, 1, H, W) to logits (B, K); Grad-CAM also needs
`forward_features(images) -> (feature_map (B, C, h, w), logits (B, K))`, as medcf.classifier.ImageClassifier
has. Both run the classifier in eval mode (BatchNorm running statistics, no dropout), so the map of one
image does not depend on the rest of its batch, and give the caller back the modes it had.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from medcf.classifier import ImageClassifier, resize_for_classifier


def gradient_saliency(
    classifier: nn.Module, images: torch.Tensor, label_index: int, *, signed: bool = False
) -> torch.Tensor:
    """Saliency |∂ logit_k / ∂x| (Simonyan et al., ICLR Workshop 2014, Sec. 3.1): (B, 1, H, W).

    `signed=True` keeps the raw input gradient (positive where brightening raises the logit).
    """
    _check_images(images)
    images = images.detach().requires_grad_(True)
    with _evaluating(classifier), torch.enable_grad():
        logits = classifier(images)  # (B, K)
        _check_label(logits, label_index)
        # Summing over the batch is exact: in eval mode logit i depends on image i only.
        (gradient,) = torch.autograd.grad(logits[:, label_index].sum(), images)
    return gradient if signed else gradient.abs()


def grad_cam(classifier: nn.Module, images: torch.Tensor, label_index: int) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., ICCV 2017, Eqs. 1-2) of the last feature map, in [0, 1]: (B, 1, H, W).

    α_c = spatial mean of ∂ logit_k / ∂A_c; map = ReLU(Σ_c α_c A_c), upsampled bilinearly to the image and
    divided by its per-image maximum (a map with no positive evidence stays all zero).
    """
    _check_images(images)
    images = images.detach().requires_grad_(True)  # keeps a graph even when the weights are frozen
    with _evaluating(classifier), torch.enable_grad():
        feature_map, logits = classifier.forward_features(images)  # (B, C, h, w), (B, K)
        _check_label(logits, label_index)
        (gradient,) = torch.autograd.grad(logits[:, label_index].sum(), feature_map)
    weights = gradient.mean(dim=(2, 3), keepdim=True)  # α_c, Eq. 1 (global-average-pooled gradients)
    cam = F.relu((weights * feature_map.detach()).sum(dim=1, keepdim=True))  # Eq. 2
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
    peak = cam.amax(dim=(2, 3), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny), torch.zeros_like(cam))


@contextmanager
def _evaluating(classifier: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode for the block; each gets its own previous mode back afterwards."""
    modes = [(module, module.training) for module in classifier.modules()]
    classifier.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _check_images(images: torch.Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images have shape {tuple(images.shape)}; pass grey images (B, 1, H, W)")


def _check_label(logits: torch.Tensor, label_index: int) -> None:
    if not 0 <= label_index < logits.shape[1]:
        raise ValueError(
            f"label_index={label_index}: the classifier has {logits.shape[1]} labels (0 to {logits.shape[1] - 1})"
        )


def at_classifier_size(
    method: Callable[[nn.Module, torch.Tensor, int], torch.Tensor],
    classifier: ImageClassifier,
    images: torch.Tensor,
    label_index: int,
) -> torch.Tensor:
    """`method` (gradient_saliency or grad_cam) run where the classifier was trained, images resized to its
    `image_size` (bilinear, antialiased), and the maps (B, 1, H, W) brought back to the images' size."""
    maps = method(classifier, resize_for_classifier(classifier, images), label_index)
    return F.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)
