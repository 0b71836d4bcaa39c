"""`export_model`: a model folder made small enough to ship — half-precision U-Net and VAE weights, and the
stock text encoder referenced instead of copied (shared_text_encoder.py). The folder still loads with
`load_components` (weights come back as float32) and in vanilla diffusers.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from medcf.atomic import atomic_folder, atomic_path
from medcf.models.components import Components, save_components
from medcf.models.shared_text_encoder import write_reference

HALVED = ("unet", "vae")


def export_model(
    components: Components,
    out: str | Path,
    *,
    half: bool = True,
    share_text_encoder: bool = True,
    extra_files: Sequence[Path] = (),
) -> Path:
    """Write `components` to `out` (atomically) with fp16 U-Net/VAE weights and a referenced text encoder;
    `extra_files` (e.g. the model card README.md, prompt_template.json) are copied beside them."""
    with atomic_folder(out) as staging:
        save_components(components, staging)
        for extra in extra_files:
            shutil.copyfile(extra, staging / extra.name)
        if half:
            for part in HALVED:
                for weights in (staging / part).glob("*.safetensors"):
                    _halve(weights)
        if share_text_encoder:
            write_reference(staging / "text_encoder", components.text_encoder)
    return Path(out)


def folder_megabytes(folder: str | Path) -> float:
    """Total size of the files under `folder`, MB (10⁶ bytes)."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file()) / 1e6


def _halve(weights: Path) -> None:
    """Floating-point tensors to float16 in place (fp16 keeps ~3 significant digits: plenty for sampling)."""
    tensors = load_file(weights)
    halved = {k: t.to(torch.float16) if t.is_floating_point() else t for k, t in tensors.items()}
    with atomic_path(weights) as temporary:  # also gives the file ordinary 0644 permissions
        save_file(halved, temporary, metadata={"format": "pt"})
