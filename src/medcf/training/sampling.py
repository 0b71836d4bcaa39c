"""Sample grids during training: fixed prompts and fixed noise, so successive grids show learning, not luck."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel

from medcf.data import ImageTextDataset, collate_items
from medcf.generate import generate, instruct_edit
from medcf.models import Components, is_volume_model
from medcf.training.record import write_sample_grid
from medcf.volumes.sampling import generate_volumes, mid_axial_slices


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
    sources: torch.Tensor | None = None  # (B, 1, R, R) source images of an InstructPix2Pix run's held-out pairs
    image_guidance_scale: float = 1.5


def sample_prompts(
    dataset: ImageTextDataset, count: int, *, with_masks: bool
) -> tuple[list[str], torch.Tensor | None]:
    """Prompts (and masks) of the first `count` images of `dataset`: held-out patients, when there are any."""
    count = min(count, len(dataset))
    if not with_masks:
        return [dataset.prompt(index) for index in range(count)], None
    batch = collate_items([dataset[index] for index in range(count)])
    return batch["prompt"], batch["mask"]


def sample_sources(dataset: ImageTextDataset, count: int) -> torch.Tensor | None:
    """The source images of the first `count` pairs of a pair dataset (their prompts are the instructions); None
    for a dataset of single images."""
    if "source_path" not in dataset.cohort.records:
        return None
    return collate_items([dataset[index] for index in range(min(count, len(dataset)))])["source_pixel_values"]


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
            if spec.sources is not None:  # each source beside its edit
                images += _edited(components, spec, spec.sources[start : start + batch_size], start, generator)
                continue
            if is_volume_model(components.unet):  # volumes, shown by their middle axial slices
                volumes = _volumes(components, spec, start, batch_size, generator, masks)
                images.append(mid_axial_slices(volumes))
                continue
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


def _volumes(
    components: Components,
    spec: SampleSpec,
    start: int,
    batch_size: int,
    generator: torch.Generator,
    masks: torch.Tensor | None,
) -> torch.Tensor:
    """Volumes (B, 1, X, Y, Z) of the spec's prompts start..start+batch_size (and masks), at the model's training
    patch size."""
    return generate_volumes(
        components, spec.prompts[start : start + batch_size], num_inference_steps=spec.num_inference_steps,
        guidance_scale=spec.guidance_scale, scheduler=spec.scheduler, latent_drift=spec.latent_drift,
        generator=generator, mask=masks,
    )  # fmt: skip


def _edited(
    components: Components, spec: SampleSpec, sources: torch.Tensor, start: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """[source, edit] of each pair, interleaved: the instruct model's edits of held-out sources."""
    edits = instruct_edit(
        components, sources, spec.prompts[start : start + len(sources)], num_inference_steps=spec.num_inference_steps,
        guidance_scale=spec.guidance_scale, image_guidance_scale=spec.image_guidance_scale,
        latent_drift=spec.latent_drift, scheduler=spec.scheduler, generator=generator,
    )  # fmt: skip
    return [image[None] for pair in zip(sources.to(edits), edits, strict=True) for image in pair]
