"""Pixels ↔ VAE latents. The VAE scaling factor is applied here and nowhere else.

Scaling rule (Rombach et al. 2022, LDM §4.3): latents are multiplied by `vae.config.scaling_factor` so they
have roughly unit variance (SD: 0.18215); a from-scratch VAE carries 1.0 until its training measures
1/std(latents). Grey rule for RGB VAEs (Stable Diffusion, in_channels 3): a grey image is replicated to three
identical channels on encode, and a decoded RGB image is averaged back to one channel when `channels=1`.
"""

from __future__ import annotations

import torch

from medcf.models.components import Components


def encode_images(
    components: Components,
    pixel_values: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    sample: bool = True,
) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] → scaled latents (B, 4, H/f, W/f); `sample=False` takes the posterior mean."""
    vae_channels = components.vae.config.in_channels
    channels = pixel_values.shape[1]
    if channels == 1 and vae_channels == 3:
        pixel_values = pixel_values.repeat(1, 3, 1, 1)  # grey → RGB: three identical channels
    elif channels != vae_channels:
        raise ValueError(f"pixel_values has {channels} channels; this VAE takes {vae_channels} (or 1 for an RGB VAE)")
    pixel_values = pixel_values.to(components.vae.device, components.vae.dtype)
    posterior = components.vae.encode(pixel_values).latent_dist
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
