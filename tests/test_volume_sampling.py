"""Volume sampling, DDIM inversion and counterfactual NIfTI (medcf.volumes) on a toy 3-D model."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medcf.models import Components, decode_latents, encode_images, tiny_volume_components
from medcf.volumes import counterfactual_nifti, counterfactual_volumes, ddim_invert_volumes, generate_volumes
from test_volume_data import write_ct_cohort

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ["chest CT, pleural effusion", "normal chest CT"]


def _volumes() -> torch.Tensor:
    volumes = torch.full((2, 1, 16, 16, 8), -0.6)
    volumes[:, :, 4:12, 4:12, 2:6] = 0.8
    volumes[1, :, :8] -= 0.3
    return volumes


def _blind_to_the_latents(components: Components) -> Components:
    """Zero conv_in: ε̂ then depends on (t, prompt) only, so ε̂(z_prev, t) = ε̂(z_t, t) and inversion is exact."""
    with torch.no_grad():
        components.unet.conv_in.weight.zero_()
    return components


def test_generation_is_seeded_and_sized() -> None:
    components = tiny_volume_components()
    settings = {"num_inference_steps": 3, "guidance_scale": 2.0}
    first = generate_volumes(components, PROMPTS, generator=torch.Generator().manual_seed(1), **settings)
    again = generate_volumes(components, PROMPTS, generator=torch.Generator().manual_seed(1), **settings)
    other = generate_volumes(components, PROMPTS, generator=torch.Generator().manual_seed(2), **settings)
    assert first.shape == (2, 1, 16, 16, 8) and first.min() >= -1 and first.max() <= 1
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().max() > 1e-4
    larger = generate_volumes(components, PROMPTS[:1], size=(32, 16, 8), **settings)
    assert larger.shape == (1, 1, 32, 16, 8)
    with pytest.raises(ValueError, match="multiple of 4"):
        generate_volumes(components, PROMPTS[:1], size=(18, 16, 8), **settings)


@pytest.mark.parametrize("latent_drift", [0.1, [0.1, -0.05, 0.2]])
def test_drift_shifts_the_initial_noise_by_delta(latent_drift) -> None:
    components = tiny_volume_components()
    inputs: list[torch.Tensor] = []
    hook = components.unet.register_forward_pre_hook(lambda module, args: inputs.append(args[0].clone()))
    for drift in (0.0, latent_drift):
        generate_volumes(
            components, PROMPTS, num_inference_steps=2, latent_drift=drift, generator=torch.Generator().manual_seed(0)
        )
    hook.remove()
    plain, drifted = inputs[0], inputs[2]  # the first U-Net input of each run: [z_T, z_T] (DDIM does not scale it)
    delta = torch.as_tensor(latent_drift).reshape(1, -1, 1, 1, 1).expand(1, 3, 1, 1, 1)
    torch.testing.assert_close(drifted - plain, delta.expand_as(plain), atol=1e-6, rtol=0)


@pytest.mark.parametrize("latent_drift", [0.0, 0.1])
def test_inversion_then_generation_returns_the_volume(latent_drift) -> None:
    components = _blind_to_the_latents(tiny_volume_components())
    latents = encode_images(components, _volumes(), sample=False)
    settings = {"num_inference_steps": 5, "guidance_scale": 1.0, "latent_drift": latent_drift}
    noise = ddim_invert_volumes(components, latents, PROMPTS, **settings)
    regenerated = generate_volumes(components, PROMPTS, latents=noise, **settings)
    torch.testing.assert_close(regenerated, decode_latents(components, latents), atol=1e-4, rtol=0)


def test_counterfactual_edits_the_target_and_keeps_the_size() -> None:
    components = tiny_volume_components()
    volumes = _volumes()[:, :, :14, :, :6]  # sides not multiples of 4: padded for the model, cropped back
    options = {"strength": 0.6, "num_inference_steps": 5, "guidance_scale": 3.0}
    same = counterfactual_volumes(components, volumes, PROMPTS, PROMPTS, **options)
    edited = counterfactual_volumes(components, volumes, PROMPTS, PROMPTS[::-1], **options)
    assert edited.shape == volumes.shape == same.shape
    assert (edited - same).abs().max() > 1e-4  # the target prompt changes the result
    # residual: the source prompt as target gives the volume back exactly; another target changes it
    unchanged = counterfactual_volumes(components, volumes, PROMPTS, PROMPTS, residual=True, **options)
    torch.testing.assert_close(unchanged, volumes, rtol=0, atol=1e-6)
    residual = counterfactual_volumes(components, volumes, PROMPTS, PROMPTS[::-1], residual=True, **options)
    torch.testing.assert_close(residual, (volumes + edited - same).clamp(-1, 1), rtol=0, atol=1e-5)


def test_counterfactual_nifti_has_the_source_geometry_in_hu(tmp_path: Path) -> None:
    root = write_ct_cohort(tmp_path / "ct", patients=1)
    source = root / "volumes" / "ct000.nii.gz"
    out = counterfactual_nifti(
        tiny_volume_components(), source, tmp_path / "cf.nii.gz", "chest CT, pleural effusion", "normal chest CT",
        value_range=(-1024, 1024), strength=0.5, num_inference_steps=4,
    )  # fmt: skip
    written, original = nib.load(out), nib.load(source)
    np.testing.assert_array_equal(written.affine, original.affine)
    values = np.asarray(written.dataobj)
    assert values.shape == original.shape and written.get_data_dtype() == np.int16
    assert values.min() >= -1024 and values.max() <= 1024


def test_a_model_without_a_value_range_asks_for_one(tmp_path: Path) -> None:
    root = write_ct_cohort(tmp_path / "ct", patients=1)
    with pytest.raises(ValueError, match="records no value range; pass value_range"):
        counterfactual_nifti(
            tiny_volume_components(), root / "volumes" / "ct000.nii.gz", tmp_path / "cf.nii.gz", "a", "b"
        )
