"""The GAN backend on 3-D volumes: `medcf train --set model.backend=gan --set model.spatial_dims=3` on a synthetic
CT cohort, then `medcf generate` (NIfTI in HU on the training grid) and `medcf counterfactual` (NIfTI in the source's
geometry) with the saved folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from medcf.cli import app
from medcf.config import Config, load_config
from medcf.data.synthetic import synthesize
from medcf.data.volume import from_unit_range
from medcf.editing.gan_to_folder import gan_counterfactual_to_folder
from medcf.models.gan_components import gan_generate, gan_volume_units, load_gan, save_gan, tiny_gan
from medcf.training import train

PATCH = [16, 16, 8]  # the generator's volume: random crops of the cohort's 32×32×16 volumes


@pytest.fixture(scope="module")
def ct_cohort(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    """`medcf synth ct --n 6 --size 32`: 32×32×16 volumes in HU."""
    return synthesize("ct", tmp_path_factory.mktemp("ct") / "data", n=6, size=32, seed=0, progress=False)


def gan_volume_config(root: Path, *overrides: str) -> Config:
    base = [
        f"data.root={root}",
        f"data.patch={PATCH}",
        "data.holdout_fraction=0.34",
        "model.backend=gan",
        "model.spatial_dims=3",
        "model.tiny=true",
        "train.batch_size=2",
        "train.learning_rate=2e-3",
        "train.max_steps=4",
        "train.checkpoint_every=2",
        "train.sample_every=2",
        "sample.num_images=2",
    ]
    return load_config(None, [*base, *overrides])


@pytest.fixture(scope="module")
def run_dir(ct_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gan3d") / "run"
    train(gan_volume_config(ct_cohort, "train.ema_decay=0.9"), folder, progress=False)
    return folder


def cohort_spacing(root: Path) -> list[float]:
    return json.loads((root / "dataset.json").read_text())["spacing_mm"]


def test_training_writes_the_model_losses_samples_and_checkpoints(run_dir: Path, ct_cohort: Path) -> None:
    gan = load_gan(run_dir / "model")
    config = gan.generator.config
    assert config.spatial_dims == 3 and list(config.sample_size) == PATCH
    value_range, spacing = gan_volume_units(gan)  # recorded as the 3-D VAE records them
    assert value_range == (-1024, 1024) and np.allclose(spacing, cohort_spacing(ct_cohort))
    with open(run_dir / "loss.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(np.isfinite(float(row["discriminator_loss"])) for row in rows)
    assert sorted(path.name for path in (run_dir / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    for name in ("loss.png", "index.html", "config.yaml", "model/README.md"):
        assert (run_dir / name).is_file(), name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["backend"] == "gan" and manifest["sessions"][0]["end_step"] == 4
    assert "16×16×8 voxels" in (run_dir / "report.md").read_text()


def test_a_resumed_run_reaches_the_uninterrupted_one(run_dir: Path, ct_cohort: Path, tmp_path: Path) -> None:
    split = tmp_path / "split"
    train(gan_volume_config(ct_cohort, "train.ema_decay=0.9", "train.max_steps=2"), split, progress=False)
    train(gan_volume_config(ct_cohort, "train.ema_decay=0.9"), split, progress=False)
    sessions = json.loads((split / "manifest.json").read_text())["sessions"]
    assert sessions[1]["resumed_from"] == "step-0000002" and sessions[1]["end_step"] == 4
    assert (split / "loss.csv").read_text() == (run_dir / "loss.csv").read_text()  # the same patches and noise
    for part in ("generator", "discriminator"):
        whole, resumed = (load_file(run / "model" / part / "diffusion_pytorch_model.safetensors")
                          for run in (run_dir, split))  # fmt: skip
        assert all(torch.equal(whole[key], resumed[key]) for key in whole), part
    assert load_gan(split / "model").generator.config.value_range == [-1024, 1024]


def test_a_saved_3d_gan_reloads_with_identical_outputs(tmp_path: Path) -> None:
    gan = tiny_gan(spatial_dims=3, sample_size=(16, 16, 8), seed=1)
    gan.generator.register_to_config(value_range=[-1000, 3000], spacing_mm=[0.7, 0.7, 2.5])
    loaded = load_gan(save_gan(gan, tmp_path / "gan"))
    latents = torch.randn(2, gan.generator.config.latent_dim, generator=torch.Generator().manual_seed(0))
    prompts = ["chest CT, nodule", "chest CT"]
    assert torch.equal(gan_generate(gan, prompts, latents=latents), gan_generate(loaded, prompts, latents=latents))
    assert gan_volume_units(loaded) == ((-1000, 3000), (0.7, 0.7, 2.5))


def test_generate_writes_nifti_in_hu_on_the_training_grid(run_dir: Path, ct_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples"
    args = ["generate", "--model", str(run_dir / "model"), "--prompt", "chest CT", "--n", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"wrote 2 volumes and grid.png to {out}" in result.output
    assert sorted(path.name for path in out.iterdir()) == [
        "0000.nii.gz", "0001.nii.gz", "grid.png", "prompts.csv", "settings.json"
    ]  # fmt: skip
    first = nib.load(out / "0000.nii.gz")
    spacing = cohort_spacing(ct_cohort)
    assert first.shape == tuple(PATCH) and first.get_data_dtype() == np.int16
    np.testing.assert_allclose(first.affine, np.diag([*spacing, 1.0]))
    values = first.get_fdata()
    assert -1024 <= values.min() < values.max() <= 1024 and values.std() > 1  # HU, not [-1, 1]
    assert not np.array_equal(values, nib.load(out / "0001.nii.gz").get_fdata())  # seed + i: another volume
    assert json.loads((out / "settings.json").read_text())["value range"] == [-1024, 1024]


@pytest.fixture(scope="module")
def lps_source(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A volume the trained GAN can make, stored LPS-ordered (x and y reversed) with an LPS affine; its HU values
    in that stored order."""
    gan = load_gan(run_dir / "model")
    volume = gan_generate(gan, ["chest CT"], generator=torch.Generator().manual_seed(5))[0, 0]
    ras = np.rint(from_unit_range(volume, (-1024, 1024)).numpy())  # (X, Y, Z) RAS+
    stored = ras[::-1, ::-1, :].astype(np.int16)
    affine = np.diag([-11.25, -11.25, 18.75, 1.0])
    affine[:3, 3] = [170.0, 170.0, -140.0]
    path = tmp_path_factory.mktemp("source") / "ct.nii.gz"
    nib.save(nib.Nifti1Image(stored, affine), path)
    return path, stored.astype(float)


def test_a_counterfactual_keeps_the_source_geometry_and_a_null_edit_changes_little(
    run_dir: Path, lps_source: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    source, hu = lps_source
    out = tmp_path / "null"
    args = ["counterfactual", "--model", str(run_dir / "model"), "--image", str(source), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--row", "smoking=current", "--set", "smoking=current"])
    assert result.exit_code == 0, result.output
    assert f"counterfactual: {out / 'counterfactual.nii.gz'}" in result.output
    edited, change = nib.load(out / "counterfactual.nii.gz"), nib.load(out / "change.nii.gz")
    assert np.allclose(edited.affine, nib.load(source).affine) and edited.shape == hu.shape
    values = edited.get_fdata()
    assert np.allclose(values - hu, change.get_fdata(), atol=1)  # change = counterfactual − source, in HU
    settings = json.loads((out / "settings.json").read_text())
    assert settings["backend"] == "gan" and settings["source prompt"] == settings["target prompt"]
    assert (out / "panel.png").is_file() and (out / "index.html").is_file()
    error, flipped_error = np.abs(values - hu).mean(), np.abs(values - hu[::-1, ::-1, :]).mean()
    assert error < 30 and error < 0.25 * flipped_error  # HU (measured 11 vs 86): overlays the source, not mirrored


def test_a_residual_null_edit_returns_the_source(
    run_dir: Path, lps_source: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    source, hu = lps_source
    out = tmp_path / "residual"
    args = ["counterfactual", "--model", str(run_dir / "model"), "--image", str(source), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--row", "smoking=current", "--set", "smoking=current", "--residual"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "settings.json").read_text())["residual"] is True
    assert np.abs(nib.load(out / "counterfactual.nii.gz").get_fdata() - hu).max() <= 1  # int16 rounding only


def test_a_volume_of_another_size_is_refused(run_dir: Path, ct_cohort: Path, tmp_path: Path) -> None:
    whole = ct_cohort / "volumes" / "ct00000.nii.gz"  # 32×32×16: the GAN learnt 16×16×8 patches
    with pytest.raises(ValueError, match=r"this GAN makes volumes of \(16, 16, 8\): crop or resample"):
        gan_counterfactual_to_folder(run_dir / "model", whole, ["smoking=current"], tmp_path / "cf", steps=1)
    assert not (tmp_path / "cf").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.mask_conditioning=true"], r"^model.spatial_dims=3: model.mask_conditioning is 2-D only; turn it off"),
        (["train.method=lora"], r"^model.spatial_dims=3 trains train.method=full only, not lora$"),
    ],
)
def test_config_refuses_what_the_3d_gan_cannot_do(ct_cohort: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gan_volume_config(ct_cohort, *overrides)


@pytest.mark.parametrize("patch", ["[14, 16, 8]", "[16, 16, 4]"])  # not a multiple of 4; under the smallest, 8
def test_patch_sides_must_fit_both_networks(ct_cohort: Path, tmp_path: Path, patch: str) -> None:
    config = gan_volume_config(ct_cohort, f"data.patch={patch}")
    with pytest.raises(ValueError, match=r"multiple of 4 \(the GAN generator's upsampling\) and at least 8"):
        train(config, tmp_path / "run", progress=False)
