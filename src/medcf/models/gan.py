"""Text- and mask-conditioned GAN networks, 2-D and 3-D: DGM-VLC's GAN generator (Xing et al. 2024, arXiv:2410.13823).

The conditioning contract is that of medcf's diffusion models: the frozen text encoder's states (B, L, D) of the
prompt and, for a mask-conditioned model, the mask (B, 1, *spatial) in {0, 1}.

Generator: z (B, latent_dim) → Linear → (C₀, *base) → blocks [×2 nearest upsampling (not the first block) → mask
concatenated (pix2pix's conditional input, Isola et al. 2017) → conv → pixel norm (Karras et al. 2018, §4.2) →
text-visual modulation h·(1 + γ) + β → LeakyReLU] → conv → tanh: an image in [-1, 1]. Text enters only through
γ, β: the prompt is pooled by diffusers' `TextTimeEmbedding` (attention pooling, as in medcf's diffusion text
modulation) and each block's Linear maps it to (γ, β) (FiLM, Perez et al. 2018; 1 + γ as diffusers'
"scale_shift" so an untrained block is near identity). Pixel norm, not batch or instance norm: it keeps each
channel's spatial mean, so the noise z keeps controlling global intensity, which GAN inversion needs.

Discriminator: MONAI's PatchDiscriminator (Pix2PixHD, Wang et al. 2018) on the image (+ mask channel), with the
text by projection (Miyato & Koyama 2018, Eq. 3): logit_p = ψ(φ(x))_p + ⟨e(y), φ(x)_p⟩ for every patch p, φ the
last features, ψ the final conv, e(y) the pooled prompt. Projection, not concatenated text features: it makes the
discriminator's text term an inner product with the image features, which Miyato & Koyama found more stable and
more faithful to the condition than concatenation. No normalisation layers: R1 (training/gan.py) regularises D.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TextTimeEmbedding
from diffusers.models.modeling_utils import ModelMixin
from monai.networks.layers import Conv
from monai.networks.nets import PatchDiscriminator
from torch import nn


def pixel_norm(hidden: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each position's feature vector scaled to unit mean square (Karras et al. 2018, Eq. in §4.2)."""
    return hidden * torch.rsqrt(hidden.pow(2).mean(dim=1, keepdim=True) + eps)


def check_mask(mask: torch.Tensor | None, mask_conditioning: bool, shape: Sequence[int]) -> None:
    """The mask is required iff the network is mask-conditioned, one per sample at the image size."""
    if not mask_conditioning:
        if mask is not None:
            raise ValueError("mask given, but this GAN is not mask-conditioned; drop the mask")
        return
    if mask is None:
        raise ValueError("this GAN is mask-conditioned: pass mask=(B, 1, *spatial) in {0, 1}")
    expected = (shape[0], 1, *shape[2:])
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask shape {tuple(mask.shape)}: expected one mask per image at the image size, {expected}")


def _with_mask(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return hidden
    return torch.cat([hidden, F.interpolate(mask.to(hidden.dtype), size=hidden.shape[2:], mode="area")], dim=1)


class TextConditionalGenerator(ModelMixin, ConfigMixin):
    """z (B, latent_dim) + text states (B, L, D) [+ mask (B, 1, *sample_size)] → images (B, C, *sample_size)."""

    @register_to_config
    def __init__(
        self,
        *,
        spatial_dims: int = 2,
        sample_size: Sequence[int] = (64, 64),
        out_channels: int = 1,
        latent_dim: int = 128,
        text_dim: int = 384,
        text_heads: int = 8,
        embed_dim: int = 256,
        block_out_channels: Sequence[int] = (256, 128, 64, 32),
        mask_conditioning: bool = False,
        value_range: Sequence[float] | None = None,  # 3-D: stored values mapped onto [-1, 1], e.g. [-1024, 1024] HU
        spacing_mm: Sequence[float] | None = None,  # 3-D: voxel size (RAS+) of the volumes it was trained on
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3) or len(sample_size) != spatial_dims:
            raise ValueError(f"spatial_dims={spatial_dims}, sample_size={list(sample_size)}: 2|3 and that many sizes")
        factor = 2 ** (len(block_out_channels) - 1)
        if any(size % factor for size in sample_size):
            raise ValueError(f"sample_size {list(sample_size)}: each side must be a multiple of {factor}")
        self.base_size = [size // factor for size in sample_size]
        convolution, extra = Conv[Conv.CONV, spatial_dims], int(mask_conditioning)
        self.input = nn.Linear(latent_dim, block_out_channels[0] * int(torch.tensor(self.base_size).prod()))
        self.text_embedding = TextTimeEmbedding(text_dim, embed_dim, num_heads=text_heads)
        widths = [block_out_channels[0], *block_out_channels]
        self.convs = nn.ModuleList(
            convolution(widths[i] + extra, widths[i + 1], kernel_size=3, padding=1) for i in range(len(widths) - 1)
        )
        self.films = nn.ModuleList(nn.Linear(embed_dim, 2 * width) for width in block_out_channels)
        self.output = convolution(block_out_channels[-1], out_channels, kernel_size=3, padding=1)

    def modulation(self, encoder_hidden_states: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(γ, β) of every block, each (B, C_block), predicted from the pooled prompt (FiLM)."""
        pooled = F.silu(self.text_embedding(encoder_hidden_states))  # (B, embed_dim)
        return [tuple(film(pooled).chunk(2, dim=1)) for film in self.films]

    def forward(
        self, latents: torch.Tensor, encoder_hidden_states: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Images (B, out_channels, *sample_size) in [-1, 1]."""
        batch = latents.shape[0]
        check_mask(mask, self.config.mask_conditioning, (batch, 1, *self.config.sample_size))
        hidden = self.input(latents).view(batch, -1, *self.base_size)
        modulation = self.modulation(encoder_hidden_states)
        for index, (conv, (gamma, beta)) in enumerate(zip(self.convs, modulation, strict=True)):
            if index > 0:
                hidden = F.interpolate(hidden, scale_factor=2, mode="nearest")
            hidden = pixel_norm(conv(_with_mask(hidden, mask)))
            shape = (batch, -1) + (1,) * self.config.spatial_dims
            hidden = hidden * (1 + gamma.view(shape)) + beta.view(shape)  # DGM-VLC's γ·h + β
            hidden = F.leaky_relu(hidden, 0.2)
        return torch.tanh(self.output(hidden))


class ProjectionPatchDiscriminator(ModelMixin, ConfigMixin):
    """Images (B, C, *spatial) + text states (B, L, D) [+ mask] → per-patch logits (B, 1, *patches)."""

    @register_to_config
    def __init__(
        self,
        *,
        spatial_dims: int = 2,
        in_channels: int = 1,
        text_dim: int = 384,
        text_heads: int = 8,
        channels: int = 64,
        num_layers_d: int = 3,
        mask_conditioning: bool = False,
    ) -> None:
        super().__init__()
        self.patches = PatchDiscriminator(
            spatial_dims=spatial_dims,
            channels=channels,
            in_channels=in_channels + int(mask_conditioning),
            num_layers_d=num_layers_d,
            norm=None,
            last_conv_kernel_size=3,  # ψ keeps φ's patch grid, so the projection adds patch by patch
        )
        self.text_embedding = TextTimeEmbedding(text_dim, channels * 2**num_layers_d, num_heads=text_heads)

    def forward(
        self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_mask(mask, self.config.mask_conditioning, sample.shape)
        *_, features, logits = self.patches(_with_mask(sample, mask))  # φ(x) (B, F, *patches), ψ(φ(x)) (B, 1, ...)
        embedding = self.text_embedding(encoder_hidden_states)  # e(y) (B, F)
        shape = (*embedding.shape, *(1,) * (features.ndim - 2))
        return logits + (features * embedding.view(shape)).sum(dim=1, keepdim=True)  # projection, Eq. 3
