"""Null-text inversion (Mokady et al., CVPR 2023, Alg. 1): per-step null embeddings that make guided DDIM
sampling with the source prompt retrace the DDIM-inversion trajectory.

For each step i, from the noisiest: starting at the current z̄, optimise ∅_i so that
Step(ε̂_cfg(z̄, t_i; c, ∅_i), z̄) + δ ≈ z*_{i+1} (the pivot), then advance z̄ with the optimised ∅_i. Only the
embeddings are optimised; the U-Net stays frozen. The paper's schedule: Adam, lr 1e-2·(1 − i/(2N)) here
scaled to N steps, at most `inner_steps` iterations, stop early below ε + 2e-5·i.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from medcf.generate import guided_output, sampling_scheduler
from medcf.models import Components, encode_prompts
from medcf.prompts import NULL_PROMPT

EARLY_STOP = 1e-5  # Mokady et al.: stop a step's optimisation once the loss is below 1e-5 + 2e-5·i


def null_text_embeddings(
    components: Components,
    trajectory: list[torch.Tensor],
    prompts: list[str],
    *,
    guidance_scale: float,
    drift: torch.Tensor,
    num_inference_steps: int,
    condition: torch.Tensor | None = None,
    inner_steps: int = 10,
    learning_rate: float = 1e-2,
) -> list[torch.Tensor]:
    """One optimised null embedding (B, L, D) per regeneration step, for `trajectory` from
    `ddim_inversion_trajectory` (its last element is where regeneration starts)."""
    sampler = sampling_scheduler(components, "ddim")
    sampler.set_timesteps(num_inference_steps, device=components.unet.device)
    steps = len(trajectory) - 1
    with torch.no_grad():
        cond = encode_prompts(components, prompts)
        null = encode_prompts(components, [NULL_PROMPT] * len(prompts))
    latents, nulls = trajectory[-1].detach(), []
    with _frozen(components.unet):
        for i, t in enumerate(sampler.timesteps[-steps:]):
            pivot = trajectory[-2 - i].detach()
            null = null.detach().clone().requires_grad_(True)
            optimizer = torch.optim.Adam([null], lr=learning_rate * (1 - i / (2 * steps)))
            for _ in range(inner_steps):
                with torch.enable_grad():
                    output = guided_output(components, latents, t, cond, null, guidance_scale, condition)
                    loss = F.mse_loss(sampler.step(output, t, latents).prev_sample + drift, pivot)
                    if loss.item() < EARLY_STOP + 2e-5 * i:
                        break
                    optimizer.zero_grad()
                    loss.backward()
                optimizer.step()
            null = null.detach()
            nulls.append(null)
            with torch.no_grad():
                output = guided_output(components, latents, t, cond, null, guidance_scale, condition)
                latents = sampler.step(output, t, latents).prev_sample + drift
    return nulls


@contextmanager
def _frozen(module: torch.nn.Module):
    """Gradients flow through `module` to its input only; its parameters' flags are restored after."""
    flags = [parameter.requires_grad for parameter in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(module.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)
