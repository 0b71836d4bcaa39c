"""Localized disease induction: regenerate only inside a mask from a prompt, zero-shot (Siddiqui et al. 2025).

The model never saw masks in training. RePaint (Lugmayr et al., CVPR 2022, Alg. 1) in latent space: after
each reverse step the latents outside the mask are replaced by the source noised to the same level along
the drifted forward process (fresh noise each step), so the inside is generated in harmony with a context
that stays the source's. `resample_steps` U > 1 re-noises one step and repeats it U − 1 more times, which
lets the inside absorb the context (RePaint's resampling, jump length 1). The output equals the input outside
the mask exactly (`blend.paste`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medcf.editing.blend import check_mask, latent_mask, paste
from medcf.generate import denoise, drift_tensor, mask_condition, sampling_scheduler
from medcf.models import Components, decode_latents, encode_images, encode_prompts, latent_channels, vae_scale_factor
from medcf.prompts import NULL_PROMPT


@torch.no_grad()
def inpaint(
    components: Components,
    images: torch.Tensor,
    masks: torch.Tensor,
    prompts: list[str],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
    latent_drift: float | Sequence[float] = 0.0,
    resample_steps: int = 1,
    condition_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] with the region `masks` (B, 1, H, W) = 1 regenerated from `prompts`."""
    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts for {len(images)} images: give one prompt per image")
    if resample_steps < 1:
        raise ValueError(f"resample_steps={resample_steps}: give 1 (no resampling) or more")
    unet = components.unet
    device, dtype = unet.device, unet.dtype
    edit_mask = check_mask(masks.to(images.device), images)
    source = encode_images(components, images.to(device, dtype), sample=False)
    inside = latent_mask(edit_mask, vae_scale_factor(components)).to(device, dtype)
    drift = drift_tensor(latent_drift, latent_channels(components)).to(device, dtype)
    condition = mask_condition(components, condition_mask, tuple(source.shape), tuple(images.shape[-2:]))
    sampler = sampling_scheduler(components, "ddim")
    sampler.set_timesteps(num_inference_steps, device=device)
    timesteps, alphas = sampler.timesteps, sampler.alphas_cumprod.to(device)
    cond = encode_prompts(components, prompts)
    null = encode_prompts(components, [NULL_PROMPT] * len(prompts))

    def noise() -> torch.Tensor:
        return torch.randn(source.shape, generator=generator, dtype=dtype).to(device)

    def known(level: int) -> torch.Tensor:  # the source at the noise level after step `level`
        return source if level == len(timesteps) else sampler.add_noise(source, noise() + drift, timesteps[level])

    latents = inside * (noise() + drift) + (1 - inside) * known(0)  # prior N(δ·1, I) inside
    for i in range(len(timesteps)):
        for repeat in range(resample_steps if i + 1 < len(timesteps) else 1):
            if repeat:  # RePaint: back to level t_i along q(z_t | z_s), δ undone first
                ratio = alphas[timesteps[i]] / alphas[timesteps[i + 1]]
                latents = ratio.sqrt() * (latents - drift) + (1 - ratio).sqrt() * noise()
            latents = denoise(
                components, latents, cond, null, sampler, timesteps[i : i + 1],
                guidance_scale=guidance_scale, drift=drift, condition=condition, generator=generator,
            )  # fmt: skip
            latents = inside * latents + (1 - inside) * known(i + 1)
    generated = decode_latents(components, latents, channels=images.shape[1]).to(images)
    return paste(images, generated, edit_mask)
