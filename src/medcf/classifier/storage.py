"""A classifier folder: config.json (labels, widths, image size, input range) + model.safetensors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from medcf.atomic import atomic_folder
from medcf.classifier.network import ImageClassifier

CONFIG, WEIGHTS = "config.json", "model.safetensors"
FORMAT = "medcf-image-classifier"
INPUT_RANGE = [-1.0, 1.0]  # grey pixels as medcf.data.intensity.to_model_range makes them
CONFIG_KEYS = {"format", "label_names", "channels", "image_size", "input_range"}


def save_classifier(
    model: ImageClassifier, folder: str | Path, *, write_extras: Callable[[Path], None] | None = None
) -> Path:
    """Write `folder` whole or not at all; an existing folder is replaced only when it holds a classifier.

    `write_extras(staging)` adds files (metrics, report) inside the same all-or-nothing write."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not _is_classifier_folder(folder):
        raise FileExistsError(f"{folder}: exists and holds no classifier; choose a new or empty folder")
    config = {
        "format": FORMAT,
        "label_names": model.label_names,
        "channels": model.channels,
        "image_size": model.image_size,
        "input_range": INPUT_RANGE,
    }
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_folder(folder) as staging:
        (staging / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        save_file(weights, staging / WEIGHTS)
        if write_extras is not None:
            write_extras(staging)
    return folder


def load_classifier(folder: str | Path, *, device: str | torch.device = "cpu") -> ImageClassifier:
    """The classifier saved in `folder` by save_classifier, in eval mode on `device`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such classifier folder; train and save one with fit_classifier")
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: lacks {name}; save the classifier again with save_classifier")
    config = _read_config(folder)
    try:
        model = ImageClassifier(config["label_names"], image_size=config["image_size"], channels=config["channels"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{folder / CONFIG}: {error}; fix the file or save the classifier again") from None
    try:
        model.load_state_dict(load_file(folder / WEIGHTS))
    except RuntimeError as error:
        summary = str(error).splitlines()[0]
        raise ValueError(f"{folder}: {WEIGHTS} does not match {CONFIG} ({summary}); save it again") from None
    return model.to(device).eval()


def _read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / CONFIG).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{folder / CONFIG}: not valid JSON ({error}); save the classifier again") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or set(config) != CONFIG_KEYS:
        raise ValueError(
            f"{folder / CONFIG}: not a medcf classifier config (needs format={FORMAT!r} and keys "
            f"{sorted(CONFIG_KEYS)}); point to a folder written by save_classifier"
        )
    if config["input_range"] != INPUT_RANGE:
        raise ValueError(f"{folder / CONFIG}: input_range {config['input_range']} unsupported; use {INPUT_RANGE}")
    return config


def _is_classifier_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / CONFIG).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False
