"""medcf.models: Stable-Diffusion folder round trips, vanilla diffusers loading, text and latent codecs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel

from medcf.models import (
    Components,
    check_edit_survives_truncation,
    check_prompt_lengths,
    conditioning_options,
    decode_latents,
    encode_images,
    encode_prompts,
    has_mask_condition,
    latent_channels,
    load_components,
    mask_latents,
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


@pytest.mark.parametrize("conditioned", [False, True])
def test_scratch_components_forward_at_64px(conditioned: bool) -> None:
    components = scratch_components(resolution=64, mask_conditioning=conditioned, text_modulation=conditioned)
    assert components.unet.config.sample_size == 16
    assert components.unet.config.in_channels == 4 + conditioned and latent_channels(components) == 4
    pixel_values = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        latents = encode_images(components, pixel_values, sample=False)
        assert latents.shape == (1, 4, 16, 16)  # ×4 downsampling
        embeds = encode_prompts(components, ["axial brain MRI"])
        model_input = torch.cat([latents, torch.ones(1, 1, 16, 16)], dim=1) if conditioned else latents
        noise = components.unet(model_input, 500, encoder_hidden_states=embeds).sample
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


def test_mask_latents_are_the_covered_fraction_of_each_cell() -> None:
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, 0, :2, :1] = 1  # half of the top-left 2×2 cell
    mask[1, 0, 4:, 4:] = 1  # exactly the bottom-right 2×2 latent cells
    latents = mask_latents(mask, (4, 4))
    assert latents.shape == (2, 1, 4, 4)
    assert latents[0, 0, 0, 0] == 0.5 and latents[0].sum() == 0.5
    assert torch.equal(latents[1, 0], torch.tensor([[0.0] * 4] * 2 + [[0.0, 0.0, 1.0, 1.0]] * 2))
    assert torch.equal(mask_latents(mask, (8, 8)), mask)  # same size: unchanged
    with pytest.raises(ValueError, match="expected \\(B, 1, \\*spatial\\)"):
        mask_latents(mask[:, 0], (4, 4))
    volume = torch.zeros(1, 1, 4, 4, 2)
    volume[0, 0, :2, :2, 0] = 1  # half of the first 2×2×2 cell of a volume
    assert mask_latents(volume, (2, 2, 1))[0, 0, :, :, 0].tolist() == [[0.5, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="use \\(mask > 0\\)"):
        mask_latents(mask * 255, (4, 4))


@pytest.mark.parametrize("mask_conditioning", [False, True])
@pytest.mark.parametrize("text_modulation", [False, True])
def test_conditioning_options_shape_the_unet(mask_conditioning: bool, text_modulation: bool) -> None:
    components = tiny_components(mask_conditioning=mask_conditioning, text_modulation=text_modulation)
    config = components.unet.config
    assert (config.in_channels, config.out_channels) == (4 + mask_conditioning, 4)
    assert has_mask_condition(components) == mask_conditioning and latent_channels(components) == 4
    assert (config.addition_embed_type == "text") == text_modulation
    assert (config.resnet_time_scale_shift == "scale_shift") == text_modulation
    resnet = components.unet.mid_block.resnets[0]
    assert resnet.time_emb_proj.out_features == (2 if text_modulation else 1) * resnet.conv1.out_channels


def test_text_modulation_needs_heads_that_divide_the_text_width() -> None:
    with pytest.raises(ValueError, match="not divisible by 8 pooling heads"):
        conditioning_options(4, 100, mask_conditioning=False, text_modulation=True, text_heads=8)
    with pytest.raises(ValueError, match="not divisible by 2 pooling heads"):
        tiny_components(cross_attention_dim=33, text_modulation=True)
    assert "addition_embed_type" not in conditioning_options(
        4, 100, mask_conditioning=True, text_modulation=False, text_heads=8
    )


def _modulation(components: Components, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Time embedding fed to every ResNet (time_embedding + add_embedding) and the first ResNet's (γ, β)."""
    seen: dict[str, torch.Tensor] = {}
    unet = components.unet
    hooks = [unet.time_embedding.register_forward_hook(lambda m, a, out: seen.setdefault("time", out))]
    if unet.config.addition_embed_type == "text":  # add_embedding = TextTimeEmbedding: the pooled prompt
        hooks.append(unet.add_embedding.register_forward_hook(lambda m, a, out: seen.setdefault("text", out)))
    projection = unet.down_blocks[0].resnets[0].time_emb_proj
    hooks.append(projection.register_forward_hook(lambda m, a, out: seen.setdefault("scale_shift", out)))
    with torch.no_grad():
        embeds = encode_prompts(components, prompts)
        latents = torch.zeros(len(prompts), unet.config.in_channels, 16, 16)
        unet(latents, torch.full((len(prompts),), 500), encoder_hidden_states=embeds)
    for hook in hooks:
        hook.remove()
    return seen["time"] + seen.get("text", 0), seen["scale_shift"]


@pytest.mark.parametrize("text_modulation", [False, True])
def test_prompt_modulates_resnets_only_with_text_modulation(text_modulation: bool) -> None:
    components = tiny_components(text_modulation=text_modulation)
    embedding, scale_shift = _modulation(components, ["chest x-ray, right pleural effusion", "normal chest x-ray"])
    # Same timestep for both rows: only the prompt can make the ResNets' conditioning differ.
    assert bool((embedding[0] - embedding[1]).abs().max() > 1e-4) == text_modulation
    assert bool((scale_shift[0] - scale_shift[1]).abs().max() > 1e-4) == text_modulation


def test_mask_conditioned_model_round_trips(tmp_path: Path) -> None:
    components = tiny_components(mask_conditioning=True, text_modulation=True)
    folder = save_components(components, tmp_path / "model")
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True)
    assert (unet.config.in_channels, unet.config.out_channels) == (5, 4)
    loaded = load_components(folder)
    assert has_mask_condition(loaded)
    model_input = torch.randn(2, 5, 16, 16, generator=torch.Generator().manual_seed(0))
    embeds = encode_prompts(components, ["a chest x-ray", ""])
    with torch.no_grad():
        expected = components.unet(model_input, 10, encoder_hidden_states=embeds).sample
        assert torch.equal(expected, loaded.unet(model_input, 10, encoder_hidden_states=embeds).sample)
        assert torch.equal(expected, unet(model_input, 10, encoder_hidden_states=embeds).sample)


def test_a_folder_mixing_two_models_is_refused_naming_both_widths(tmp_path: Path) -> None:
    model = save_components(tiny_components(cross_attention_dim=32), tmp_path / "model")
    other = save_components(tiny_components(cross_attention_dim=48), tmp_path / "other")
    shutil.rmtree(model / "text_encoder")
    shutil.copytree(other / "text_encoder", model / "text_encoder")
    with pytest.raises(ValueError, match=r"model: unet cross_attention_dim 32 ≠ text_encoder hidden size 48; the sub"):
        load_components(model)


def test_an_edit_beyond_the_text_encoders_window_is_refused() -> None:
    tokenizer = tiny_components().tokenizer
    long = "A chest X-ray. " + "Clear lungs. " * 30
    check_edit_survives_truncation(tokenizer, "A chest X-ray with a nodule.", "A chest X-ray.")  # visible: fine
    with pytest.raises(ValueError, match="changes the prompt only after the text encoder's 77 tokens"):
        check_edit_survives_truncation(tokenizer, long + "A nodule.", long + "No nodule.")
    with pytest.raises(ValueError, match=r"is 9\d tokens; the model's text encoder reads 77"):
        check_prompt_lengths(tokenizer, [long])
