"""medcf.inversion.ddim_invert: the exact inverse of the DDIM sampling loop, Latent Drift included."""

from __future__ import annotations

import pytest
import torch

from medcf.generate import generate
from medcf.inversion import ddim_invert
from medcf.models import Components, decode_latents, encode_images, tiny_components

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ["chest x-ray, right pleural effusion", "normal chest x-ray"]


def _images() -> torch.Tensor:
    images = torch.full((2, 1, 32, 32), -0.6)
    images[:, :, 8:24, 8:24] = 0.8
    images[1, :, :, :16] -= 0.5
    return images


def _blind_to_the_latents(components: Components) -> Components:
    """Zero conv_in: ε̂ then depends on (t, prompt) only, so ε̂(z_prev, t) = ε̂(z_t, t) and inversion is exact."""
    with torch.no_grad():
        components.unet.conv_in.weight.zero_()
    return components


@pytest.mark.parametrize("latent_drift", [0.0, 0.1, [0.1, -0.05, 0.0, 0.2]])
@pytest.mark.parametrize("steps", [5, 20])
def test_inversion_then_generation_returns_the_image(latent_drift, steps: int) -> None:
    components = _blind_to_the_latents(tiny_components(in_channels=1))
    latents = encode_images(components, _images(), sample=False)
    noise = ddim_invert(components, latents, PROMPTS, num_inference_steps=steps, latent_drift=latent_drift)
    settings = {"num_inference_steps": steps, "guidance_scale": 1.0, "latent_drift": latent_drift}
    regenerated = generate(components, PROMPTS, latents=noise, **settings)
    torch.testing.assert_close(regenerated, decode_latents(components, latents), atol=1e-4, rtol=0)
    # The drift is removed, not kept: regenerating without δ lands elsewhere when δ ≠ 0.
    if latent_drift != 0.0:
        elsewhere = generate(components, PROMPTS, latents=noise, **{**settings, "latent_drift": 0.0})
        assert (elsewhere - regenerated).abs().max() > 1e-2


def test_inverted_noise_is_seed_free_and_prompt_dependent() -> None:
    components = tiny_components(in_channels=1)
    latents = encode_images(components, _images(), sample=False)
    first = ddim_invert(components, latents, PROMPTS, num_inference_steps=5)
    assert torch.equal(first, ddim_invert(components, latents, PROMPTS, num_inference_steps=5))
    other = ddim_invert(components, latents, PROMPTS[::-1], num_inference_steps=5)
    assert (first - other).abs().max() > 1e-4  # the source prompt steers the inversion


def test_bad_arguments_name_the_fix() -> None:
    components = tiny_components(in_channels=1)
    latents = encode_images(components, _images(), sample=False)
    with pytest.raises(ValueError, match="2 prompts for 1 latents"):
        ddim_invert(components, latents[:1], PROMPTS)
    with pytest.raises(ValueError, match="is mask-conditioned: pass mask="):
        ddim_invert(tiny_components(in_channels=1, mask_conditioning=True), latents, PROMPTS, num_inference_steps=2)
