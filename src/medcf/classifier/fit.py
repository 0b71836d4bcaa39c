"""Training (BCE-with-logits, AdamW) and evaluation (per-label AUROC, accuracy) of an ImageClassifier.

Augmentation is a small random translation (border pixels repeated) and brightness/contrast jitter. There are
no flips: laterality matters in chest X-rays (the heart lies left, a right-sided effusion stays right).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from medcf.classifier.network import DEFAULT_CHANNELS, ImageClassifier
from medcf.models.device import resolve_device
from medcf.models.precision import inference_precision, resolve_precision

MAX_SHIFT = 1 / 16  # largest translation, as a fraction of the image side
INTENSITY_JITTER = 0.1  # largest relative contrast change and additive brightness shift, in [-1, 1] units


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    label_names: Sequence[str],
    *,
    val_images: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    channels: Sequence[int] = DEFAULT_CHANNELS,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    progress: bool = True,
) -> tuple[ImageClassifier, dict[str, Any]]:
    """Train on images (N, 1, S, S) in [-1, 1] with labels (N, K) in {0, 1}; deterministic in `seed` on CPU.

    Returns the model (eval mode) and history {"loss": [per step], "auroc": {label: float},
    "accuracy": {label: float}}, the last two on the validation set when one is given (else empty).
    """
    _check_data(images, labels, label_names, "images/labels")
    if (val_images is None) != (val_labels is None):
        raise ValueError("pass val_images and val_labels together, or neither")
    if val_images is not None:
        _check_data(val_images, val_labels, label_names, "val_images/val_labels")
        if val_images.shape[-1] != images.shape[-1]:
            raise ValueError(f"val_images are {val_images.shape[-1]} px, images {images.shape[-1]} px; use one size")
    if steps < 1 or batch_size < 1 or learning_rate <= 0:
        raise ValueError(f"steps={steps}, batch_size={batch_size}, learning_rate={learning_rate}: all must be > 0")
    device = resolve_device(device)
    precision = training_precision(precision, device)
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's global RNG
        torch.manual_seed(seed)
        model = ImageClassifier(label_names, image_size=images.shape[-1], channels=channels).to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    history: dict[str, Any] = {"loss": [], "auroc": {}, "accuracy": {}}
    model.train()
    for _ in tqdm(range(steps), desc="medcf classifier", unit="step", disable=not progress):
        # 1. Sample a batch without replacement and augment it
        chosen = torch.randperm(len(images), generator=generator)[:batch_size]
        batch = augment(images[chosen].float(), generator=generator).to(device)
        # 2. Multi-label loss: one independent sigmoid per label
        with inference_precision(precision, device):
            logits = model(batch)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels[chosen].float().to(device))
        # 3. Update
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history["loss"].append(loss.item())
    model.eval()
    if val_images is not None:
        history |= evaluate(model, val_images, val_labels)
    return model, history


def training_precision(precision: str, device: torch.device) -> str:
    """ "fp32" or "bf16": the classifier's autocast. fp16 gradients underflow without loss scaling, so "auto" on a
    GPU without bf16 trains in fp32 and an explicit fp16 is refused."""
    resolved = resolve_precision(precision, device)
    if resolved != "fp16":
        return resolved
    if precision == "auto":
        return "fp32"
    raise ValueError("precision=fp16: the classifier trains in fp32 or bf16; pass --precision bf16 or fp32")


def augment(images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Per image: an integer translation of up to MAX_SHIFT × side (edges repeated), then intensity jitter."""
    count, _, height, width = images.shape
    shifts = torch.randint(-int(MAX_SHIFT * width), int(MAX_SHIFT * width) + 1, (count, 2), generator=generator)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2], theta[:, 1, 2] = 2 * shifts[:, 0] / width, 2 * shifts[:, 1] / height  # whole pixels
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    shifted = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast, brightness = (torch.rand(2, count, 1, 1, 1, generator=generator) * 2 - 1) * INTENSITY_JITTER
    return (shifted * (1 + contrast) + brightness).clamp(-1, 1)


def resize_for_classifier(model: ImageClassifier, images: torch.Tensor) -> torch.Tensor:
    """Images (N, 1, H, W) at the classifier's image_size (bilinear, antialiased when shrinking), as it trained;
    differentiable, so gradient saliency reaches the caller's pixels through it."""
    size = model.image_size
    if images.shape[-2:] == (size, size):
        return images
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True)


@torch.no_grad()
def classify(model: ImageClassifier, images: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """Probabilities (N, K) on the CPU of images (N, 1, S, S) in [-1, 1], computed in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        chunks = [model(chunk.float().to(device)).sigmoid().cpu() for chunk in images.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def evaluate(model: ImageClassifier, images: torch.Tensor, labels: torch.Tensor) -> dict[str, dict[str, float]]:
    """{"auroc": {label: AUROC}, "accuracy": {label: accuracy at p = 0.5}}; AUROC is NaN for a one-class label."""
    probabilities = classify(model, images).numpy()
    truth = labels.cpu().numpy().astype(bool)
    auroc, accuracy = {}, {}
    for index, name in enumerate(model.label_names):
        column = truth[:, index]
        single_class = column.all() or not column.any()
        auroc[name] = float("nan") if single_class else float(roc_auc_score(column, probabilities[:, index]))
        accuracy[name] = float(np.mean((probabilities[:, index] > 0.5) == column))
    return {"auroc": auroc, "accuracy": accuracy}


def _check_data(images: torch.Tensor, labels: torch.Tensor, label_names: Sequence[str], what: str) -> None:
    if images.dim() != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3] or not len(images):
        raise ValueError(f"{what}: images have shape {tuple(images.shape)}; pass N ≥ 1 grey squares (N, 1, S, S)")
    if images.min() < -1 or images.max() > 1:
        raise ValueError(f"{what}: images span [{images.min():.3g}, {images.max():.3g}]; map them to [-1, 1] first")
    if labels.shape != (len(images), len(label_names)):
        raise ValueError(
            f"{what}: labels have shape {tuple(labels.shape)}; need (N, K) = ({len(images)}, {len(label_names)})"
        )
    if not ((labels == 0) | (labels == 1)).all():
        raise ValueError(f"{what}: labels must be 0 or 1; drop or fill rows with unknown labels first")
