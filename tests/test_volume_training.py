"""3-D latent diffusion through medcf's own training paths: `train` and `train_autoencoder`, model.spatial_dims=3."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medcf.config import Config, load_config
from medcf.data import collate_items
from medcf.models import (
    VolumeAutoencoderKL,
    VolumeUNet,
    encode_images,
    encode_prompts,
    load_components,
    save_components,
    tiny_components,
)
from medcf.training import train
from medcf.training.data import TRAIN
from medcf.training.loss import diffusion_loss
from medcf.training.run import training_datasets
from medcf.training.setup import build_components
from medcf.training.vae_run import train_autoencoder
from medcf.volumes import counterfactual_nifti, generate_nifti, generate_volumes
from test_volume_data import write_ct_cohort

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ct_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ct_cohort(tmp_path_factory.mktemp("ct"), patients=8)


def volume_config(root: Path, *overrides: str) -> Config:
    base = [
        f"data.root={root}",
        "data.modality=chest CT",
        "data.holdout_fraction=0.25",
        "data.patch=[16, 16, 8]",
        "model.spatial_dims=3",
        "model.tiny=true",
        "train.batch_size=2",
        "train.learning_rate=1e-3",
        "train.checkpoint_every=0",
        "train.sample_every=0",
        "sample.num_images=2",
        "sample.num_inference_steps=2",
    ]
    return load_config(None, [*base, *overrides])


def test_denoising_loss_falls_over_30_steps(ct_root: Path) -> None:
    config = volume_config(ct_root, "train.latent_drift=0.05")
    components = build_components(**vars(config.model), prediction_type="epsilon", seed=0)
    dataset = training_datasets(config)[TRAIN]
    batch = collate_items([dataset[index] for index in range(4)])
    with torch.no_grad():
        latents = encode_images(components, batch["pixel_values"], sample=False)
        embeds = encode_prompts(components, batch["prompt"])
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn((8, *latents.shape), generator=generator)  # a fixed evaluation set: noise and timesteps
    timesteps = torch.randint(0, 1000, (8, len(latents)), generator=generator)
    drift = torch.full((1, 3, 1, 1, 1), 0.05)

    def held_loss() -> float:
        with torch.no_grad():
            losses = [
                diffusion_loss(
                    components.unet, components.scheduler, latents, embeds, noise=n, timesteps=t, latent_drift=drift
                )
                for n, t in zip(noise, timesteps, strict=True)
            ]
        return torch.cat(losses).mean().item()

    before = held_loss()
    optimizer = torch.optim.AdamW(components.unet.parameters(), lr=1e-3)
    components.unet.train()
    for _ in range(30):
        loss = diffusion_loss(
            components.unet, components.scheduler, latents, embeds, latent_drift=drift, generator=generator
        )
        loss.mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    components.unet.eval()
    assert held_loss() < 0.5 * before  # measured: 2.50 → 0.70


def test_train_vae_then_train_writes_a_loadable_3d_model(tmp_path: Path, ct_root: Path) -> None:
    vae_config = volume_config(ct_root, "vae.max_steps=2", "vae.batch_size=2", "vae.block_out_channels=[8, 16]")
    vae_dir = train_autoencoder(vae_config, tmp_path / "vae-run", progress=False)
    assert (tmp_path / "vae-run" / "reconstructions.png").is_file()
    config = volume_config(ct_root, "train.max_steps=2", f"model.vae={vae_dir}", "train.latent_drift=0.05")
    model_dir = train(config, tmp_path / "run", progress=False)
    components = load_components(model_dir)
    assert isinstance(components.vae, VolumeAutoencoderKL) and isinstance(components.unet, VolumeUNet)
    assert components.vae.config.block_out_channels == [8, 16] and components.unet.config.sample_size == [8, 8, 4]
    assert list((tmp_path / "run" / "samples").glob("step-*.png"))  # mid-axial slices of the sampled volumes
    assert components.vae.config.value_range == [-1024, 1024] and components.vae.config.spacing_mm == [2, 2, 4]
    volumes = generate_volumes(
        components, ["chest CT"], num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    )
    assert volumes.shape == (1, 1, 16, 16, 8)
    # NIfTI in HU on the training grid, and a counterfactual in its source's geometry, from what the model recorded
    written = generate_nifti(
        components, ["chest CT", "chest CT, pleural effusion"], tmp_path / "gen", num_inference_steps=2
    )
    image = nib.load(written[1])
    np.testing.assert_array_equal(image.affine, np.diag([2.0, 2.0, 4.0, 1.0]))
    assert (
        image.shape == (16, 16, 8)
        and -1024 <= np.asarray(image.dataobj).min() <= np.asarray(image.dataobj).max() <= 1024
    )
    source = ct_root / "volumes" / "ct001.nii.gz"
    edited = counterfactual_nifti(
        components, source, tmp_path / "cf.nii.gz", "chest CT", "normal chest CT", num_inference_steps=2
    )
    np.testing.assert_array_equal(nib.load(edited).affine, nib.load(source).affine)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.spatial_dims=4"], "use 2 .images. or 3 .volumes."),
        (["model.spatial_dims=2", "data.patch=[8, 8, 4]"], "data.patch=.* crops volumes"),
        (["data.patch=[8, 8]"], r"give \[X, Y, Z\]"),
        (["train.method=lora"], "train.method=full"),
    ],
)
def test_config_refuses_what_3d_cannot_do(ct_root: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        volume_config(ct_root, *overrides)


def test_a_3d_run_refuses_a_2d_pretrained_folder(tmp_path: Path, ct_root: Path) -> None:
    save_components(tiny_components(), tmp_path / "sd")
    config = volume_config(ct_root, f"model.pretrained={tmp_path / 'sd'}")
    with pytest.raises(ValueError, match="is a 2-D model"):
        train(config, tmp_path / "run", progress=False)


def test_patch_sides_must_fit_the_downsampling(tmp_path: Path, ct_root: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        train(volume_config(ct_root, "data.patch=[14, 16, 8]", "train.max_steps=1"), tmp_path / "run", progress=False)


def test_patch_batches_repeat_per_seed_and_on_resume(ct_root: Path) -> None:
    from medcf.training.data import batch_stream

    dataset = training_datasets(volume_config(ct_root))[TRAIN]  # random 16 × 16 × 8 patches of 32 × 32 × 16 volumes

    def patches(start: int, count: int, seed: int = 0) -> list[torch.Tensor]:
        stream = batch_stream(dataset, 2, seed=seed, start=start)
        return [next(stream)["pixel_values"] for _ in range(count)]

    torch.manual_seed(123)
    before = torch.get_rng_state()
    uninterrupted = patches(0, 6)  # more than one epoch of 3 batches
    assert torch.equal(torch.get_rng_state(), before)  # reading does not move the global generator
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, patches(0, 6), strict=True))  # same seed, same crops
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted[4:], patches(4, 2), strict=True))  # resumed at 4
    assert not torch.equal(uninterrupted[0], patches(0, 1, seed=1)[0])
