"""Checks on a model folder before and while its weights load: each failure is one line naming the file.

medcf samples and edits Stable Diffusion 1.x/2.x-layout models (one text encoder, a 2-D conditional U-Net,
a 4-channel-style AutoencoderKL); SDXL (two text encoders) and SD3/Flux (transformer denoisers) are
different model families and are refused up front rather than failing deep inside diffusers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

SUBFOLDERS = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")
OTHER_FAMILIES = ("text_encoder_2", "transformer", "prior")  # SDXL, SD3/Flux/PixArt, Kandinsky/Würstchen
Part = TypeVar("Part")


def check_model_folder(path: Path) -> None:
    """Refuse a folder that is not a Stable Diffusion-layout model: no index, another family, missing parts."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise FileNotFoundError(f"{path}: no model_index.json; pass a folder written by save_components or diffusers")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{index_file}: not valid JSON ({error}); re-save or re-copy the model") from None
    pipeline = str(index.get("_class_name", "a pipeline"))
    other = [name for name in OTHER_FAMILIES if name in index]
    if other or "XL" in pipeline:
        parts = f" with {', '.join(other)}" if other else ""
        raise ValueError(
            f"{index_file}: names {pipeline}{parts}, another model family; medcf loads Stable Diffusion "
            "1.x/2.x-layout models (vae, unet, text_encoder, tokenizer, scheduler)"
        )
    if missing := [name for name in SUBFOLDERS if not (path / name).is_dir()]:
        raise FileNotFoundError(f"{path}: missing subfolders {missing}; re-save the model with save_components")


def load_part(load: Callable[[], Part], folder: Path) -> Part:
    """Run one `from_pretrained`, turning a truncated or foreign weights file into one line naming it."""
    try:
        return load()
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ValueError(
            f"{folder}: cannot load these weights ({type(error).__name__}; --debug shows why); they may be truncated "
            "or from another model — re-copy or re-export the model"
        ) from error


def check_text_conditioning(path: Path, cross_attention_dim: int, hidden_size: int) -> None:
    """The U-Net attends to text-encoder states: their widths must agree (a mixed-up folder otherwise)."""
    if cross_attention_dim != hidden_size:
        raise ValueError(
            f"{path}: unet cross_attention_dim {cross_attention_dim} ≠ text_encoder hidden size {hidden_size}; "
            "the subfolders come from different models — re-copy the model folder whole"
        )
