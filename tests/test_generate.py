"""medcf.generate: equality with vanilla diffusers, determinism, and Latent Drift (Yeganeh et al. 2025, Eq. 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

from medcf.generate import generate
from medcf.models import Components, load_components, save_components, tiny_components

PROMPTS = ["chest x-ray with cardiomegaly", "normal chest x-ray"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def components() -> Components:
    return tiny_components(in_channels=1)


def _generate_with_latents(components: Components, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Images from generate and the final latents it handed to the VAE (read by a hook on its first layer)."""
    captured: list[torch.Tensor] = []
    handle = components.vae.post_quant_conv.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    settings = {"num_inference_steps": 4, "generator": torch.Generator().manual_seed(0)} | kwargs
    try:
        images = generate(components, PROMPTS, **settings)
    finally:
        handle.remove()
    return images, captured[0] * components.vae.config.scaling_factor


def _final_latents(components: Components, **kwargs: object) -> torch.Tensor:
    return _generate_with_latents(components, **kwargs)[1]


@pytest.mark.parametrize(("in_channels", "text_modulation"), [(1, False), (3, False), (1, True)])
def test_generate_equals_vanilla_pipeline(tmp_path: Path, in_channels: int, text_modulation: bool) -> None:
    model = tiny_components(in_channels=in_channels, text_modulation=text_modulation)
    folder = save_components(model, tmp_path / "model")
    components = load_components(folder)
    pipeline = StableDiffusionPipeline.from_pretrained(
        folder, safety_checker=None, requires_safety_checker=False, local_files_only=True
    )
    pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
    noise = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    settings = {"num_inference_steps": 3, "guidance_scale": 3.0, "latents": noise}
    vanilla_latents: list[torch.Tensor] = []

    def keep_latents(pipe: object, step: int, timestep: object, tensors: dict) -> dict:
        vanilla_latents.append(tensors["latents"])
        return tensors

    vanilla_images = pipeline(PROMPTS, output_type="pt", callback_on_step_end=keep_latents, **settings).images
    images, latents = _generate_with_latents(components, scheduler="ddim", **settings)
    assert images.shape == (2, in_channels, 32, 32)
    assert torch.allclose(latents, vanilla_latents[-1], atol=1e-4)
    assert torch.allclose((images + 1) / 2, vanilla_images, atol=1e-4)  # the pipeline returns [0, 1]


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm", "dpm++"])
def test_same_seed_same_images_different_seed_differs(components: Components, scheduler: str) -> None:
    def run(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return generate(components, PROMPTS, num_inference_steps=3, scheduler=scheduler, generator=generator)

    first = run(0)
    assert first.shape == (2, 1, 32, 32) and first.min() >= -1 and first.max() <= 1
    assert torch.equal(first, run(0))
    assert not torch.allclose(first, run(1))


def test_latent_drift_raises_the_latent_mean(components: Components) -> None:
    base = _final_latents(components)
    drifted = _final_latents(components, latent_drift=0.1)
    assert drifted.mean() > base.mean() + 0.1
    per_channel = _final_latents(components, latent_drift=[0.0, 0.0, 0.2, 0.0])
    shift = (per_channel - base).mean(dim=(0, 2, 3))
    assert shift[2] > 0.2 and shift[2] > 4 * shift[[0, 1, 3]].abs().max()


def test_drift_prior_only_shifts_the_start(components: Components) -> None:
    base = _final_latents(components)
    prior_only = _final_latents(components, latent_drift=0.1, drift_every_step=False)
    every_step = _final_latents(components, latent_drift=0.1)
    assert not torch.allclose(prior_only, base)
    assert (every_step - base).mean() > (prior_only - base).mean()
    off = _final_latents(components, latent_drift=0.1, drift_prior=False, drift_every_step=False)
    assert torch.equal(off, base)


def test_bad_arguments_name_the_fix(components: Components) -> None:
    with pytest.raises(ValueError, match="one per latent channel"):
        generate(components, PROMPTS, num_inference_steps=1, latent_drift=[0.1, 0.2])
    with pytest.raises(ValueError, match="unknown; choose one of"):
        generate(components, PROMPTS, num_inference_steps=1, scheduler="euler")
    with pytest.raises(ValueError, match="latents shape"):
        generate(components, PROMPTS, num_inference_steps=1, latents=torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match="pass a list of strings"):
        generate(components, "one prompt", num_inference_steps=1)
    with pytest.raises(ValueError, match="multiples of the VAE factor 2"):
        generate(components, PROMPTS, num_inference_steps=1, height=33)


def _masks() -> torch.Tensor:
    masks = torch.zeros(2, 1, 32, 32)
    masks[0, :, 16:, 16:] = 1
    masks[1, :, :8, :8] = 1
    return masks


@pytest.fixture(scope="module")
def mask_model() -> Components:
    return tiny_components(mask_conditioning=True)


def test_mask_conditioned_generation_is_seeded_and_follows_the_mask(mask_model: Components) -> None:
    def run(seed: int, masks: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return generate(mask_model, PROMPTS, num_inference_steps=3, generator=generator, mask=masks)

    first = run(0, _masks())
    assert first.shape == (2, 1, 32, 32)
    assert torch.equal(first, run(0, _masks()))
    assert (first - run(0, _masks().flip(-1))).abs().max() > 1e-4
    assert (first - run(1, _masks())).abs().max() > 1e-4


def test_mask_is_required_exactly_by_mask_conditioned_models(components: Components, mask_model: Components) -> None:
    with pytest.raises(ValueError, match="is mask-conditioned: pass mask="):
        generate(mask_model, PROMPTS, num_inference_steps=1)
    with pytest.raises(ValueError, match="not mask-conditioned; drop the mask"):
        generate(components, PROMPTS, num_inference_steps=1, mask=_masks())
    with pytest.raises(ValueError, match="at the image size, \\(2, 1, 32, 32\\)"):
        generate(mask_model, PROMPTS, num_inference_steps=1, mask=_masks()[:, :, :16])
    with pytest.raises(ValueError, match="expected \\{0, 1\\}"):
        generate(mask_model, PROMPTS, num_inference_steps=1, mask=_masks() * 255)


def test_prompts_csv_cells_never_start_a_spreadsheet_formula(tmp_path: Path) -> None:
    import csv

    from medcf.sampling import generate_to_folder

    prompts = ["=HYPERLINK(\"http://x\")", "@SUM(A1)", "-1+1", "a chest x-ray"]
    folder = generate_to_folder(tiny_components(), prompts, tmp_path / "out", num_inference_steps=1)
    with (folder / "prompts.csv").open() as table:
        cells = [row["prompt"] for row in csv.DictReader(table)]
    assert cells == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "'-1+1", "a chest x-ray"]
