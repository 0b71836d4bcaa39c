"""DDIM inversion (Song et al. 2021; Mokady et al. 2023, §3): images → the initial noise that `generate` maps back.

The deterministic DDIM step (η = 0) at timestep t, z_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev)·ε̂ with
x̂₀ = (z_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, is inverted step by step from t = 0 upward, approximating ε̂(z_t, t) by
ε̂(z_prev, t). Latent Drift (Yeganeh et al. 2025, Eq. 4) is undone in the same order it was applied: the
sampler adds δ after every step and starts from N(δ·1, I), so inversion subtracts δ before every inverse step
and from z_T. The result is the `latents=` argument of `medcf.generate.generate` (noise, drift removed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from medcf.generate import drift_tensor, guided_output, mask_condition, sampling_scheduler
from medcf.models import Components, encode_prompts, latent_channels, vae_scale_factor
from medcf.prompts import NULL_PROMPT


@torch.no_grad()
def ddim_invert(
    components: Components,
    latents: torch.Tensor,
    prompts: list[str],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 1.0,
    latent_drift: float | Sequence[float] = 0.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Clean scaled latents z₀ (B, C, h, w) (`encode_images(..., sample=False)`) → noise for `generate(latents=)`.

    Use the same steps, guidance and δ to regenerate; guidance 1 (the prompt alone) inverts most faithfully.
    """
    trajectory = ddim_inversion_trajectory(
        components,
        latents,
        prompts,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        latent_drift=latent_drift,
        mask=mask,
    )
    return trajectory[-1] - latent_drift_like(latent_drift, components, trajectory[-1])  # sampling starts at noise + δ


@torch.no_grad()
def ddim_inversion_trajectory(
    components: Components,
    latents: torch.Tensor,
    prompts: list[str],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 1.0,
    latent_drift: float | Sequence[float] = 0.0,
    mask: torch.Tensor | None = None,
    strength: float = 1.0,
    regularize_noise: Callable[[torch.Tensor], torch.Tensor] | None = None,
    condition: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The sampler's states in reverse, [z₀, …, z_k], k = round(strength · steps), δ included as the sampler has it.

    Element j is the state the DDIM sampler holds before its last j steps: regenerating from element k over
    `timesteps[-k:]` walks back to z₀. These states are the pivots of null-text inversion. `regularize_noise`
    maps each ε̂ (B, C, h, w) before its inverse step (pix2pix-zero's noise regularisation, Parmar et al. 2023).
    `condition`: the U-Net's extra input channels at latent resolution as they are, for an InstructPix2Pix model the
    source latent E(x) (models/instruct.py); a mask-conditioned model's come from `mask` instead.
    """
    if len(prompts) != len(latents):
        raise ValueError(f"{len(prompts)} prompts for {len(latents)} latents: give one source prompt per image")
    unet = components.unet
    device, dtype = unet.device, unet.dtype
    drift = latent_drift_like(latent_drift, components, latents).to(device, dtype)
    vae_scale = vae_scale_factor(components)
    image_size = tuple(side * vae_scale for side in latents.shape[2:])  # (H, W), or (X, Y, Z) for volumes
    if condition is None:
        condition = mask_condition(components, mask, tuple(latents.shape), image_size)
    elif mask is not None:
        raise ValueError("give the mask or the condition channels, not both")
    uncond, cond = encode_prompts(components, [NULL_PROMPT] * len(prompts) + list(prompts)).chunk(2)
    sampler = sampling_scheduler(components, "ddim")  # the very timesteps and ᾱ the sampler will use
    sampler.set_timesteps(num_inference_steps, device=device)
    alphas_cumprod, final_alpha = sampler.alphas_cumprod.to(device), sampler.final_alpha_cumprod.to(device)
    stride = sampler.config.num_train_timesteps // num_inference_steps  # DDIMScheduler.step's prev_timestep
    steps = inversion_steps(num_inference_steps, strength)

    trajectory = [latents.to(device, dtype)]
    for t in sampler.timesteps.flip(0)[:steps]:  # ascending: the sampler's steps in reverse order
        latents = trajectory[-1] - drift  # undo the δ the sampler adds after this step
        alpha_prev = alphas_cumprod[t - stride] if t - stride >= 0 else final_alpha
        alpha_t = alphas_cumprod[t]
        output = guided_output(components, latents, t, cond, uncond, guidance_scale, condition)
        noise = _epsilon(output, latents, alpha_t, sampler.config.prediction_type)
        if regularize_noise is not None:
            noise = regularize_noise(noise)
        sample = (latents - (1 - alpha_prev).sqrt() * noise) / alpha_prev.sqrt()  # x̂₀
        trajectory.append(alpha_t.sqrt() * sample + (1 - alpha_t).sqrt() * noise)
    return trajectory


def latent_drift_like(
    latent_drift: float | Sequence[float], components: Components, latents: torch.Tensor
) -> torch.Tensor:
    """δ as (1, C, 1, …) broadcast over `latents` of any spatial rank: images (B, C, h, w), volumes (B, C, x, y, z)."""
    drift = drift_tensor(latent_drift, latent_channels(components))
    return drift.reshape(1, -1, *[1] * (latents.dim() - 2)).to(latents.device, latents.dtype)


def inversion_steps(num_inference_steps: int, strength: float) -> int:
    """How many of the sampler's steps an edit of `strength` ∈ (0, 1] re-runs (SDEdit's t₀ = strength·T)."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength={strength}: give a value in (0, 1]; 1 inverts all the way to noise")
    return max(1, round(num_inference_steps * strength))


def _epsilon(output: torch.Tensor, latents: torch.Tensor, alpha: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """ε̂ from the U-Net output; v-prediction: ε = √ᾱ·v + √(1−ᾱ)·z (Salimans & Ho 2022), z taken at level t."""
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return alpha.sqrt() * output + (1 - alpha).sqrt() * latents
    raise ValueError(f"prediction_type={prediction_type!r}: DDIM inversion supports epsilon and v_prediction")
