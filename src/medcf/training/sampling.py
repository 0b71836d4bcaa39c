"""Sample grids during training: fixed prompts and fixed noise, so successive grids show learning, not luck."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel

from medcf.data import ImageTextDataset, collate_items
from medcf.generate import generate
from medcf.models import Components
from medcf.training.record import write_sample_grid


@dataclass
class SampleSpec:
    """What every grid of a run shows: prompts (and masks), sampler settings, the noise seed."""

    prompts: list[str]
    masks: torch.Tensor | None  # (B, 1, H, W) for mask-conditioned models
    num_inference_steps: int
    guidance_scale: float
    scheduler: str
    latent_drift: float | list[float]
    seed: int


def sample_prompts(
    dataset: ImageTextDataset, count: int, *, with_masks: bool
) -> tuple[list[str], torch.Tensor | None]:
    """Prompts (and masks) of the first `count` images of `dataset`: held-out patients, when there are any."""
    count = min(count, len(dataset))
    if not with_masks:
        return [dataset.prompt(index) for index in range(count)], None
    batch = collate_items([dataset[index] for index in range(count)])
    return batch["prompt"], batch["mask"]


@torch.no_grad()
def write_samples(
    components: Components,
    spec: SampleSpec,
    path: Path,
    *,
    ema: EMAModel | None = None,
    parameters: Sequence[torch.nn.Parameter] = (),
    batch_size: int = 8,
) -> Path:
    """Generate the spec's images with the EMA weights (what will be saved) and write them as a grid PNG."""
    modules = (components.unet, components.text_encoder, components.vae)
    modes = [module.training for module in modules]
    for module in modules:
        module.eval()  # no dropout while sampling (BERT-style text encoders have it)
    if ema is not None:
        ema.store(parameters)
        ema.copy_to(parameters)
    device = components.unet.device
    generator = torch.Generator(device).manual_seed(spec.seed)
    images = []
    try:
        for start in range(0, len(spec.prompts), batch_size):
            masks = None if spec.masks is None else spec.masks[start : start + batch_size].to(device)
            images.append(
                generate(
                    components,
                    spec.prompts[start : start + batch_size],
                    num_inference_steps=spec.num_inference_steps,
                    guidance_scale=spec.guidance_scale,
                    scheduler=spec.scheduler,
                    latent_drift=spec.latent_drift,
                    generator=generator,
                    mask=masks,
                )
            )
    finally:
        if ema is not None:
            ema.restore(parameters)
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)
    return write_sample_grid(torch.cat(images), path)
