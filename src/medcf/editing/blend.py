"""Keep what lies outside an edit mask: blend the known latents at every step, paste the pixels at the end.

Latent blending (Avrahami et al., Blended Latent Diffusion, 2023; RePaint's known-region step, Lugmayr et
al. 2022): after each reverse step the latents outside the mask are replaced by the source's latents at the
same noise level. The VAE decoder mixes neighbouring latents, so the final image is pasted in pixel space
too: outside the mask the output *is* the input, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

KnownLatents = Callable[[int], torch.Tensor]  # step index i → the source's latents after step i


def check_mask(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """A (B, 1, H, W) float mask in {0, 1} matching `images`; 1 marks the region to regenerate."""
    if (
        mask.dim() != 4
        or mask.shape[1] != 1
        or mask.shape[0] != images.shape[0]
        or mask.shape[-2:] != images.shape[-2:]
    ):
        expected = (images.shape[0], 1, *images.shape[-2:])
        raise ValueError(f"mask shape {tuple(mask.shape)}: expected {expected}, one mask per image at its size")
    mask = (mask > 0.5).to(images.dtype)
    if not mask.any():
        raise ValueError("mask is empty: mark the region to edit with values > 0.5")
    return mask


def latent_mask(mask: torch.Tensor, scale: int) -> torch.Tensor:
    """Pixel mask → latent mask, dilated: a latent is regenerated when any pixel of its patch is in the mask."""
    return F.max_pool2d(mask, kernel_size=scale, stride=scale)


def blend_callback(
    mask: torch.Tensor, known: KnownLatents
) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The `denoise` callback: z ← m·z + (1 − m)·z_known(i)."""

    def blend(i: int, t: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        return mask * latents + (1 - mask) * known(i).to(latents)

    return blend


def paste(images: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Edited pixels inside the mask, the original ones outside."""
    return torch.where(mask.to(torch.bool), edited.to(images), images)
