"""Pixels ↔ VAE latents. The VAE scaling factor is applied here and nowhere else.

Scaling rule (Rombach et al. 2022, LDM §4.3): latents are multiplied by `vae.config.scaling_factor` so they
have roughly unit variance (SD: 0.18215); a from-scratch VAE carries 1.0 until its training measures
1/std(latents). Grey rule for RGB VAEs (Stable Diffusion, in_channels 3): a grey image is replicated to three
identical channels on encode, and a decoded RGB image is averaged back to one channel when `channels=1`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from medcf.models.components import Components


def encode_images(
    components: Components,
    pixel_values: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    sample: bool = True,
) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] → scaled latents (B, 4, H/f, W/f); `sample=False` takes the posterior mean."""
    return scaled_latents(components, encode_posterior(components, pixel_values), generator=generator, sample=sample)


def encode_posterior(components: Components, pixel_values: torch.Tensor) -> DiagonalGaussianDistribution:
    """Images (B, C, H, W) in [-1, 1] → the VAE encoder's posterior q(z|x) (unscaled; its `.parameters` are
    the mean and log-variance stacked on the channel axis)."""
    vae_channels = components.vae.config.in_channels
    channels = pixel_values.shape[1]
    if channels == 1 and vae_channels == 3:
        pixel_values = pixel_values.repeat(1, 3, 1, 1)  # grey → RGB: three identical channels
    elif channels != vae_channels:
        raise ValueError(f"pixel_values has {channels} channels; this VAE takes {vae_channels} (or 1 for an RGB VAE)")
    pixel_values = pixel_values.to(components.vae.device, components.vae.dtype)
    return components.vae.encode(pixel_values).latent_dist


def scaled_latents(
    components: Components,
    posterior: DiagonalGaussianDistribution,
    *,
    generator: torch.Generator | None = None,
    sample: bool = True,
) -> torch.Tensor:
    """A draw from (or, `sample=False`, the mean of) the posterior, times the VAE scaling factor."""
    latents = posterior.sample(generator=generator) if sample else posterior.mode()
    return latents * components.vae.config.scaling_factor


def decode_latents(components: Components, latents: torch.Tensor, *, channels: int | None = None) -> torch.Tensor:
    """Scaled latents (B, 4, h, w) → images (B, C, f·h, f·w) in [-1, 1]; `channels=1` averages an RGB VAE to grey."""
    latents = latents.to(components.vae.device, components.vae.dtype)
    images = components.vae.decode(latents / components.vae.config.scaling_factor).sample.clamp(-1, 1)
    vae_channels = components.vae.config.out_channels
    if channels == 1 and vae_channels == 3:
        images = images.mean(dim=1, keepdim=True)  # RGB → grey: mean of the three channels
    elif channels not in (None, vae_channels):
        raise ValueError(f"channels={channels}: this VAE decodes {vae_channels} channels; pass None or 1")
    return images


def vae_scale_factor(components: Components) -> int:
    """Pixels per latent cell along each side: 2 per VAE downsampling block (diffusers' vae_scale_factor)."""
    return 2 ** (len(components.vae.config.block_out_channels) - 1)


def latent_channels(components: Components) -> int:
    """Channels of the latents z_t: the U-Net's output, which a mask-conditioned U-Net's input exceeds by one."""
    return components.unet.config.out_channels


def has_mask_condition(components: Components) -> bool:
    """True when the U-Net takes a mask channel beside the latents (DGM-VLC's hybrid condition)."""
    return components.unet.config.in_channels > components.unet.config.out_channels


def mask_latents(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks (B, 1, H, W) in {0, 1} → (B, 1, h, w) in [0, 1]: the fraction of each latent cell inside the mask.

    Area averaging rather than nearest sampling, so a lesion smaller than one latent cell (×4 or ×8 smaller
    than the image) still reaches the U-Net, weighted by how much of the cell it covers, and a boundary cell
    says how much of it is inside instead of flipping to 0 or 1 with the sampling grid.
    """
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask shape {tuple(mask.shape)}: expected (B, 1, H, W)")
    mask = mask.float()
    if mask.min() < 0 or mask.max() > 1:
        raise ValueError(f"mask values in [{mask.min():g}, {mask.max():g}]: expected {{0, 1}}; use (mask > 0).float()")
    return F.interpolate(mask, size=size, mode="area")
