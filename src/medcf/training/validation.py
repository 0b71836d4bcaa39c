"""Held-out denoising loss: the training objective on patients the model never saw, at fixed noise.

Same images, same noise and the same evenly spaced timesteps for every model, so two runs (or two checkpoints)
compare pairwise: a lower number is a better denoiser of unseen images. Prompts are the clinical prompts (image
pairs: the instructions, with the source image), never dropped, and there is no Latent Drift, so runs with
different δ stay comparable.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset

from medcf.data import collate_items
from medcf.models import Components, encode_images, encode_prompts, has_mask_condition, mask_latents
from medcf.models.instruct import source_latents
from medcf.training.loss import diffusion_loss


@torch.no_grad()
def held_out_loss(
    components: Components,
    dataset,
    *,
    max_images: int = 128,
    num_timesteps: int = 8,
    batch_size: int = 16,
    seed: int = 0,
) -> float:
    """Mean loss over min(len(dataset), max_images) images × `num_timesteps` timesteps spread over [0, T)."""
    if len(dataset) == 0:
        raise ValueError("held_out_loss: the held-out dataset is empty; set data.holdout_fraction > 0")
    device = next(components.unet.parameters()).device
    scheduler = components.scheduler
    spread = torch.linspace(0, scheduler.config.num_train_timesteps - 1, num_timesteps).round().long()
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(Subset(dataset, range(min(len(dataset), max_images))), batch_size, collate_fn=collate_items)
    total, count = 0.0, 0
    for batch in loader:
        pixel_values = batch["pixel_values"].to(device)
        latents = encode_images(components, pixel_values, generator=generator)
        embeds = encode_prompts(components, list(batch["prompt"]))
        condition = None
        if has_mask_condition(components):
            condition = mask_latents(batch["mask"].to(device), tuple(latents.shape[2:]))
        if "source_pixel_values" in batch:  # image pairs: the source, never dropped
            condition = source_latents(components, batch["source_pixel_values"].to(device))
        for timestep in spread.tolist():
            noise = torch.randn(latents.shape, generator=generator).to(latents)
            timesteps = torch.full((len(latents),), timestep, device=device)
            loss = diffusion_loss(
                components.unet, scheduler, latents, embeds, noise=noise, timesteps=timesteps, condition=condition
            )
            total, count = total + float(loss.sum()), count + len(loss)
    return total / count
