"""Generating a folder of images from a saved model: PNGs, a grid and a table of what made each one.

A diffusion model samples with its loop (`medcf.generate.generate`); a GAN (model.backend=gan) in one generator
pass (`medcf.models.gan_generate`). Image i draws its noise from seed + i either way. A 3-D GAN writes NIfTI volumes
in its training data's units (a 3-D diffusion model's folder is medcf.volumes.to_folder's).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from medcf.atomic import atomic_folder, new_output_folder
from medcf.data import read_image, write_png
from medcf.data.dataset import resize_square
from medcf.data.nifti import display_slice
from medcf.data.volume import from_unit_range, write_new_volume
from medcf.figures import grid, save_figure
from medcf.generate import generate
from medcf.models import (
    Components,
    GanComponents,
    check_prompt_lengths,
    gan_generate,
    has_mask_condition,
    is_gan_folder,
    load_components,
    load_gan,
    vae_scale_factor,
)
from medcf.models.device import run_settings
from medcf.models.gan_components import gan_volume_units
from medcf.models.precision import inference_precision

GRID_IMAGES = 64  # a larger grid is unreadable, and would keep every image in memory


def generate_to_folder(
    model: str | Path | Components,
    prompts: Sequence[str],
    out: str | Path,
    *,
    num_inference_steps: int = 25,
    guidance_scale: float = 3.0,
    scheduler: str = "ddim",
    latent_drift: float | Sequence[float] = 0.0,
    mask: str | Path | None = None,
    batch_size: int = 8,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = True,
) -> Path:
    """Write `out/NNNN.png` per prompt (16-bit grey), `grid.png` and `prompts.csv`; image i uses noise seed+i,
    drawn on the CPU, so a seed gives the same noise on every device.

    Each batch is written as soon as it is sampled, so memory holds one batch whatever the number of images;
    `grid.png` shows the first GRID_IMAGES images. `out` still appears complete or not at all.
    """
    out = new_output_folder(out)
    if not prompts:
        raise ValueError("no prompts given; pass at least one --prompt")
    components = _load(model, device)
    check_prompt_lengths(components.tokenizer, list(prompts))
    options = {
        "num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale, "scheduler": scheduler,
        "latent_drift": latent_drift,
    }  # fmt: skip
    gan = isinstance(components, GanComponents)
    settings = {"backend": "gan"} if gan else {
        "steps": num_inference_steps, "guidance": guidance_scale, "scheduler": scheduler, "latent drift": latent_drift,
    }  # fmt: skip
    sample = partial(_gan_batch, components, prompts, mask, seed) if gan else partial(
        _batch, components, prompts, mask=mask, seed=seed, **options
    )  # fmt: skip
    write = _write_png
    if gan and components.generator.config.spatial_dims == 3:  # NIfTI volumes in the training data's units
        value_range, spacing = gan_volume_units(components)
        write = partial(_write_nifti, value_range=value_range, spacing_mm=spacing)
        settings |= {"value range": list(value_range), "spacing (mm)": list(spacing)}
    device = components.generator.device if gan else components.unet.device
    bar = tqdm(total=len(prompts), desc="medcf generate", unit="image", disable=not progress)
    with atomic_folder(out) as staging, bar, inference_precision(precision, device):
        shown = _write_batches(sample, write, prompts, staging, bar, batch_size=batch_size, seed=seed)
        settings |= {"batch size": batch_size, "seed": seed, **run_settings(device, precision)}
        (staging / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
        save_figure(grid(shown), staging / "grid.png")  # numbered like the files
    return out


def _load(model: str | Path | Components, device: str) -> Components | GanComponents:
    if isinstance(model, Components):
        return model
    return load_gan(model, device=device) if is_gan_folder(model) else load_components(model, device=device)


def _write_batches(
    sample: Callable[[int, int], torch.Tensor],
    write: Callable[[Path, int, torch.Tensor], tuple[str, np.ndarray]],
    prompts: Sequence[str],
    staging: Path,
    bar: tqdm,
    *,
    batch_size: int,
    seed: int,
) -> list[np.ndarray]:
    """Sample and write the files (`write`) and prompts.csv batch by batch; returns the first GRID_IMAGES display
    images."""
    shown: list[np.ndarray] = []
    with (staging / "prompts.csv").open("w", newline="") as table:  # newline="": the csv module ends rows itself
        writer = csv.writer(table)
        writer.writerow(["file", "prompt", "seed"])
        for start in range(0, len(prompts), batch_size):
            stop = min(start + batch_size, len(prompts))
            images = sample(start, stop)
            for index, image in zip(range(start, stop), images, strict=True):
                name, pixels = write(staging, index, image)
                writer.writerow([name, spreadsheet_text(prompts[index]), seed + index])
                if len(shown) < GRID_IMAGES:
                    shown.append(pixels.copy())  # a copy: the batch is freed
            bar.update(stop - start)
    return shown


def _write_png(folder: Path, index: int, image: torch.Tensor) -> tuple[str, np.ndarray]:
    """folder/NNNN.png (16-bit grey) of an image (C, H, W) in [-1, 1]; returns its name and display pixels."""
    pixels = ((image.mean(dim=0) + 1) / 2).clamp(0, 1).numpy()  # (H, W) display [0, 1]
    write_png(folder / f"{index:04d}.png", pixels)
    return f"{index:04d}.png", pixels


def _write_nifti(
    folder: Path, index: int, volume: torch.Tensor, *, value_range: tuple[float, float], spacing_mm: tuple[float, ...]
) -> tuple[str, np.ndarray]:
    """folder/NNNN.nii.gz of a volume (1, X, Y, Z) in [-1, 1] (RAS+), in `value_range`'s units (e.g. HU) on the
    training voxel grid; returns its name and its central axial plane for display (medcf.data.nifti's rule)."""
    write_new_volume(folder / f"{index:04d}.nii.gz", from_unit_range(volume[0], value_range).numpy(), spacing_mm)
    display = ((volume[0].clamp(-1, 1) + 1) / 2).numpy()  # the value range as the window
    return f"{index:04d}.nii.gz", display_slice(display[:, :, display.shape[2] // 2])


@torch.no_grad()
def _batch(components: Components, prompts, start: int, stop: int, *, mask, seed: int, **options) -> torch.Tensor:
    """Images start..stop-1, each from its own seeded noise, so image i is the same whatever the batch size."""
    unet, vae_scale = components.unet, vae_scale_factor(components)
    side = unet.config.sample_size
    noise = torch.stack(
        [
            torch.randn((unet.config.out_channels, side, side), generator=torch.Generator().manual_seed(seed + index))
            for index in range(start, stop)
        ]
    )
    masks = _masks(mask, has_mask_condition(components), side * vae_scale, stop - start)
    generator = torch.Generator().manual_seed(seed + start)  # stochastic samplers (DDPM) draw from it
    images = generate(components, list(prompts[start:stop]), latents=noise, generator=generator, mask=masks, **options)
    return images.float().cpu()


def _gan_batch(gan: GanComponents, prompts, mask, seed: int, start: int, stop: int) -> torch.Tensor:
    """GAN images (or volumes) start..stop-1, image i from noise z drawn with seed + i (one generator pass)."""
    config = gan.generator.config
    if config.spatial_dims == 3 and (mask is not None or gan.mask_conditioning):
        raise ValueError("a 3-D GAN generates without --mask here; a mask-conditioned one from Python (gan_generate)")
    draws = [torch.Generator().manual_seed(seed + index) for index in range(start, stop)]
    latents = torch.stack([torch.randn(config.latent_dim, generator=draw) for draw in draws])
    masks = _masks(mask, gan.mask_conditioning, config.sample_size[0], stop - start)
    return gan_generate(gan, list(prompts[start:stop]), latents=latents, mask=masks).float().cpu()


def _masks(mask: str | Path | None, conditioned: bool, side: int, count: int) -> torch.Tensor | None:
    """The --mask image at `side` px, repeated `count` times, for a mask-conditioned model; refused otherwise."""
    if not conditioned:
        if mask is not None:
            raise ValueError(f"{mask}: this model takes no mask; drop --mask or use a mask-conditioned model")
        return None
    if mask is None:
        raise ValueError("this model is mask-conditioned; pass --mask with a mask image (white = inside)")
    pixels = torch.from_numpy((read_image(mask).values > 0).astype("float32"))
    return resize_square(pixels, side, nearest=True)[None, None].repeat(count, 1, 1, 1)


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """`text` for a CSV cell that a spreadsheet shows as text: a leading formula character gets a quote before it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
