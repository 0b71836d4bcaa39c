"""The domain feature extractor (`fid_domain`): FID/KID in the feature space of medcf's own classifier.

ImageNet networks (Inception, EfficientNet) were trained on colour photographs; this classifier was trained on
the study's own grey images and labels, so its features respond to the findings that counterfactual edits change.
Report it beside, not instead of, an ImageNet FID: it is only as good as the classifier behind it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medcf.classifier.network import ImageClassifier


class ClassifierFeatures:
    """Globally pooled last-stage features (B, channels[-1]) of an ImageClassifier, a `FeatureExtractor`.

    Preprocessing mirrors the classifier's training data (medcf.data.dataset): RGB is averaged to grey, images
    are resized to image_size × image_size bilinear with antialias (no crop, aspect ratio not kept), and mapped
    from [0, 1] to [-1, 1]. Eval mode, no grad, float32 on the CPU.
    """

    name = "domain"

    def __init__(self, network: ImageClassifier) -> None:
        self.network = network.eval()  # eval BatchNorm: a feature never depends on the rest of its batch
        self.resize = f"{network.image_size} bilinear"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images have shape {tuple(images.shape)}; pass (B, 1, H, W) or (B, 3, H, W) in [0, 1]")
        size, device = self.network.image_size, next(self.network.parameters()).device
        grey = images.to(device, torch.float32).mean(dim=1, keepdim=True)  # (B, 1, H, W)
        # antialias=True filters when shrinking and equals plain bilinear when enlarging (as resize_square does)
        grey = F.interpolate(grey, size=(size, size), mode="bilinear", antialias=True)
        return self.network.embed(grey * 2 - 1).float().cpu()
