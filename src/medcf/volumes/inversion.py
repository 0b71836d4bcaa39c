"""DDIM inversion of volume latents (Song et al. 2021; Mokady et al. 2023, §3): medcf.inversion's steps on 5-D latents.

The deterministic DDIM step (η = 0), z_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev)·ε̂ with x̂₀ = (z_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, is
run backwards from t = 0 upward, approximating ε̂(z_t, t) by ε̂(z_prev, t). Latent Drift (Yeganeh et al. 2025,
Eq. 4) is undone in the order it was applied: δ is subtracted before every inverse step and from z_T.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medcf.inversion import ddim_inversion_trajectory, ddim_invert
from medcf.models import Components


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
    _check_volume_latents(latents, prompts)
    options = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale}
    return ddim_invert(components, latents, prompts, latent_drift=latent_drift, **options)


def volume_inversion_trajectory(
    components: Components,
    latents: torch.Tensor,
    prompts: list[str],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 1.0,
    latent_drift: float | Sequence[float] = 0.0,
    strength: float = 1.0,
    mask: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The DDIM sampler's states in reverse, [z₀, …, z_k], k = round(strength · steps), δ included: regenerating
    from element k over the sampler's last k timesteps walks back to z₀ (`medcf.inversion`'s loop on 5-D latents);
    a mask-conditioned model takes `mask` (B, 1, X, Y, Z)."""
    _check_volume_latents(latents, prompts)
    options = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale, "strength": strength,
               "mask": mask}  # fmt: skip
    return ddim_inversion_trajectory(components, latents, prompts, latent_drift=latent_drift, **options)


def _check_volume_latents(latents: torch.Tensor, prompts: list[str]) -> None:
    if len(prompts) != len(latents) or latents.dim() != 5:
        raise ValueError(
            f"latents {tuple(latents.shape)} for {len(prompts)} prompts: give (B, C, x, y, z), one per prompt"
        )
