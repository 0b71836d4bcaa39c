"""The denoising loss of latent diffusion, with Latent Drift, v-prediction and Min-SNR weighting.

L_simple (Ho et al. 2020): ‖target − ε̂_θ(z_t, t, c)‖² with z_t = √ᾱ_t z_0 + √(1−ᾱ_t) ε.

Latent Drift in training (Yeganeh et al. 2025, §3.3): the forward noise is ε_δ = ε + δ·1, so the forward
marginal ends at N(δ·1, I), the prior the sampler starts from. The regression target is ε_δ ("shifted",
default) or ε ("plain"). We default to "shifted" because it keeps the ε-prediction identity of the drifted
forward process: x̂_0 = (z_t − √(1−ᾱ_t) ε̂)/√ᾱ_t stays an unbiased estimate of z_0, so δ changes where
sampling starts and walks, not what the denoiser believes the image is. "plain" makes the network explain
√(1−ᾱ_t)·δ as image content (a t-dependent brightness bias); it is the third-party reimplementation's choice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel

PREDICTION_TYPES = ("epsilon", "v_prediction")
DRIFT_TARGETS = ("shifted", "plain")


def diffusion_loss(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    timesteps: torch.Tensor | None = None,
    latent_drift: torch.Tensor | None = None,
    drift_target: str = "shifted",
    snr_gamma: float = 0.0,
    condition: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-sample loss (B,) for clean scaled latents z_0 (B, C, h, w) (volumes: (B, C, x, y, z)) and prompts (B, L, D).

    `latent_drift` is δ as (1, C, 1, 1) (volumes: (1, C, 1, 1, 1); `medcf.generate.drift_tensor`); `condition`
    (B, k, h, w) is concatenated to the noisy latents (mask conditioning); `weights` (B, 1, h, w) weight the squared
    error of each latent pixel (a weighted mean per sample; None = equal). The prediction type is the scheduler's.
    """
    prediction_type = scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type={prediction_type!r}: train with one of {PREDICTION_TYPES}")
    if drift_target not in DRIFT_TARGETS:
        raise ValueError(f"drift_target={drift_target!r}: choose one of {DRIFT_TARGETS}")
    batch_size = latents.shape[0]
    if noise is None:
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if timesteps is None:
        timesteps = torch.randint(
            0, scheduler.config.num_train_timesteps, (batch_size,), generator=generator, device=latents.device
        )

    # 1. Forward process with drifted noise ε_δ = ε + δ·1
    drifted = noise if latent_drift is None else noise + latent_drift.to(noise)
    noisy_latents = scheduler.add_noise(latents, drifted, timesteps)

    # 2. Regression target
    target_noise = drifted if drift_target == "shifted" else noise
    target = target_noise
    if prediction_type == "v_prediction":  # v = √ᾱ_t ε − √(1−ᾱ_t) z_0 (Salimans & Ho 2022)
        target = scheduler.get_velocity(latents, target_noise, timesteps)

    # 3. Predict
    model_input = noisy_latents if condition is None else torch.cat([noisy_latents, condition.to(latents)], dim=1)
    prediction = unet(model_input, timesteps, encoder_hidden_states=encoder_hidden_states).sample

    # 4. Per-sample mean squared error (weighted over latent pixels if asked), optionally Min-SNR-γ weighted
    squared = F.mse_loss(prediction.float(), target.float(), reduction="none")
    if weights is None:
        loss = squared.flatten(1).mean(dim=1)  # images, volumes
    else:
        weights = weights.float().expand_as(squared)
        loss = (weights * squared).flatten(1).sum(dim=1) / weights.flatten(1).sum(dim=1)
    if snr_gamma > 0:
        loss = loss * min_snr_weights(scheduler, timesteps, snr_gamma).to(loss)
    return loss


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, snr_gamma: float) -> torch.Tensor:
    """Min-SNR-γ weights (Hang et al. 2023, Eq. 8–9): min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR + 1) for v."""
    alphas_cumprod = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alphas_cumprod / (1 - alphas_cumprod)  # SNR(t) = ᾱ_t / (1 − ᾱ_t)
    clipped = torch.clamp(snr, max=snr_gamma)
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr
