"""Models that ship inside the package, so `medcf demo` and `medcf app` work offline on a fresh install.

Each is a slim model folder (`medcf export`: fp16 U-Net and VAE, the stock MiniLM text encoder referenced)
with its model card (README.md: data, commands, config, steps, hardware, training time, metrics) and
`sampling.json`, the sampler settings its card's numbers were measured with (δ from `medcf drift-search`).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch

from medcf.models import Components, load_components, vae_scale_factor
from medcf.models.precision import inference_precision, resolve_precision
from medcf.prompts import PromptTemplate

SHIPPED_BY_ANATOMY = {"cxr": "cxr64", "brain": "brain64"}
SHIPPED = tuple(SHIPPED_BY_ANATOMY.values())
DEFAULT_MODEL = "cxr64"
SAMPLING_FILE = "sampling.json"
SAMPLER_KEYS = ("num_inference_steps", "guidance_scale", "latent_drift")


def pretrained_path(name: str = DEFAULT_MODEL) -> Path:
    """Folder of the shipped model `name`; load it with `PretrainedModel.load` or `medcf.models.load_components`."""
    folder = Path(__file__).parent / name
    if name not in SHIPPED or not (folder / "model_index.json").is_file():
        raise ValueError(f"{name!r} is not a shipped model; choose one of {', '.join(SHIPPED)}")
    return folder


def sampling_settings(model: str | Path) -> dict[str, object]:
    """The sampler settings a model folder recommends (its sampling.json), or {} when it names none."""
    path = Path(model) / SAMPLING_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass(frozen=True)
class PretrainedModel:
    """A model folder loaded with its prompt template and recommended sampler settings."""

    folder: Path
    components: Components
    template: PromptTemplate
    settings: dict[str, object]
    precision: str = "fp32"  # resolved autocast precision of the U-Net and text encoder (models/precision.py)

    @classmethod
    def load(
        cls, folder: str | Path | None = None, *, device: str = "cpu", precision: str = "fp32"
    ) -> PretrainedModel:
        """Load `folder` (default: the shipped model) onto `device` ("auto", "cpu", "cuda", ...)."""
        folder = Path(folder) if folder else pretrained_path()
        components = load_components(folder, device=device)
        precision = resolve_precision(precision, components.unet.device)
        return cls(folder, components, PromptTemplate.from_pretrained(folder), sampling_settings(folder), precision)

    @property
    def device(self) -> torch.device:
        return self.components.unet.device

    def autocast(self) -> AbstractContextManager:
        """The model's precision as an autocast context, around any call that runs it."""
        return inference_precision(self.precision, self.device)

    @property
    def resolution(self) -> int:
        return self.components.unet.config.sample_size * vae_scale_factor(self.components)

    def sampler(self) -> dict[str, object]:
        """Keyword arguments for generate / counterfactual / inpaint: steps, guidance and Latent Drift δ."""
        return {key: self.settings[key] for key in SAMPLER_KEYS if key in self.settings}
