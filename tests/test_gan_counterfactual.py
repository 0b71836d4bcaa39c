"""GAN counterfactuals by latent optimisation: the source prompt reconstructs the image, the target changes it."""

from __future__ import annotations

import pytest
import torch

from medcf.editing.gan_counterfactual import gan_counterfactual, invert_latents
from medcf.models.gan_components import gan_generate, synthesize, tiny_gan

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SOURCE = ["chest X-ray of a 60 year old female, never smoker", "chest X-ray of a 45 year old male, never smoker"]
TARGET = [
    "chest X-ray of a 60 year old female, current smoker, pleural effusion",
    "chest X-ray of a 45 year old male, current smoker, cardiomegaly",
]


def squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(dim=1)


@pytest.mark.parametrize(("spatial_dims", "size"), [(2, 16), (3, (16, 16, 8))])
def test_the_source_prompt_reconstructs_the_image_and_the_target_changes_it(spatial_dims: int, size) -> None:
    gan = tiny_gan(spatial_dims=spatial_dims, sample_size=size, seed=2)
    images = gan_generate(gan, SOURCE, generator=torch.Generator().manual_seed(7))  # images G can reach
    random = gan_generate(gan, SOURCE, generator=torch.Generator().manual_seed(8))
    latents = invert_latents(gan, images, SOURCE, steps=60)
    with torch.no_grad():
        reconstruction = synthesize(gan, latents, SOURCE)
    assert (squared_error(reconstruction, images) < 0.25 * squared_error(random, images)).all()
    edited = gan_counterfactual(gan, images, SOURCE, TARGET, steps=60)
    unedited = gan_counterfactual(gan, images, SOURCE, SOURCE, steps=60)
    assert torch.allclose(unedited, reconstruction, atol=1e-5)  # deterministic: z starts at the prior's mode
    assert ((edited - unedited).flatten(1).abs().amax(dim=1) > 1e-3).all()  # the prompt changes the image
    assert edited.shape == images.shape and edited.abs().max() <= 1
    assert all(parameter.requires_grad for parameter in gan.generator.parameters())  # left as found


def test_a_mask_conditioned_gan_edits_with_the_mask() -> None:
    gan = tiny_gan(mask_conditioning=True)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    images = gan_generate(gan, SOURCE, mask=mask, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="mask-conditioned: pass mask="):
        gan_counterfactual(gan, images, SOURCE, TARGET, steps=2)
    assert gan_counterfactual(gan, images, SOURCE, TARGET, mask=mask, steps=2).shape == images.shape


def test_images_of_another_size_are_refused() -> None:
    gan = tiny_gan()
    with pytest.raises(ValueError, match=r"expected \(B, \*\(1, 16, 16\)\)"):
        gan_counterfactual(gan, torch.zeros(2, 1, 32, 32), SOURCE, TARGET)
    with pytest.raises(ValueError, match="2 source but 1 target prompts"):
        gan_counterfactual(gan, torch.zeros(2, 1, 16, 16), SOURCE, TARGET[:1])
