"""3-D model parts (medcf.models.volume): MONAI's networks behind diffusers' interface, saved and loaded as folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from medcf.models import (
    VolumeAutoencoderKL,
    VolumeUNet,
    decode_latents,
    encode_images,
    encode_prompts,
    export_model,
    load_components,
    load_vae,
    save_components,
    save_vae,
    tiny_components,
    tiny_volume_components,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ["chest CT, pleural effusion", "normal chest CT"]


def _volumes() -> torch.Tensor:
    return torch.rand((2, 1, 16, 16, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_wrappers_give_monai_numbers() -> None:
    components = tiny_volume_components()
    vae, unet, volumes = components.vae, components.unet, _volumes()
    with torch.no_grad():
        mean, std = vae.network.encode(volumes)
        posterior = vae.encode(volumes).latent_dist
        assert isinstance(posterior, DiagonalGaussianDistribution)
        torch.testing.assert_close(posterior.mean, mean, rtol=0, atol=0)
        torch.testing.assert_close(posterior.std, std, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(vae.decode(mean).sample, vae.network.decode(mean), rtol=0, atol=0)
        embeds = encode_prompts(components, PROMPTS)
        timesteps = torch.tensor([10, 500])
        ours = unet(mean, timesteps, encoder_hidden_states=embeds).sample
        torch.testing.assert_close(ours, unet.network(mean, timesteps, context=embeds), rtol=0, atol=0)
        # a scalar timestep (the samplers') is one per sample
        scalar = unet(mean, torch.tensor(10), encoder_hidden_states=embeds).sample
        torch.testing.assert_close(scalar, unet.network(mean, torch.tensor([10, 10]), context=embeds))


def test_unet_output_has_the_latent_shape_and_reads_the_prompt() -> None:
    components = tiny_volume_components()
    latents = encode_images(components, _volumes(), sample=False)
    assert latents.shape == (2, 3, 8, 8, 4)
    with torch.no_grad():
        embeds = encode_prompts(components, PROMPTS)
        output = components.unet(latents, 5, encoder_hidden_states=embeds).sample
        swapped = components.unet(latents, 5, encoder_hidden_states=embeds.flip(0)).sample
    assert output.shape == latents.shape
    assert (output - swapped).abs().max() > 1e-5  # cross-attention: the text changes the prediction
    assert decode_latents(components, latents).shape == (2, 1, 16, 16, 8)


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    components = tiny_volume_components(seed=3)
    save_components(components, tmp_path / "model")
    loaded = load_components(tmp_path / "model")
    assert isinstance(loaded.vae, VolumeAutoencoderKL) and isinstance(loaded.unet, VolumeUNet)
    assert sorted(path.name for path in (tmp_path / "model").iterdir()) == [
        "model_index.json", "scheduler", "text_encoder", "tokenizer", "unet", "vae",
    ]  # fmt: skip
    assert list((tmp_path / "model" / "unet").glob("*.safetensors"))
    volumes = _volumes()
    with torch.no_grad():
        for model in (components, loaded):
            latents = encode_images(model, volumes, sample=False)
            embeds = encode_prompts(model, PROMPTS)
            model.result = model.unet(latents, 7, encoder_hidden_states=embeds).sample, decode_latents(model, latents)
    for before, after in zip(components.result, loaded.result, strict=True):
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    save_vae(components.vae, tmp_path / "vae")
    assert isinstance(load_vae(tmp_path / "vae"), VolumeAutoencoderKL)
    assert isinstance(load_vae(tmp_path / "model"), VolumeAutoencoderKL)


def test_a_2d_folder_still_loads_as_2d(tmp_path: Path) -> None:
    save_components(tiny_components(), tmp_path / "model")
    assert type(load_components(tmp_path / "model").unet).__name__ == "UNet2DConditionModel"


def test_export_keeps_the_volume_classes(tmp_path: Path) -> None:
    components = tiny_volume_components()
    export_model(components, tmp_path / "slim", share_text_encoder=False)
    loaded = load_components(tmp_path / "slim")
    assert isinstance(loaded.unet, VolumeUNet) and loaded.unet.dtype == torch.float32
