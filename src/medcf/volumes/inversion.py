"""DDIM inversion of volume latents (Song et al. 2021; Mokady et al. 2023, §3): medcf.inversion's steps on 5-D latents.

The deterministic DDIM step (η = 0), z_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev)·ε̂ with x̂₀ = (z_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, is
run backwards from t = 0 upward, approximating ε̂(z_t, t) by ε̂(z_prev, t). Latent Drift (Yeganeh et al. 2025,
Eq. 4) is undone in the order it was applied: δ is subtracted before every inverse step and from z_T.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medcf.generate import guided_output, sampling_scheduler
from medcf.inversion import inversion_steps
from medcf.models import Components, encode_prompts, latent_channels
from medcf.prompts import NULL_PROMPT
from medcf.volumes.sampling import volume_drift


@torch.no_grad()
def ddim_invert_volumes(
    components: Components,
    latents: torch.Tensor,
    prompts: list[str],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 1.0,
    latent_drift: float | Sequence[float] = 0.0,
) -> torch.Tensor:
    """Clean scaled latents z₀ (B, C, x, y, z) (`encode_images(..., sample=False)`) → noise for
    `generate_volumes(latents=)`; regenerate with the same steps, guidance and δ."""
    options = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale}
    trajectory = volume_inversion_trajectory(components, latents, prompts, latent_drift=latent_drift, **options)
    return trajectory[-1] - volume_drift(latent_drift, latent_channels(components)).to(trajectory[-1])


@torch.no_grad()
def volume_inversion_trajectory(
    components: Components,
    latents: torch.Tensor,
    prompts: list[str],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 1.0,
    latent_drift: float | Sequence[float] = 0.0,
    strength: float = 1.0,
) -> list[torch.Tensor]:
    """The DDIM sampler's states in reverse, [z₀, …, z_k], k = round(strength · steps), δ included: regenerating
    from element k over the sampler's last k timesteps walks back to z₀."""
    if len(prompts) != len(latents) or latents.dim() != 5:
        raise ValueError(
            f"latents {tuple(latents.shape)} for {len(prompts)} prompts: give (B, C, x, y, z), one per prompt"
        )
    unet = components.unet
    device, dtype = unet.device, unet.dtype
    drift = volume_drift(latent_drift, latent_channels(components)).to(device, dtype)
    uncond, cond = encode_prompts(components, [NULL_PROMPT] * len(prompts) + list(prompts)).chunk(2)
    sampler = sampling_scheduler(components, "ddim")  # the very timesteps and ᾱ the sampler will use
    sampler.set_timesteps(num_inference_steps, device=device)
    alphas_cumprod, final_alpha = sampler.alphas_cumprod.to(device), sampler.final_alpha_cumprod.to(device)
    stride = sampler.config.num_train_timesteps // num_inference_steps  # DDIMScheduler.step's prev_timestep

    trajectory = [latents.to(device, dtype)]
    for t in sampler.timesteps.flip(0)[: inversion_steps(num_inference_steps, strength)]:
        # 1. Undo the δ the sampler adds after this step
        latents = trajectory[-1] - drift
        alpha_prev = alphas_cumprod[t - stride] if t - stride >= 0 else final_alpha
        alpha_t = alphas_cumprod[t]
        # 2. Predict ε̂ at level t from z_prev
        output = guided_output(components, latents, t, cond, uncond, guidance_scale)
        noise = output
        if sampler.config.prediction_type == "v_prediction":  # ε = √ᾱ·v + √(1−ᾱ)·z (Salimans & Ho 2022)
            noise = alpha_t.sqrt() * output + (1 - alpha_t).sqrt() * latents
        # 3. One inverse DDIM step: x̂₀ from z_prev, then forward to level t
        sample = (latents - (1 - alpha_prev).sqrt() * noise) / alpha_prev.sqrt()
        trajectory.append(alpha_t.sqrt() * sample + (1 - alpha_t).sqrt() * noise)
    return trajectory
