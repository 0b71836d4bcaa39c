"""VAE training (L1 + KL, LDM §3): the loss falls, reconstructions improve, the latent scale is 1/std."""

from __future__ import annotations

import statistics

import pytest
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from medcf.models import Components, encode_images, tiny_components
from medcf.training.vae import latent_scaling_factor, reconstruction_metrics, set_scaling_factor, train_vae

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS = 80


def disks(count: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(count, 1, size, size) soft-edged disks of random centre, radius and brightness, in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    rows, columns = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.rand(count, 2, generator=generator) * size * 0.6 + size * 0.2
    radius = torch.rand(count, 1, 1, generator=generator) * size * 0.25 + size * 0.1
    brightness = torch.rand(count, 1, 1, generator=generator) * 0.8 + 0.2
    distance = ((rows - centre[:, 0, None, None]) ** 2 + (columns - centre[:, 1, None, None]) ** 2).sqrt()
    images = torch.sigmoid((radius - distance) * 1.5) * brightness
    return (images * 2 - 1)[:, None]


def loader(count: int = 64, batch_size: int = 8) -> DataLoader:
    return DataLoader([{"pixel_values": image} for image in disks(count)], batch_size=batch_size)


def fresh_components() -> Components:
    return tiny_components(seed=0)  # VAE block_out_channels (8, 16), 32 px, 4 latent channels


@pytest.fixture(scope="module")
def trained() -> dict:
    components = fresh_components()
    before = reconstruction_metrics(components.vae, loader(), max_batches=8)
    seen: list[tuple[int, float]] = []
    losses = train_vae(
        components.vae, loader(), max_steps=STEPS, learning_rate=1e-3, accelerator=Accelerator(),
        progress=False, on_step=lambda step, loss: seen.append((step, loss)),
    )  # fmt: skip
    after = reconstruction_metrics(components.vae, loader(), max_batches=8)
    return {"components": components, "losses": losses, "seen": seen, "before": before, "after": after}


def test_l1_loss_falls(trained: dict) -> None:
    losses = trained["losses"]
    assert len(losses) == STEPS and all(torch.isfinite(torch.tensor(losses)))
    # Measured: first-10 mean 0.90 → last-10 mean ≈ 0.13 (80 steps, lr 1e-3).
    assert statistics.mean(losses[-10:]) < 0.3 * statistics.mean(losses[:10])


def test_on_step_reports_every_step(trained: dict) -> None:
    assert trained["seen"] == list(enumerate(trained["losses"], start=1))


def test_reconstruction_improves(trained: dict) -> None:
    before, after = trained["before"], trained["after"]
    assert before["images"] == after["images"] == 64
    # Measured: PSNR 5.3 → ≈ 23 dB, SSIM 0.00 → ≈ 0.6, L1 0.51 → ≈ 0.05.
    assert after["psnr"] > before["psnr"] + 10
    assert after["ssim"] > before["ssim"] + 0.3
    assert after["l1"] < 0.3 * before["l1"]
    assert not trained["components"].vae.training


def test_same_seed_same_losses_other_seed_differs() -> None:
    runs = []
    for seed in (0, 0, 1):
        vae = fresh_components().vae
        runs.append(train_vae(vae, loader(16), max_steps=4, learning_rate=1e-3, seed=seed, progress=False))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # the posterior noise follows `seed`


def test_scaling_factor_is_one_over_latent_std(trained: dict) -> None:
    components = trained["components"]
    data = loader()
    factor = latent_scaling_factor(components.vae, data, max_batches=3)
    with torch.no_grad():
        images = torch.cat([batch["pixel_values"] for _, batch in zip(range(3), data, strict=False)])
        means = components.vae.encode(images).latent_dist.mean
    assert factor == pytest.approx(1 / means.std().item(), rel=1e-5)
    set_scaling_factor(components.vae, factor)
    assert components.vae.config.scaling_factor == factor
    with torch.no_grad():
        scaled = encode_images(components, images, sample=False)  # models/latents.py applies the factor
    assert scaled.std().item() == pytest.approx(1.0, rel=1e-4)


def test_bad_inputs_raise() -> None:
    vae = fresh_components().vae
    with pytest.raises(ValueError, match="max_steps"):
        train_vae(vae, loader(), max_steps=0, progress=False)
    with pytest.raises(ValueError, match="no batches"):
        train_vae(vae, DataLoader([], batch_size=2), max_steps=1, progress=False)
    with pytest.raises(ValueError, match="scaling_factor"):
        set_scaling_factor(vae, -0.5)
    with pytest.raises(ValueError, match="max_batches"):
        latent_scaling_factor(vae, loader(), max_batches=0)
