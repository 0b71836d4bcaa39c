"""`medcf generate` and `medcf counterfactual` on the models that are not 2-D latent diffusion: a 3-D volume model
(NIfTI in and out, in HU, in the source's geometry) and a GAN (model.backend=gan)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medcf.data import read_image, write_png
from medcf.models import save_components, save_gan, tiny_gan, tiny_volume_components

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPACING = [5.0, 5.0, 10.0]


@pytest.fixture(scope="module")
def volume_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    components = tiny_volume_components()
    components.vae.register_to_config(value_range=[-1024, 1024], spacing_mm=SPACING)  # as training records them
    return save_components(components, tmp_path_factory.mktemp("volume") / "model")


def test_a_volume_model_generates_nifti_in_hu_on_its_training_grid(
    volume_model: Path, tmp_path: Path, medcf_main
) -> None:
    out = tmp_path / "samples"
    result = medcf_main("generate", "--model", volume_model, "--prompt", "Chest CT: nodule", "--n", 2, "--steps", 2,
                   "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote 2 volumes and grid.png to {out}" in result.stdout
    first = nib.load(out / "0000.nii.gz")
    assert first.shape == (16, 16, 8) and first.get_data_dtype() == np.int16
    assert np.allclose(first.header.get_zooms(), SPACING)
    values = first.get_fdata()
    assert values.min() >= -1024 and values.max() <= 1024
    assert not np.array_equal(values, nib.load(out / "0001.nii.gz").get_fdata())  # seed + i: another volume
    assert (out / "grid.png").is_file() and (out / "index.html").is_file()
    assert json.loads((out / "settings.json").read_text())["value range"] == [-1024, 1024]
    again = tmp_path / "again"
    assert medcf_main("generate", "--model", volume_model, "--prompt", "Chest CT: nodule", "--n", 1, "--steps", 2,
                 "--out", again).returncode == 0  # fmt: skip
    assert np.array_equal(nib.load(again / "0000.nii.gz").get_fdata(), values)  # the same seed, the same volume


def test_a_volume_counterfactual_keeps_the_source_geometry(volume_model: Path, tmp_path: Path, medcf_main) -> None:
    affine = np.diag([-4.0, -4.0, 8.0, 1.0])  # an LPS-ordered source: the output must overlay it voxel for voxel
    affine[:3, 3] = [30.0, 40.0, -60.0]
    hu = np.full((16, 16, 8), -850.0)
    hu[4:8, 4:8, 2:5] = 30.0
    nib.save(nib.Nifti1Image(hu.astype(np.int16), affine), tmp_path / "ct.nii.gz")
    out = tmp_path / "cf"
    args = ["--model", volume_model, "--image", tmp_path / "ct.nii.gz", "--row", "nodule=1", "--set", "nodule=0"]
    result = medcf_main("counterfactual", *args, "--steps", 2, "--strength", 0.5, "--out", out)
    assert result.returncode == 0, result.stderr
    edited, change = nib.load(out / "counterfactual.nii.gz"), nib.load(out / "change.nii.gz")
    assert np.allclose(edited.affine, affine) and edited.shape == hu.shape
    assert np.allclose(edited.get_fdata() - hu, change.get_fdata(), atol=1)  # change = counterfactual − source, HU
    settings = json.loads((out / "settings.json").read_text())
    assert settings["source prompt"] != settings["target prompt"] and (out / "panel.png").is_file()
    refused = medcf_main("counterfactual", *args, "--engine", "sdedit", "--out", tmp_path / "no")
    assert refused.returncode == 1 and "--engine belong to the 2-D diffusion engines" in refused.stderr
    assert not (tmp_path / "no").exists()


def test_a_gan_generates_pngs_and_edits_by_inverting_its_noise(tmp_path: Path, medcf_main) -> None:
    model = save_gan(tiny_gan(), tmp_path / "gan")
    out = tmp_path / "samples"
    result = medcf_main("generate", "--model", model, "--prompt", "Chest X-ray: nodule", "--n", 3, "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.glob("*.png")) == ["0000.png", "0001.png", "0002.png", "grid.png"]
    assert json.loads((out / "settings.json").read_text())["backend"] == "gan"
    image = tmp_path / "x.png"
    write_png(image, read_image(out / "0000.png").pixels, bit_depth=16)  # an image the GAN can make
    edit = ["--model", model, "--image", image, "--row", "nodule=1", "--set", "nodule=0", "--out", tmp_path / "cf"]
    result = medcf_main("counterfactual", *edit)
    assert result.returncode == 0, result.stderr
    settings = json.loads((tmp_path / "cf" / "settings.json").read_text())
    assert settings["backend"] == "gan" and settings["inversion steps"] == 200
    assert read_image(tmp_path / "cf" / "counterfactual.png").pixels.shape == (16, 16)
