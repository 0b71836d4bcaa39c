"""Generating a folder of images from a saved model: PNGs, a grid and a table of what made each one."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from medcf.atomic import atomic_folder, new_output_folder
from medcf.data import read_image, write_png
from medcf.data.dataset import resize_square
from medcf.figures import grid, save_figure
from medcf.generate import generate
from medcf.models import Components, check_prompt_lengths, has_mask_condition, load_components, vae_scale_factor
from medcf.models.device import run_settings
from medcf.models.precision import inference_precision


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
) -> Path:
    """Write `out/NNNN.png` per prompt (16-bit grey), `grid.png` and `prompts.csv`; image i uses noise seed+i,
    drawn on the CPU, so a seed gives the same noise on every device."""
    out = new_output_folder(out)
    if not prompts:
        raise ValueError("no prompts given; pass at least one --prompt")
    components = model if isinstance(model, Components) else load_components(model, device=device)
    check_prompt_lengths(components.tokenizer, list(prompts))
    with inference_precision(precision, components.unet.device):
        images = [
            _batch(
                components,
                prompts,
                start,
                min(start + batch_size, len(prompts)),
                mask,
                seed,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                scheduler=scheduler,
                latent_drift=latent_drift,
            )
            for start in range(0, len(prompts), batch_size)
        ]
    pixels = ((torch.cat(images).mean(dim=1) + 1) / 2).clamp(0, 1).numpy()  # (N, H, W) display [0, 1]
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["file", "prompt", "seed"])
    with atomic_folder(out) as staging:
        for index, (image, prompt) in enumerate(zip(pixels, prompts, strict=True)):
            write_png(staging / f"{index:04d}.png", image)
            writer.writerow([f"{index:04d}.png", spreadsheet_text(prompt), seed + index])
        (staging / "prompts.csv").write_text(table.getvalue())
        settings = {
            "steps": num_inference_steps, "guidance": guidance_scale, "scheduler": scheduler,
            "latent drift": latent_drift, "batch size": batch_size, "seed": seed,
            **run_settings(components.unet.device, precision),
        }  # fmt: skip
        (staging / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
        save_figure(grid(list(pixels)), staging / "grid.png")  # numbered like the files
    return out


@torch.no_grad()
def _batch(components: Components, prompts, start: int, stop: int, mask, seed: int, **options) -> torch.Tensor:
    """Images start..stop-1, each from its own seeded noise, so image i is the same whatever the batch size."""
    unet, vae_scale = components.unet, vae_scale_factor(components)
    side = unet.config.sample_size
    noise = torch.stack(
        [
            torch.randn((unet.config.out_channels, side, side), generator=torch.Generator().manual_seed(seed + index))
            for index in range(start, stop)
        ]
    )
    masks = None
    if has_mask_condition(components):
        if mask is None:
            raise ValueError("this model is mask-conditioned; pass --mask with a mask image (white = inside)")
        pixels = torch.from_numpy((read_image(mask).values > 0).astype("float32"))
        masks = resize_square(pixels, side * vae_scale, nearest=True)[None, None].repeat(stop - start, 1, 1, 1)
    elif mask is not None:
        raise ValueError(f"{mask}: this model takes no mask; drop --mask or use a mask-conditioned model")
    generator = torch.Generator().manual_seed(seed + start)  # stochastic samplers (DDPM) draw from it
    images = generate(components, list(prompts[start:stop]), latents=noise, generator=generator, mask=masks, **options)
    return images.float().cpu()


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """`text` for a CSV cell that a spreadsheet shows as text: a leading formula character gets a quote before it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
