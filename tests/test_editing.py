"""medcf.editing: counterfactuals (SDEdit, DDIM inversion, null-text), masked edits and RePaint inpainting."""

from __future__ import annotations

import pytest
import torch

from medcf.editing import counterfactual, inpaint, null_text_embeddings
from medcf.generate import denoise, drift_tensor, sampling_scheduler
from medcf.inversion import ddim_inversion_trajectory
from medcf.models import Components, decode_latents, encode_images, encode_prompts, tiny_components

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SOURCE = ["chest x-ray, right pleural effusion", "chest x-ray, cardiomegaly"]
TARGET = ["normal chest x-ray", "normal chest x-ray"]
STEPS = 6


@pytest.fixture(scope="module")
def components() -> Components:
    torch.manual_seed(0)
    return tiny_components(in_channels=1)


def _images() -> torch.Tensor:
    images = torch.full((2, 1, 32, 32), -0.6)
    images[:, :, 8:24, 8:24] = 0.8
    images[1, :, :, :16] -= 0.5
    return images


def _mask() -> torch.Tensor:
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 4:12, 16:28] = 1
    mask[1, :, 20:30, 2:14] = 1
    return mask


def _seed(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blind(components: Components) -> Components:
    """conv_in zeroed: ε̂ ignores the latents, so DDIM inversion is exact (see test_inversion)."""
    blind = tiny_components(in_channels=1)
    blind.unet.load_state_dict(components.unet.state_dict())
    blind.vae.load_state_dict(components.vae.state_dict())
    with torch.no_grad():
        blind.unet.conv_in.weight.zero_()
    return blind


@pytest.mark.parametrize("strength", [0.5, 1.0])
@pytest.mark.parametrize("latent_drift", [0.0, [0.1, -0.05, 0.0, 0.2]])
def test_inversion_engine_with_the_source_prompt_returns_the_image(components, strength, latent_drift) -> None:
    blind = _blind(components)
    reconstruction = decode_latents(blind, encode_images(blind, _images(), sample=False))
    settings = {"num_inference_steps": STEPS, "strength": strength, "latent_drift": latent_drift}
    edited = counterfactual(blind, _images(), SOURCE, SOURCE, guidance_scale=1.0, **settings)
    torch.testing.assert_close(edited, reconstruction, atol=1e-4, rtol=0)
    # δ is undone exactly, yet not a no-op: where ε̂ sees the latents, it sees them shifted by δ
    if latent_drift != 0.0:
        changed = counterfactual(components, _images(), SOURCE, TARGET, **settings)
        plain = counterfactual(components, _images(), SOURCE, TARGET, **{**settings, "latent_drift": 0.0})
        assert (changed - plain).abs().max() > 1e-2


def test_inversion_engine_is_deterministic_and_the_target_prompt_matters(components) -> None:
    first = counterfactual(components, _images(), SOURCE, TARGET, num_inference_steps=STEPS)
    assert torch.equal(first, counterfactual(components, _images(), SOURCE, TARGET, num_inference_steps=STEPS))
    unchanged = counterfactual(components, _images(), SOURCE, SOURCE, num_inference_steps=STEPS)
    assert (first - unchanged).abs().mean() > 1e-3
    assert first.shape == _images().shape and first.min() >= -1 and first.max() <= 1


def test_sdedit_is_seeded_and_strength_sets_how_far_it_moves(components) -> None:
    reconstruction = decode_latents(components, encode_images(components, _images(), sample=False))
    runs = {
        strength: counterfactual(
            components,
            _images(),
            SOURCE,
            TARGET,
            engine="sdedit",
            strength=strength,
            num_inference_steps=10,
            generator=_seed(),
        )  # fmt: skip
        for strength in (0.1, 0.5, 1.0)
    }
    distances = [(runs[s] - reconstruction).abs().mean().item() for s in (0.1, 0.5, 1.0)]
    assert distances[0] < distances[1] < distances[2]
    again = counterfactual(
        components, _images(), SOURCE, TARGET, engine="sdedit", strength=0.5, num_inference_steps=10, generator=_seed()
    )
    assert torch.equal(again, runs[0.5])
    other = counterfactual(
        components,
        _images(),
        SOURCE,
        TARGET,
        engine="sdedit",
        strength=0.5,
        num_inference_steps=10,
        generator=_seed(1),
    )
    assert (other - runs[0.5]).abs().max() > 1e-3


@pytest.mark.parametrize("engine", ["inversion", "sdedit"])
def test_a_masked_edit_leaves_the_outside_bit_for_bit(components, engine) -> None:
    images, mask = _images(), _mask()
    edited = counterfactual(
        components, images, SOURCE, TARGET, engine=engine, mask=mask, num_inference_steps=STEPS, generator=_seed()
    )
    outside = mask.expand_as(images) == 0
    assert torch.equal(edited[outside], images[outside])
    assert (edited - images)[~outside].abs().mean() > 1e-2


def test_null_text_embeddings_retrace_the_inversion_at_high_guidance(components) -> None:
    latents = encode_images(components, _images(), sample=False)
    trajectory = ddim_inversion_trajectory(components, latents, SOURCE, num_inference_steps=STEPS)
    sampler = sampling_scheduler(components, "ddim")
    sampler.set_timesteps(STEPS)
    drift = drift_tensor(0.0, 4)
    prompt_embeds, null = encode_prompts(components, SOURCE), encode_prompts(components, ["", ""])
    settings = {"guidance_scale": 5.0, "drift": drift}
    with torch.no_grad():
        plain = denoise(components, trajectory[-1], prompt_embeds, null, sampler, sampler.timesteps, **settings)
    nulls = null_text_embeddings(components, trajectory, SOURCE, num_inference_steps=STEPS, inner_steps=20, **settings)
    with torch.no_grad():
        tuned = denoise(components, trajectory[-1], prompt_embeds, nulls, sampler, sampler.timesteps, **settings)
    assert len(nulls) == STEPS and nulls[0].shape == null.shape
    assert (tuned - latents).pow(2).mean() < 0.75 * (plain - latents).pow(2).mean()
    assert all(not p.requires_grad or p.grad is None for p in components.unet.parameters())
    assert all(p.requires_grad for p in components.unet.parameters())  # the flags are restored


def test_null_text_changes_nothing_at_guidance_one(components) -> None:
    settings = {"num_inference_steps": STEPS, "guidance_scale": 1.0}
    plain = counterfactual(components, _images(), SOURCE, TARGET, **settings)
    tuned = counterfactual(components, _images(), SOURCE, TARGET, null_text=True, **settings)
    torch.testing.assert_close(plain, tuned, atol=1e-5, rtol=0)  # w = 1 gives the null prompt no weight


@pytest.mark.parametrize("resample_steps", [1, 3])
def test_inpainting_regenerates_inside_and_keeps_the_outside(components, resample_steps) -> None:
    images, mask = _images(), _mask()
    settings = {"num_inference_steps": STEPS, "resample_steps": resample_steps}
    lesion = inpaint(components, images, mask, SOURCE, generator=_seed(), **settings)
    outside = mask.expand_as(images) == 0
    assert torch.equal(lesion[outside], images[outside])
    assert (lesion - images)[~outside].abs().mean() > 1e-2
    assert torch.equal(lesion, inpaint(components, images, mask, SOURCE, generator=_seed(), **settings))
    assert (lesion - inpaint(components, images, mask, TARGET, generator=_seed(), **settings)).abs().max() > 1e-3


def test_inpainting_works_on_a_mask_conditioned_model_and_rgb_images() -> None:
    model = tiny_components(in_channels=3, mask_conditioning=True)  # RGB VAE, extra mask channel in the U-Net
    images, mask = _images().repeat(1, 3, 1, 1), _mask()
    lesion = inpaint(model, images, mask, SOURCE, num_inference_steps=3, condition_mask=mask, generator=_seed())
    assert lesion.shape == images.shape
    assert torch.equal(lesion[mask.expand_as(images) == 0], images[mask.expand_as(images) == 0])


def test_bad_masks_and_arguments_are_refused(components) -> None:
    images = _images()
    with pytest.raises(ValueError, match="mask shape"):
        inpaint(components, images, torch.ones(2, 1, 16, 16), SOURCE)
    with pytest.raises(ValueError, match="mask is empty"):
        inpaint(components, images, torch.zeros(2, 1, 32, 32), SOURCE)
    with pytest.raises(ValueError, match="one prompt per image"):
        inpaint(components, images, _mask(), SOURCE[:1])
    with pytest.raises(ValueError, match="engine"):
        counterfactual(components, images, SOURCE, TARGET, engine="pix2pix")
    with pytest.raises(ValueError, match="strength"):
        counterfactual(components, images, SOURCE, TARGET, strength=0.0)
    with pytest.raises(ValueError, match="target prompts"):
        counterfactual(components, images, SOURCE, TARGET[:1])


@pytest.mark.parametrize("engine", ["inversion", "sdedit", "pix2pix-zero"])
def test_a_residual_edit_is_the_image_plus_the_edit_minus_the_reconstruction(components, engine) -> None:
    images, options = _images().clamp(-1, 1), {"engine": engine, "num_inference_steps": STEPS, "strength": 0.5}
    null = counterfactual(components, images, SOURCE, SOURCE, residual=True, generator=_seed(), **options)
    assert torch.equal(null, images)  # a null edit returns the image exactly: its reconstruction error cancels
    assert (
        counterfactual(components, images, SOURCE, SOURCE, generator=_seed(), **options) - images
    ).abs().max() > 0.05
    edited = counterfactual(components, images, SOURCE, TARGET, generator=_seed(), **options)
    reconstruction = counterfactual(components, images, SOURCE, SOURCE, generator=_seed(), **options)
    residual = counterfactual(components, images, SOURCE, TARGET, residual=True, generator=_seed(), **options)
    assert torch.allclose(residual, (images + (edited - reconstruction)).clamp(-1, 1), atol=1e-6)


def test_a_residual_edit_of_a_stochastic_engine_needs_a_generator(components) -> None:
    with pytest.raises(ValueError, match="residual edits with engine='sdedit' need a generator"):
        counterfactual(components, _images(), SOURCE, TARGET, engine="sdedit", residual=True, num_inference_steps=2)
