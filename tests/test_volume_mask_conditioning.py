"""DGM-VLC's hybrid condition in 3-D: the mask volume, cropped with its volume, enters the U-Net as one more input
channel at latent resolution, in training, sampling, inversion and counterfactuals."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medcf.cli import app
from medcf.data.volume import from_unit_range
from medcf.models import load_components
from medcf.models.volume_components import tiny_volume_components
from medcf.training import train
from medcf.training.data import TRAIN, load_cohorts, volume_dataset
from medcf.volumes import counterfactual_volumes, generate_volumes
from test_volume_data import write_ct_cohort
from test_volume_training import volume_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPT = ["Chest CT: Smoking status: never smoker."]


@pytest.fixture(scope="module")
def ct_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ct_cohort(tmp_path_factory.mktemp("ct"), patients=8, shape=(24, 24, 12))


def test_a_random_patch_crops_the_mask_with_its_volume(ct_root: Path) -> None:
    cohort = load_cohorts(ct_root, modality="chest CT", holdout_fraction=0.25, seed=0)[TRAIN]
    options = {"bad_files": "error", "prompt_style": "table", "patient_info": True, "seed": 0}
    dataset = volume_dataset(cohort, patch=[16, 16, 8], masks=True, **options)
    assert "mask" not in volume_dataset(cohort, patch=[16, 16, 8], **options)[0]  # read only when conditioned
    for index in range(len(dataset)):
        item = dataset[index]
        if item["row"]["pleural_effusion"]:
            continue  # fluid fills part of these lungs: the mask's HU are not all aerated
        hu = from_unit_range(item["pixel_values"][0], (-1024, 1024)).numpy()
        lungs = item["mask"][0].numpy() > 0.5
        assert item["mask"].shape == item["pixel_values"].shape == (1, 16, 16, 8) and lungs.any()
        assert np.abs(hu[lungs] + 850).max() < 60  # the writer's lungs: −850 HU plus noise of σ 10
        assert not (np.abs(hu[~lungs] + 850) < 60).any()


@pytest.fixture(scope="module")
def masked_model(ct_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = volume_config(ct_root, "model.mask_conditioning=true", "train.max_steps=2", "sample.num_images=1")
    return train(config, tmp_path_factory.mktemp("masked") / "run", progress=False)


def test_training_widens_the_unet_and_the_mask_steers_sampling(masked_model: Path) -> None:
    components = load_components(masked_model)
    unet = components.unet
    assert unet.config.in_channels == unet.config.out_channels + 1
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, unet.config.out_channels, 8, 8, 4, generator=generator)
    empty, full = torch.zeros(1, 1, 16, 16, 8), torch.ones(1, 1, 16, 16, 8)
    options = {"num_inference_steps": 2, "latents": latents}
    first = generate_volumes(components, PROMPT, mask=empty, **options)
    second = generate_volumes(components, PROMPT, mask=full, **options)
    assert first.shape == (1, 1, 16, 16, 8) and not torch.allclose(first, second, atol=1e-5)
    with pytest.raises(ValueError, match=r"mask-conditioned: pass mask=\(B, 1, X, Y, Z\)"):
        generate_volumes(components, PROMPT, **options)


def test_counterfactuals_take_the_mask_and_a_plain_model_refuses_one() -> None:
    masked, plain = tiny_volume_components(mask_conditioning=True), tiny_volume_components()
    volumes, mask = torch.rand(1, 1, 16, 16, 8) * 2 - 1, (torch.rand(1, 1, 16, 16, 8) > 0.5).float()
    options = {"strength": 0.5, "num_inference_steps": 2}
    target = ["Chest CT: Smoking status: current smoker."]
    edited = counterfactual_volumes(masked, volumes, PROMPT, target, mask=mask, **options)
    other = counterfactual_volumes(masked, volumes, PROMPT, target, mask=1 - mask, **options)
    assert edited.shape == volumes.shape and not torch.allclose(edited, other, atol=1e-5)
    with pytest.raises(ValueError, match="not mask-conditioned; drop the mask"):
        counterfactual_volumes(plain, volumes, PROMPT, target, mask=mask, **options)


def test_generate_takes_a_mask_volume_on_the_models_grid(masked_model: Path, tmp_path: Path) -> None:
    affine = np.diag([2.0, 2.0, 4.0, 1.0])
    lungs = np.zeros((16, 16, 8), np.uint8)
    lungs[2:7, 4:12, 2:6] = lungs[9:14, 4:12, 2:6] = 1
    nib.save(nib.Nifti1Image(lungs, affine), tmp_path / "lungs.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((24, 24, 12), np.uint8), affine), tmp_path / "big.nii.gz")
    args = ["generate", "--model", str(masked_model), "--prompt", PROMPT[0], "--n", "1", "--steps", "2"]
    result = CliRunner().invoke(app, [*args, "--mask", str(tmp_path / "lungs.nii.gz"), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert nib.load(tmp_path / "a" / "0000.nii.gz").shape == (16, 16, 8)
    assert json.loads((tmp_path / "a" / "settings.json").read_text())["mask"] == "lungs.nii.gz"
    result = CliRunner().invoke(app, [*args, "--mask", str(tmp_path / "big.nii.gz"), "--out", str(tmp_path / "b")])
    assert result.exit_code != 0
    assert "a mask of (24, 24, 12) voxels (RAS+), but this model makes (16, 16, 8)" in str(result.exception)
    assert not (tmp_path / "b").exists()
