"""The shipped models: inside the package, ≤ 40 MB, a model card, its sampler settings, and it loads offline."""

from __future__ import annotations

import pytest
import torch

from medcf.models import folder_megabytes, load_components
from medcf.models.shared_text_encoder import REFERENCE_FILE
from medcf.pretrained import SHIPPED, pretrained_path, sampling_settings
from medcf.prompts import PromptTemplate


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_model_is_slim_and_documented(name: str) -> None:
    folder = pretrained_path(name)
    assert folder_megabytes(folder) <= 40
    assert (folder / "text_encoder" / REFERENCE_FILE).is_file()  # the MiniLM comes from its own package
    card = (folder / "README.md").read_text()
    for section in ("## Data", "## Commands", "## Metrics", "## Hardware"):
        assert section in card
    assert "# medcf model" not in card and not any(marker in card for marker in ("EVAL_TABLE", "ATROPHY_TABLE"))
    settings = sampling_settings(folder)
    assert set(settings) == {"latent_drift", "num_inference_steps", "guidance_scale", "scheduler"}
    assert -0.2 <= settings["latent_drift"] <= 0.2  # the drift-search grid


@pytest.mark.parametrize(("name", "modality"), [("cxr64", "chest X-ray"), ("brain64", "brain MRI")])
def test_the_shipped_model_loads_and_renders_its_own_prompts(name: str, modality: str) -> None:
    folder = pretrained_path(name)
    components = load_components(folder)
    assert components.unet.dtype == torch.float32 and components.unet.config.cross_attention_dim == 384
    template = PromptTemplate.from_pretrained(folder)
    assert template.modality == modality


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="'knee' is not a shipped model; choose one of cxr64, brain64"):
        pretrained_path("knee")
