"""DreamBooth's class images (Ruiz et al. 2023, §4.2): what the model draws for the class prompt before tuning.

The prior-preservation loss L = L_instance + λ·L_prior regresses the model on these samples of itself while
it learns the few instance images, so the class keeps its variety (no "language drift").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from medcf.generate import generate
from medcf.models import Components


@torch.no_grad()
def generate_class_images(
    components: Components,
    class_prompt: str,
    n: int,
    *,
    seed: int = 0,
    num_inference_steps: int = 25,
    guidance_scale: float = 3.0,
    batch_size: int = 8,
    channels: int | None = 1,
) -> torch.Tensor:
    """n samples of `class_prompt` → (n, C, H, W) in [-1, 1] on the CPU, the same for the same seed.

    `channels=1` (default) gives grey images, the channel count of medcf's training images: an RGB model's
    samples are averaged to grey (the grey rule of `medcf.models.latents`); None keeps the VAE's channels.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"n={n}, batch_size={batch_size}: both must be positive (train.num_class_images)")
    generator = torch.Generator(device=components.unet.device).manual_seed(seed)
    batches = []
    with _evaluation_mode(components):  # the initial model, without dropout, whatever a method switched on
        for start in range(0, n, batch_size):
            prompts = [class_prompt] * min(batch_size, n - start)
            batches.append(
                generate(
                    components,
                    prompts,
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale,
                    generator=generator,
                )
            )
    images = torch.cat(batches).cpu()
    if channels == 1 and images.shape[1] == 3:
        images = images.mean(dim=1, keepdim=True)  # RGB → grey: mean of the three channels
    elif channels not in (None, images.shape[1]):
        raise ValueError(f"channels={channels}: this VAE decodes {images.shape[1]} channels; pass None or 1")
    return images


@contextmanager
def _evaluation_mode(components: Components) -> Iterator[None]:
    """Every module in eval mode inside the block; each gets its own training flag back afterwards."""
    modules = [
        module for part in (components.vae, components.unet, components.text_encoder) for module in part.modules()
    ]
    flags = [module.training for module in modules]
    for module in modules:
        module.training = False
    try:
        yield
    finally:
        for module, flag in zip(modules, flags, strict=True):
            module.training = flag
