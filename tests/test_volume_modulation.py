"""DGM-VLC's text-visual modulation in 3-D (models/volume_modulation.py): γ·h + β hooked after every ResNet norm2 of
MONAI's U-Net, starting as the identity, saved and loaded with the U-Net, and trained by `medcf train`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock

from medcf.models import VolumeUNet, encode_prompts, load_components
from medcf.models.volume_components import scratch_volume_unet, tiny_volume_components
from medcf.training import train
from medcf.training.setup import build_components
from test_volume_data import write_ct_cohort
from test_volume_training import volume_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ["Chest CT: Smoking status: current smoker.", "Chest CT: Smoking status: never smoker."]


@pytest.fixture(scope="module")
def ct_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ct_cohort(tmp_path_factory.mktemp("ct"), patients=8)


def unet_inputs(components: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    latents = torch.randn(2, 3, 8, 8, 4, generator=torch.Generator().manual_seed(0))
    return latents, torch.tensor([500, 500]), encode_prompts(components, PROMPTS)


def test_a_scratch_unet_starts_unmodulated() -> None:
    unet = scratch_volume_unet((8, 8, 4), latent_channels=4, cross_attention_dim=384, text_modulation=True)
    assert unet.modulation.pool.pool.num_heads == 8  # MiniLM's 384 = 8 heads × 48
    for projection in unet.modulation.projections:  # γ = β = 0 until trained
        assert not projection.weight.any() and not projection.bias.any()


def test_a_zero_modulation_is_the_identity_and_a_nonzero_one_follows_the_prompt() -> None:
    plain, modulated = tiny_volume_components(), tiny_volume_components(text_modulation=True)
    missing = modulated.unet.load_state_dict(plain.unet.state_dict(), strict=False).missing_keys
    assert missing and all(key.startswith("modulation.") for key in missing)
    latents, timesteps, states = unet_inputs(plain)
    with torch.no_grad():
        for projection in modulated.unet.modulation.projections:
            projection.weight.zero_(), projection.bias.zero_()
        expected = plain.unet(latents, timesteps, encoder_hidden_states=states).sample
        assert torch.allclose(modulated.unet(latents, timesteps, encoder_hidden_states=states).sample, expected)
        for projection in modulated.unet.modulation.projections:
            projection.weight.normal_(0, 0.5)
        changed = modulated.unet(latents, timesteps, encoder_hidden_states=states).sample
        swapped = modulated.unet(latents, timesteps, encoder_hidden_states=states.flip(0)).sample
    assert not torch.allclose(changed, expected, atol=1e-4)
    assert not torch.allclose(changed, swapped, atol=1e-4)  # the scale and shift come from each sample's prompt
    norms = [m for m in modulated.unet.network.modules() if isinstance(m, DiffusionUNetResnetBlock)]
    assert len(modulated.unet.modulation.projections) == len(norms) > 0  # every ResNet block, down, mid and up


def test_the_hooks_refuse_a_call_without_prompts() -> None:
    unet = tiny_volume_components(text_modulation=True).unet
    with pytest.raises(RuntimeError, match="called without its prompts"):
        unet.network(torch.randn(1, 3, 8, 8, 4), torch.tensor([10]), context=torch.randn(1, 4, 32))


def test_training_learns_the_modulation_and_the_saved_model_reloads_it(ct_root: Path, tmp_path: Path) -> None:
    config = volume_config(ct_root, "model.text_modulation=true", "train.max_steps=3", "train.ema_decay=0")
    model = train(config, tmp_path / "run", progress=False)
    loaded = load_components(model)
    assert isinstance(loaded.unet, VolumeUNet) and loaded.unet.config.text_modulation
    initial = build_components(**vars(config.model), seed=config.train.seed).unet.modulation.state_dict()
    trained = loaded.unet.modulation.state_dict()
    assert initial.keys() == trained.keys()
    assert any(not torch.equal(initial[name], trained[name]) for name in initial)  # the optimizer moved them
    latents, timesteps, states = unet_inputs(loaded)
    again = load_components(model)
    with torch.no_grad():
        first = loaded.unet(latents, timesteps, encoder_hidden_states=states).sample
        second = again.unet(latents, timesteps, encoder_hidden_states=states).sample
    assert torch.equal(first, second)
