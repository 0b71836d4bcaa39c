"""What a loaded config must satisfy, checked before any work: value ranges, the 3-D options, named paths.

`load_config` applies the range and 3-D checks to every config; `check_paths` runs where a command is about to read
the data and models the config names.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # config imports this module: the type only
    from medcf.config import Config

# medcf.data.adapters.registry.ADAPTERS's names and medcf.data.verify.BAD_FILE_POLICIES, repeated (a test keeps
# them equal) because config sits below data (STYLE.md §3.2) and loads in milliseconds, before pandas and nibabel.
ADAPTER_NAMES = ("folder", "chexpert", "mimic-cxr", "nih", "covid", "oasis1", "oasis2", "oasis3", "adni", "brain")
BAD_FILE_POLICIES = ("error", "skip", "unchecked")
BACKENDS = ("diffusion", "gan")  # model.backend: medcf.training.loop.train dispatches on it


def check_spatial_dims(config: Config) -> None:
    """Refuse options that 3-D (volume) models do not have, and patches for 2-D ones, in one line each."""
    model, data = config.model, config.data
    if model.spatial_dims not in (2, 3):
        raise ValueError(f"model.spatial_dims={model.spatial_dims}: use 2 (images) or 3 (volumes)")
    if model.spatial_dims == 2:
        if data.patch:
            raise ValueError(f"data.patch={data.patch} crops volumes; set model.spatial_dims=3 or data.patch=[]")
        return
    if data.patch and (len(data.patch) != 3 or min(data.patch) < 1):
        raise ValueError(f"data.patch={data.patch}: give [X, Y, Z] voxels, e.g. [64, 64, 32], or [] for whole volumes")
    unsupported = {
        "model.mask_conditioning": model.mask_conditioning and model.backend == "gan",  # the 3-D GAN reads no masks
        "data.pairs": data.pairs,
        "train.train_vae_decoder": config.train.train_vae_decoder,
        "train.gradient_checkpointing": config.train.gradient_checkpointing,
    }
    if on := [name for name, value in unsupported.items() if value]:
        raise ValueError(f"model.spatial_dims=3: {', '.join(on)} is 2-D only; turn it off for volumes")
    if config.train.method != "full":  # both backends train 3-D models whole (training/setup.py, gan_run.py)
        raise ValueError(f"model.spatial_dims=3 trains train.method=full only, not {config.train.method}")


def _at_least(low: float) -> Callable[[float], bool]:
    return lambda value: math.isfinite(value) and value >= low


def _in_unit(value: float) -> bool:  # [0, 1)
    return 0 <= value < 1


# The range of every numeric field a bad value would let run (a 7 px model, -5 steps, a NaN drift); checked
# whenever a config is loaded, so a run fails before its folder is written.
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "data.resolution": (lambda v: v >= 16 and v % 8 == 0, "a multiple of 8, at least 16 (e.g. 64)"),
    "data.holdout_fraction": (_in_unit, "in [0, 1)"),
    "data.prompt_dropout": (_in_unit, "in [0, 1)"),
    "data.num_workers": (_at_least(0), "≥ 0"),
    "train.max_steps": (_at_least(1), "≥ 1"),
    "train.batch_size": (_at_least(1), "≥ 1"),
    "train.gradient_accumulation_steps": (_at_least(1), "≥ 1"),
    "train.learning_rate": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "train.lr_warmup_steps": (_at_least(0), "≥ 0"),
    "train.max_grad_norm": (_at_least(0), "≥ 0 (0: no clipping)"),
    "train.ema_decay": (_in_unit, "in [0, 1) (0: no EMA)"),
    "train.snr_gamma": (_at_least(0), "≥ 0 (0: off)"),
    "train.latent_drift": (math.isfinite, "finite"),
    "train.checkpoint_every": (_at_least(0), "≥ 0"),
    "train.checkpoints_kept": (_at_least(1), "≥ 1"),
    "train.sample_every": (_at_least(0), "≥ 0"),
    "train.seed": (lambda v: 0 <= v < 2**63, "in 0..2^63-1"),
    "train.encoding_cache_mb": (_at_least(0), "≥ 0"),
    "sample.num_images": (_at_least(1), "≥ 1"),
    "sample.num_inference_steps": (_at_least(1), "≥ 1"),
    "sample.guidance_scale": (math.isfinite, "finite"),
    "sample.image_guidance_scale": (math.isfinite, "finite"),
    "sample.latent_drift": (math.isfinite, "finite"),
    "vae.max_steps": (_at_least(1), "≥ 1"),
    "vae.batch_size": (_at_least(1), "≥ 1"),
    "gan.latent_dim": (_at_least(1), "≥ 1"),
    "gan.r1_gamma": (_at_least(0), "≥ 0 (0: off)"),
    "gan.block_out_channels": (_at_least(1), "≥ 1"),
    "gan.discriminator_channels": (_at_least(1), "≥ 1"),
}


def check_ranges(config: Config) -> None:
    """One-line ValueError for the first field out of its range (a list field: each of its values)."""
    values = dataclasses.asdict(config)
    if config.model.backend not in BACKENDS:
        raise ValueError(f"model.backend={config.model.backend!r} unknown; use one of {', '.join(BACKENDS)}")
    for key, (valid, allowed) in RANGES.items():
        section, name = key.split(".")
        value = values[section][name]
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not valid(item):
                raise ValueError(f"{key}={value!r}: must be {allowed}; fix the config or --set {key}=...")


def check_paths(config: Config) -> None:
    """Fail in milliseconds, before the model libraries load, when a folder the config names is missing."""
    data = config.data
    if not data.root:
        raise ValueError("data.root is empty; set it to a dataset folder, e.g. --set data.root=data/cxr")
    if data.adapter not in ADAPTER_NAMES:
        raise ValueError(f"data.adapter={data.adapter!r} unknown; use one of {', '.join(ADAPTER_NAMES)}")
    if data.bad_files not in BAD_FILE_POLICIES:
        raise ValueError(f"data.bad_files={data.bad_files!r} unknown; use one of {', '.join(BAD_FILE_POLICIES)}")
    table = Path(data.root) / (data.csv or "metadata.csv")
    if data.adapter == "folder" and not table.is_file():
        raise ValueError(
            f"{table}: dataset table not found; point data.root at a folder holding it (e.g. one written by "
            "`medcf synth`), set data.csv, or set data.adapter to the release's layout"
        )
    if not Path(data.root).is_dir():
        raise ValueError(f"data.root={data.root}: folder not found; point it at the dataset as downloaded")
    for name in ("pretrained", "vae", "text_encoder"):
        if (folder := getattr(config.model, name)) and not Path(folder).is_dir():
            raise ValueError(f"model.{name}={folder}: folder not found; give a local diffusers/transformers folder")
    index = Path(config.model.pretrained) / "model_index.json"
    if config.model.spatial_dims == 3 and config.model.pretrained and "VolumeUNet" not in _read_text(index):
        raise ValueError(
            f"model.pretrained={config.model.pretrained} is a 2-D model; a 3-D run starts from scratch or from a "
            "3-D medcf model folder: drop model.pretrained or set model.spatial_dims=2"
        )


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
