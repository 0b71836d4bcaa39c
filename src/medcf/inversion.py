"""DDIM inversion (Song et al. 2021; Mokady et al. 2023, §3): images → the initial noise that `generate` maps back.

The deterministic DDIM step (η = 0) at timestep t, z_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev)·ε̂ with
x̂₀ = (z_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, is inverted step by step from t = 0 upward, approximating ε̂(z_t, t) by
ε̂(z_prev, t). Latent Drift (Yeganeh et al. 2025, Eq. 4) is undone in the same order it was applied: the
sampler adds δ after every step and starts from N(δ·1, I), so inversion subtracts δ before every inverse step
and from z_T. The result is the `latents=` argument of `medcf.generate.generate` (noise, drift removed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medcf.generate import drift_tensor, mask_condition, sampling_scheduler
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
    if len(prompts) != len(latents):
        raise ValueError(f"{len(prompts)} prompts for {len(latents)} latents: give one source prompt per image")
    unet = components.unet
    device, dtype = unet.device, unet.dtype
    channels = latent_channels(components)
    drift = drift_tensor(latent_drift, channels).to(device, dtype)
    vae_scale = vae_scale_factor(components)
    image_size = (latents.shape[-2] * vae_scale, latents.shape[-1] * vae_scale)
    condition = mask_condition(components, mask, tuple(latents.shape), image_size)
    embeds = encode_prompts(components, [NULL_PROMPT] * len(prompts) + list(prompts))
    sampler = sampling_scheduler(components, "ddim")  # the very timesteps and ᾱ the sampler will use
    sampler.set_timesteps(num_inference_steps, device=device)
    alphas_cumprod, final_alpha = sampler.alphas_cumprod.to(device), sampler.final_alpha_cumprod.to(device)
    stride = sampler.config.num_train_timesteps // num_inference_steps  # DDIMScheduler.step's prev_timestep

    latents = latents.to(device, dtype)
    for t in sampler.timesteps.flip(0):  # ascending: the sampler's steps in reverse order
        latents = latents - drift  # undo the δ the sampler adds after this step
        alpha_prev = alphas_cumprod[t - stride] if t - stride >= 0 else final_alpha
        alpha_t = alphas_cumprod[t]
        model_input = torch.cat([latents] * 2)
        if condition is not None:
            model_input = torch.cat([model_input, condition], dim=1)
        output = unet(model_input, t, encoder_hidden_states=embeds).sample
        uncond, cond = output.chunk(2)
        output = uncond + guidance_scale * (cond - uncond)
        noise = _epsilon(output, latents, alpha_t, sampler.config.prediction_type)
        sample = (latents - (1 - alpha_prev).sqrt() * noise) / alpha_prev.sqrt()  # x̂₀
        latents = alpha_t.sqrt() * sample + (1 - alpha_t).sqrt() * noise
    return latents - drift  # the sampler starts from noise + δ


def _epsilon(output: torch.Tensor, latents: torch.Tensor, alpha: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """ε̂ from the U-Net output; v-prediction: ε = √ᾱ·v + √(1−ᾱ)·z (Salimans & Ho 2022), z taken at level t."""
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return alpha.sqrt() * output + (1 - alpha).sqrt() * latents
    raise ValueError(f"prediction_type={prediction_type!r}: DDIM inversion supports epsilon and v_prediction")
