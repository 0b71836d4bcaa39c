"""medcf.models: Stable-Diffusion folder round trips, vanilla diffusers loading, text and latent codecs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from medcf.models import (
    decode_latents,
    encode_images,
    encode_prompts,
    load_components,
    minilm_path,
    save_components,
    scratch_components,
    tiny_components,
)
from medcf.models.components import MAX_PROMPT_TOKENS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def grey(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    components = tiny_components(in_channels=1)
    folder = save_components(components, tmp_path_factory.mktemp("grey") / "model")
    return components, folder


def _vanilla(folder: Path) -> StableDiffusionPipeline:
    return StableDiffusionPipeline.from_pretrained(
        folder, safety_checker=None, requires_safety_checker=False, local_files_only=True
    )


def test_save_writes_stable_diffusion_layout(grey: tuple) -> None:
    _, folder = grey
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["text_encoder"] == ["transformers", "BertModel"]
    assert index["scheduler"] == ["diffusers", "DDPMScheduler"]
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (folder / "text_encoder" / "model.safetensors").is_file()


def test_round_trip_gives_identical_outputs(grey: tuple) -> None:
    components, folder = grey
    loaded = load_components(folder)
    pixel_values = torch.rand(2, 1, 32, 32) * 2 - 1
    latents = encode_images(components, pixel_values, sample=False)
    assert torch.equal(latents, encode_images(loaded, pixel_values, sample=False))
    assert torch.equal(decode_latents(components, latents), decode_latents(loaded, latents))
    prompts = ["chest x-ray with cardiomegaly", ""]
    embeds = encode_prompts(components, prompts)
    assert torch.equal(embeds, encode_prompts(loaded, prompts))
    noise = components.unet(latents, 10, encoder_hidden_states=embeds).sample
    assert torch.equal(noise, loaded.unet(latents, 10, encoder_hidden_states=embeds).sample)
    assert loaded.scheduler.config.num_train_timesteps == 1000


def test_load_missing_folder_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        load_components(tmp_path)


def test_vanilla_pipeline_generates_rgb(tmp_path: Path) -> None:
    folder = save_components(tiny_components(in_channels=3), tmp_path / "rgb")
    pipeline = _vanilla(folder)
    images = pipeline(["a chest x-ray"], num_inference_steps=2, output_type="np").images
    assert images.shape == (1, 32, 32, 3)
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1


def test_vanilla_pipeline_generates_grey(grey: tuple) -> None:
    _, folder = grey
    images = _vanilla(folder)(["a chest x-ray"], num_inference_steps=2, output_type="np").images
    assert images.shape == (1, 32, 32, 1)


def test_encode_decode_shapes_and_ranges(grey: tuple) -> None:
    components, _ = grey
    pixel_values = torch.rand(3, 1, 32, 32) * 2 - 1
    latents = encode_images(components, pixel_values, generator=torch.Generator().manual_seed(0))
    assert latents.shape == (3, 4, 16, 16)
    images = decode_latents(components, latents)
    assert images.shape == (3, 1, 32, 32) and images.min() >= -1 and images.max() <= 1
    with pytest.raises(ValueError, match="3 channels; this VAE takes 1"):
        encode_images(components, torch.zeros(1, 3, 32, 32))


def test_grey_rgb_rule_round_trip() -> None:
    components = tiny_components(in_channels=3)
    grey_pixels = torch.rand(2, 1, 32, 32) * 2 - 1
    # Encoding grey equals encoding its three-channel replica.
    latents = encode_images(components, grey_pixels, sample=False)
    assert torch.equal(latents, encode_images(components, grey_pixels.repeat(1, 3, 1, 1), sample=False))
    rgb = decode_latents(components, latents)
    assert rgb.shape == (2, 3, 32, 32)
    assert torch.allclose(decode_latents(components, latents, channels=1), rgb.mean(1, keepdim=True))


def test_shipped_minilm_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    components = scratch_components(resolution=64)
    assert components.text_encoder.config.hidden_size == 384
    assert (minilm_path() / "model.safetensors").is_file()
    embeds = encode_prompts(components, ["normal chest x-ray", "large left pleural effusion"])
    assert embeds.shape == (2, MAX_PROMPT_TOKENS, 384)
    assert not torch.allclose(embeds[0], embeds[1])
    with pytest.raises(ValueError, match="pass a list of strings"):
        encode_prompts(components, "one prompt")


def test_scratch_components_forward_at_64px() -> None:
    components = scratch_components(resolution=64)
    pixel_values = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        latents = encode_images(components, pixel_values, sample=False)
        assert latents.shape == (1, 4, 16, 16)  # ×4 downsampling
        embeds = encode_prompts(components, ["axial brain MRI"])
        noise = components.unet(latents, 500, encoder_hidden_states=embeds).sample
        assert noise.shape == latents.shape
        assert decode_latents(components, latents).shape == (1, 1, 64, 64)


def test_tiny_components_are_seeded_without_touching_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    first, second = tiny_components(seed=5), tiny_components(seed=5)
    assert torch.equal(torch.rand(1), expected)
    for name, weight in first.unet.state_dict().items():
        assert torch.equal(weight, second.unet.state_dict()[name])
    assert not torch.equal(first.vae.encoder.conv_in.weight, tiny_components(seed=6).vae.encoder.conv_in.weight)
