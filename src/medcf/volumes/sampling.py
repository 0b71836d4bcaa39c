"""Text-to-volume sampling: the loop of `medcf.generate` on 5-D latents (B, C, x, y, z).

Latent Drift (Yeganeh et al., CVPR 2025, Eq. 4) as in 2-D: z_T ~ N(δ·1, I) and z_{t-1} = Step(ε̂, z_t) + δ·1, δ a
scalar or one value per latent channel, broadcast over the three latent axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medcf.generate import denoise, drift_tensor, initial_latents, mask_condition, sampling_scheduler
from medcf.models import Components, decode_latents, encode_prompts, is_volume_model, latent_channels, vae_scale_factor
from medcf.prompts import NULL_PROMPT


def volume_drift(latent_drift: float | Sequence[float], channels: int) -> torch.Tensor:
    """δ as a (1, C, 1, 1, 1) tensor, broadcast over volume latents (B, C, x, y, z)."""
    return drift_tensor(latent_drift, channels).view(1, channels, 1, 1, 1)


def latent_shape(components: Components, count: int, size: Sequence[int] | None) -> tuple[int, ...]:
    """(B, C, x, y, z) of the latents of `count` volumes of `size` = (X, Y, Z) voxels (None: the U-Net's own)."""
    if not is_volume_model(components.unet):
        raise ValueError("this is a 2-D model; sample images with medcf.generate.generate")
    factor = vae_scale_factor(components)
    unet_factor = 2 ** (len(components.unet.config.block_out_channels) - 1)
    if size is None:
        return (count, latent_channels(components), *components.unet.config.sample_size)
    if len(size) != 3 or any(side % (factor * unet_factor) for side in size):
        raise ValueError(f"size={tuple(size)}: give (X, Y, Z) voxels, each a multiple of {factor * unet_factor}")
    return (count, latent_channels(components), *(side // factor for side in size))


@torch.no_grad()
def generate_volumes(
    components: Components,
    prompts: list[str],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
    scheduler: str = "ddim",
    generator: torch.Generator | None = None,
    latent_drift: float | Sequence[float] = 0.0,
    size: Sequence[int] | None = None,
    latents: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Prompts → volumes (B, 1, X, Y, Z) in [-1, 1]; `size` (X, Y, Z) defaults to the model's training patch,
    `latents` (B, C, x, y, z) fixes the initial noise z_T; `mask` (B, 1, X, Y, Z) in {0, 1} is required by, and
    only by, mask-conditioned models (DGM-VLC's hybrid condition)."""
    if isinstance(prompts, str):
        raise ValueError(f"prompts={prompts!r}: pass a list of strings, e.g. [{prompts!r}]")
    unet = components.unet
    shape = latent_shape(components, len(prompts), size)
    factor = vae_scale_factor(components)
    condition = mask_condition(components, mask, shape, tuple(side * factor for side in shape[2:]))
    drift = volume_drift(latent_drift, shape[1]).to(unet.device, unet.dtype)
    sampler = sampling_scheduler(components, scheduler)
    sampler.set_timesteps(num_inference_steps, device=unet.device)

    # 1. Encode the null prompt and the prompts: [unconditional, conditional] (Ho & Salimans 2022)
    uncond, cond = encode_prompts(components, [NULL_PROMPT] * len(prompts) + list(prompts)).chunk(2)

    # 2. Prior z_T ~ N(δ·1, I) (Latent Drift), scaled to the sampler's initial noise level
    latents = initial_latents(components, shape, sampler, drift, generator, latents)

    # 3. Denoise with classifier-free guidance, adding δ after every step (Eq. 4)
    options = {"guidance_scale": guidance_scale, "drift": drift, "generator": generator, "condition": condition}
    latents = denoise(components, latents, cond, uncond, sampler, sampler.timesteps, **options)

    # 4. Decode
    return decode_latents(components, latents)


def mid_axial_slices(volumes: torch.Tensor) -> torch.Tensor:
    """Volumes (B, C, X, Y, Z) in RAS+ order → their middle axial slices (B, C, Y, X) for grids, shown as
    medcf.data.nifti.display_slice shows them: anterior up, the patient's right on the left (radiological)."""
    axial = volumes[..., volumes.shape[-1] // 2]  # (B, C, X, Y)
    return axial.transpose(-1, -2).flip(-2, -1)
