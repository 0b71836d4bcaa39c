"""The GAN backend's networks and model folder: round trip, text through FiLM, the mask contract, 3-D volumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medcf.models import save_components, tiny_components
from medcf.models.gan_components import (
    gan_generate,
    is_gan_folder,
    load_gan,
    save_gan,
    scratch_gan,
    synthesize,
    tiny_gan,
)
from medcf.models.shared_text_encoder import REFERENCE_FILE
from medcf.models.text import encode_prompts

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["chest X-ray of a 60 year old female, never smoker", "chest X-ray of a 40 year old male, current smoker"]


def noise(count: int, latent_dim: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed))


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    gan = tiny_gan(sample_size=16, mask_conditioning=True, seed=3)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    folder = save_gan(gan, tmp_path / "model")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["backend"] == "gan" and is_gan_folder(folder)
    assert (folder / "generator" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pkl"))  # safetensors only
    loaded = load_gan(folder)
    assert loaded.mask_conditioning
    with torch.no_grad():
        before = gan_generate(gan, PROMPTS, mask=mask, latents=noise(2))
        after = gan_generate(loaded, PROMPTS, mask=mask, latents=noise(2))
        states = encode_prompts(gan, PROMPTS)
        images = before
        assert torch.equal(gan.discriminator(images, states, mask), loaded.discriminator(images, states, mask))
    assert torch.equal(before, after)


def test_the_stock_text_encoder_is_saved_as_a_slim_reference(tmp_path: Path) -> None:
    gan = scratch_gan(sample_size=16, seed=0)  # MiniLM (D = 384)
    folder = save_gan(gan, tmp_path / "model")
    assert (folder / "text_encoder" / REFERENCE_FILE).is_file()
    assert not list((folder / "text_encoder").glob("*.safetensors"))
    latents = noise(2, gan.generator.config.latent_dim)
    assert torch.equal(
        gan_generate(gan, PROMPTS, latents=latents), gan_generate(load_gan(folder), PROMPTS, latents=latents)
    )


def test_load_gan_refuses_a_diffusion_folder(tmp_path: Path) -> None:
    folder = save_components(tiny_components(sample_size=16), tmp_path / "diffusion")
    assert not is_gan_folder(folder)
    with pytest.raises(ValueError, match="not a GAN model folder"):
        load_gan(folder)


def test_text_changes_the_image_only_through_film() -> None:
    gan = tiny_gan(seed=1)
    generator = gan.generator
    with torch.no_grad():
        states = encode_prompts(gan, PROMPTS)
        (gamma_a, beta_a), (gamma_b, beta_b) = (generator.modulation(states[i : i + 1])[0] for i in range(2))
        assert not torch.allclose(gamma_a, gamma_b) and not torch.allclose(beta_a, beta_b)  # γ, β come from the text
        latents = noise(1).repeat(2, 1)  # the same z for both prompts
        images = generator(latents, states)
        assert (images[0] - images[1]).abs().max() > 1e-3  # the prompt changes the image
        for film in generator.films:  # γ = β = 0 for every prompt: the text has no other way in
            film.weight.zero_()
            film.bias.zero_()
        images = generator(latents, states)
    assert torch.allclose(images[0], images[1])


def test_the_mask_is_required_iff_the_model_is_mask_conditioned() -> None:
    masked, plain = tiny_gan(mask_conditioning=True), tiny_gan()
    mask = torch.ones(2, 1, 16, 16)
    with pytest.raises(ValueError, match="mask-conditioned: pass mask="):
        gan_generate(masked, PROMPTS)
    with pytest.raises(ValueError, match="not mask-conditioned; drop the mask"):
        gan_generate(plain, PROMPTS, mask=mask)
    with pytest.raises(ValueError, match=r"expected one mask per image at the image size, \(2, 1, 16, 16\)"):
        gan_generate(masked, PROMPTS, mask=torch.ones(2, 1, 8, 8))
    images = gan_generate(masked, PROMPTS, mask=mask, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="mask-conditioned: pass mask="):
        masked.discriminator(images, encode_prompts(masked, PROMPTS))
    with torch.no_grad():  # the mask is an input: another mask, another image from the same z and prompt
        other = synthesize(masked, noise(2), PROMPTS, mask=torch.zeros(2, 1, 16, 16))
        same = synthesize(masked, noise(2), PROMPTS, mask=mask)
    assert (other - same).abs().max() > 1e-3


@pytest.mark.parametrize("mask_conditioning", [False, True])
def test_3d_generator_and_discriminator_share_the_api(mask_conditioning: bool) -> None:
    gan = tiny_gan(spatial_dims=3, sample_size=(16, 16, 8), mask_conditioning=mask_conditioning)
    mask = torch.ones(2, 1, 16, 16, 8) if mask_conditioning else None
    with torch.no_grad():
        volumes = gan_generate(gan, PROMPTS, mask=mask, generator=torch.Generator().manual_seed(0))
        logits = gan.discriminator(volumes, encode_prompts(gan, PROMPTS), mask)
    assert volumes.shape == (2, 1, 16, 16, 8) and volumes.abs().max() <= 1
    assert logits.shape[:2] == (2, 1) and logits.ndim == 5  # one logit per 3-D patch


def test_sizes_the_upsampling_cannot_reach_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        tiny_gan(sample_size=18)
