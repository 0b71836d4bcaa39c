"""Folders of volumes for people: NIfTI files in the training data's units, a montage of slices, settings, report.

A montage shows a volume as three orthogonal planes through its centre (axial, coronal, sagittal; radiological
display: the patient's right on the image's left), windowed to the model's value range, e.g. HU.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from medcf.atomic import atomic_folder, new_output_folder
from medcf.data.volume import from_unit_range, read_volume, write_new_volume
from medcf.figures import grid, save_figure
from medcf.models import Components, check_prompt_lengths, load_components, vae_scale_factor
from medcf.models.device import run_settings
from medcf.models.precision import inference_precision
from medcf.report import Section, write_report
from medcf.volumes.files import model_value_range
from medcf.volumes.sampling import generate_volumes

PLANES = ("axial", "coronal", "sagittal")


def planes(volume: np.ndarray) -> dict[str, np.ndarray]:
    """The three central planes of a RAS+ volume (X, Y, Z) for display: axial anterior up, coronal and sagittal
    superior up; axial and coronal with the patient's right on the left (medcf.data.nifti's display rule)."""
    x, y, z = (side // 2 for side in volume.shape)
    return {
        "axial": volume[:, :, z].T[::-1, ::-1],
        "coronal": volume[:, y, :].T[::-1, ::-1],
        "sagittal": volume[x, :, :].T[::-1, ::-1],
    }


def display(volume: torch.Tensor) -> np.ndarray:
    """A model volume (X, Y, Z) in [-1, 1] → display values in [0, 1] (the value range as the window)."""
    return ((volume.float().clamp(-1, 1) + 1) / 2).numpy()


def generate_volumes_to_folder(
    model: str | Path | Components,
    prompts: Sequence[str],
    out: str | Path,
    *,
    num_inference_steps: int = 25,
    guidance_scale: float = 3.0,
    scheduler: str = "ddim",
    latent_drift: float | Sequence[float] = 0.0,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = True,
    mask: str | Path | None = None,
) -> Path:
    """Write `out/NNNN.nii.gz` per prompt (int16, the training volumes' units and spacing), `grid.png` (the axial
    plane of each), `prompts.csv`, `settings.json` and a report; volume i draws its noise from seed + i. A
    mask-conditioned model takes `mask`, a NIfTI volume on its volume grid (RAS+; non-zero is inside)."""
    out = new_output_folder(out)
    if not prompts:
        raise ValueError("no prompts given; pass at least one --prompt")
    components = model if isinstance(model, Components) else load_components(model, device=device)
    check_prompt_lengths(components.tokenizer, list(prompts))
    condition = None if mask is None else _mask_volume(mask, components).to(components.unet.device)
    value_range = model_value_range(components)
    spacing = components.vae.config.get("spacing_mm") or (1.0, 1.0, 1.0)
    options = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale, "scheduler": scheduler}
    bar = tqdm(total=len(prompts), desc="medcf generate", unit="volume", disable=not progress)
    shown = []
    with atomic_folder(out) as staging, bar, inference_precision(precision, components.unet.device):
        with (staging / "prompts.csv").open("w", newline="") as table:
            writer = csv.writer(table)
            writer.writerow(["file", "prompt", "seed"])
            for index, prompt in enumerate(prompts):
                volume = _one_volume(components, prompt, seed + index, latent_drift, mask=condition, **options)
                _write_nifti(staging / f"{index:04d}.nii.gz", volume, value_range, spacing)
                writer.writerow([f"{index:04d}.nii.gz", prompt, seed + index])
                shown.append(planes(display(volume))["axial"].copy())
                bar.update()
        settings = {
            **options, "latent drift": latent_drift, "seed": seed, "mask": None if mask is None else Path(mask).name,
            "value range": list(value_range),
            "spacing (mm)": list(spacing), **run_settings(components.unet.device, precision),
        }  # fmt: skip
        (staging / "settings.json").write_text(json.dumps(settings, indent=2, default=str) + "\n")
        save_figure(grid(shown[:64]), staging / "grid.png")
        write_report(staging, "medcf generate (volumes)", [
            Section("Axial planes", figures=[("grid.png", "the central axial plane of each volume, numbered")]),
            Section("Settings", table=[{"setting": k, "value": v} for k, v in settings.items()]),
        ])  # fmt: skip
    return out


def _one_volume(components: Components, prompt: str, seed: int, latent_drift, **options) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)  # on the CPU: a seed gives the same noise on every device
    shape = (1, components.unet.config.out_channels, *components.unet.config.sample_size)
    noise = torch.randn(shape, generator=generator)
    volumes = generate_volumes(components, [prompt], latents=noise, latent_drift=latent_drift, **options)
    return volumes[0, 0].float().cpu()


def _mask_volume(path: str | Path, components: Components) -> torch.Tensor:
    """The mask volume (1, 1, X, Y, Z) in {0, 1}, checked against the volumes the model makes."""
    size = tuple(side * vae_scale_factor(components) for side in components.unet.config.sample_size)
    values = read_volume(path)
    if values.shape != size:
        raise ValueError(f"{path}: a mask of {values.shape} voxels (RAS+), but this model makes {size}; give a mask "
                         "on the model's volume grid")  # fmt: skip
    return torch.from_numpy((values > 0).astype(np.float32))[None, None]


def _write_nifti(path: Path, volume: torch.Tensor, value_range, spacing) -> None:
    write_new_volume(path, from_unit_range(volume, value_range).numpy(), tuple(spacing))
