"""Counterfactual image editing: the same image under another prompt (Latent Drift, Yeganeh et al. 2025, §3.3).

Two engines, both with Latent Drift δ and an optional mask that keeps everything outside it unchanged:

- "sdedit" (Meng et al., ICLR 2022): noise the image to t₀ = strength·T along the drifted forward process
  (z_t = √ᾱ·z₀ + √(1−ᾱ)·(ε + δ), the noise the model was trained on) and denoise with the target prompt.
  Stochastic: the seed picks ε.
- "inversion": DDIM-invert with the source prompt (guidance 1) up to t₀, then regenerate with the target
  prompt. Deterministic. With `null_text=True` the null-prompt embedding of every step is first optimised so
  that the source prompt at the edit's guidance retraces the inversion (Mokady et al., CVPR 2023): without
  it, guidance > 1 drifts away from the inverted path and the counterfactual loses the patient's anatomy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medcf.editing.blend import blend_callback, check_mask, latent_mask, paste
from medcf.editing.null_text import null_text_embeddings
from medcf.generate import denoise, drift_tensor, mask_condition, sampling_scheduler
from medcf.inversion import ddim_inversion_trajectory, inversion_steps
from medcf.models import Components, decode_latents, encode_images, encode_prompts, latent_channels, vae_scale_factor
from medcf.prompts import NULL_PROMPT

ENGINES = ("inversion", "sdedit")


@torch.no_grad()
def counterfactual(
    components: Components,
    images: torch.Tensor,
    source_prompts: list[str],
    target_prompts: list[str],
    *,
    engine: str = "inversion",
    strength: float = 0.8,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
    latent_drift: float | Sequence[float] = 0.0,
    null_text: bool = False,
    null_text_steps: int = 10,
    mask: torch.Tensor | None = None,
    condition_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] described by `source_prompts` → the same images under `target_prompts`.

    `strength` ∈ (0, 1] is the fraction of the sampler's steps re-run (1: from pure noise). `mask` (B, 1, H, W)
    marks the region allowed to change; outside it the output equals the input exactly. `condition_mask` is
    the extra input of a mask-conditioned model (DGM-VLC), not an edit region.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: choose one of {ENGINES}")
    if not len(images) == len(source_prompts) == len(target_prompts):
        raise ValueError(
            f"{len(images)} images, {len(source_prompts)} source and {len(target_prompts)} target prompts"
        )
    unet = components.unet
    edit_mask = None if mask is None else check_mask(mask.to(images.device), images)
    latents = encode_images(components, images.to(unet.device, unet.dtype), sample=False)
    drift = drift_tensor(latent_drift, latent_channels(components)).to(unet.device, unet.dtype)
    condition = mask_condition(components, condition_mask, tuple(latents.shape), tuple(images.shape[-2:]))
    steps = inversion_steps(num_inference_steps, strength)
    if engine == "sdedit":
        start, known, nulls = _sdedit_start(components, latents, drift, num_inference_steps, steps, generator)
    else:
        trajectory = ddim_inversion_trajectory(
            components,
            latents,
            source_prompts,
            num_inference_steps=num_inference_steps,
            latent_drift=latent_drift,
            mask=condition_mask,
            strength=strength,
        )
        start, known = trajectory[-1], lambda i: trajectory[-2 - i]
        nulls = encode_prompts(components, [NULL_PROMPT] * len(images))
        if null_text:
            nulls = null_text_embeddings(
                components, trajectory, source_prompts, guidance_scale=guidance_scale, drift=drift,
                num_inference_steps=num_inference_steps, condition=condition, inner_steps=null_text_steps,
            )  # fmt: skip
    sampler = sampling_scheduler(components, "ddim")
    sampler.set_timesteps(num_inference_steps, device=unet.device)
    callback = None
    if edit_mask is not None:
        callback = blend_callback(latent_mask(edit_mask, vae_scale_factor(components)).to(start), known)
    edited = denoise(
        components, start, encode_prompts(components, target_prompts), nulls, sampler, sampler.timesteps[-steps:],
        guidance_scale=guidance_scale, drift=drift, condition=condition, generator=generator, callback=callback,
    )  # fmt: skip
    edited = decode_latents(components, edited, channels=images.shape[1]).to(images)
    return edited if edit_mask is None else paste(images, edited, edit_mask)


def _sdedit_start(
    components: Components,
    latents: torch.Tensor,
    drift: torch.Tensor,
    num_inference_steps: int,
    steps: int,
    generator: torch.Generator | None,
):
    """SDEdit's z_t₀ and, for masked edits, the source noised to the level reached after each step."""
    sampler = sampling_scheduler(components, "ddim")
    sampler.set_timesteps(num_inference_steps, device=latents.device)
    timesteps = sampler.timesteps[-steps:]
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(latents.device) + drift

    def known(i: int) -> torch.Tensor:
        if i + 1 == len(timesteps):
            return latents
        return sampler.add_noise(latents, noise, timesteps[i + 1 : i + 2])

    start = sampler.add_noise(latents, noise, timesteps[:1])
    return start, known, encode_prompts(components, [NULL_PROMPT] * len(latents))
