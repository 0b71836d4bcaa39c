"""ImageClassifier: a small CNN mapping grey images (B, 1, S, S) in [-1, 1] to multi-label logits (B, K).

Stages of two conv3×3-BatchNorm-SiLU blocks; every stage after the first starts with a stride-2 conv, so the
last feature map is (B, channels[-1], S / 2^(stages-1), ...). The last stage is `features` (the map Grad-CAM
weighs, Selvaraju et al. 2017), global average pooling gives `embed` (B, channels[-1]), and a linear `head`
gives one logit per label (the CAM architecture of Zhou et al., CVPR 2016).

BatchNorm rather than GroupNorm: in eval mode BatchNorm is a fixed per-channel affine map, so a feature sees
only its receptive field and attribution maps stay local, whereas GroupNorm's per-image statistics make every
feature depend on the whole image (on a 32 px blob task its saliency and Grad-CAM were about as strong
outside the blob as inside). Use the model in eval mode outside training: there a prediction never depends
on the rest of its batch; load_classifier and fit_classifier return it so.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

DEFAULT_CHANNELS = (16, 32, 64, 128)


def _conv_block(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.SiLU(),
    )


def _stage(in_channels: int, out_channels: int, *, downsample: bool) -> nn.Sequential:
    return nn.Sequential(
        _conv_block(in_channels, out_channels, stride=2 if downsample else 1),
        _conv_block(out_channels, out_channels),
    )


class ImageClassifier(nn.Module):
    """Multi-label CNN classifier of grey images trained at `image_size` × `image_size` pixels."""

    def __init__(
        self, label_names: Sequence[str], *, image_size: int, channels: Sequence[int] = DEFAULT_CHANNELS
    ) -> None:
        super().__init__()
        self.label_names, self.channels, self.image_size = list(label_names), [int(c) for c in channels], image_size
        if not self.label_names or len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"label_names={self.label_names}: give one or more distinct label names")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels={self.channels}: give one or more positive widths, e.g. {DEFAULT_CHANNELS}")
        if image_size < 1 or image_size % self.downsampling:
            raise ValueError(
                f"image_size={image_size} with {len(self.channels)} stages: use a side divisible by "
                f"{self.downsampling}, e.g. {8 * self.downsampling}"
            )
        widths = [1, *self.channels]
        stages = [_stage(widths[i], widths[i + 1], downsample=i > 0) for i in range(len(self.channels) - 1)]
        self.stem = nn.Sequential(*stages)
        self.features = _stage(widths[-2], widths[-1], downsample=len(self.channels) > 1)
        self.head = nn.Linear(self.channels[-1], len(self.label_names))

    @property
    def downsampling(self) -> int:
        """Image side / feature-map side."""
        return 2 ** (len(self.channels) - 1)

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 1, S, S) in [-1, 1] → last feature map (B, C, S/d, S/d) and logits (B, K)."""
        expected = (1, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"images have shape {tuple(images.shape)}; this classifier takes (B, {', '.join(map(str, expected))})"
                " grey images in [-1, 1] (resize with medcf.data.dataset.resize_square)"
            )
        feature_map = self.features(self.stem(images))
        return feature_map, self.head(feature_map.mean(dim=(2, 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, S, S) in [-1, 1] → logits (B, K), one per label in `label_names`."""
        return self.forward_features(images)[1]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, S, S) in [-1, 1] → globally average-pooled last features (B, channels[-1])."""
        feature_map, _ = self.forward_features(images)
        return feature_map.mean(dim=(2, 3))
