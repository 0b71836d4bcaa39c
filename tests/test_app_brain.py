"""The web app on brains: the shipped brain model's menu and demo patients, and NIfTI volume uploads with a slice
choice (an anonymous copy of the volume, any axial slice shown and edited)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medcf.app.anatomies import BRAIN, CHEST, anatomy_of
from medcf.app.session import Workspace, demo_patient, open_slice, open_upload, run_edit
from medcf.data import read_image
from medcf.data.synthetic.kinds import unseen_patients
from medcf.pretrained import PretrainedModel, pretrained_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def brain_model() -> PretrainedModel:
    shipped = PretrainedModel.load(pretrained_path("brain64"))
    return dataclasses.replace(shipped, settings={**shipped.settings, "num_inference_steps": 3})


@pytest.fixture
def workspace(brain_model: PretrainedModel, tmp_path: Path) -> Workspace:
    return Workspace(brain_model, tmp_path / "app-output")


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """A T1 volume as a converter writes one (dcm2niix puts names and study text in descrip / aux_file)."""
    rng = np.random.default_rng(0)
    data = (rng.random((40, 48, 24)) * 800).astype(np.int16)
    data[:, :, 7] = 100  # one flat slice to tell slices apart
    image = nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0]))
    image.header["descrip"] = b"DOE^JOHN MR BRAIN 2019"
    image.header["aux_file"] = b"MRN123456"
    path = tmp_path / "DOE_JOHN_t1.nii.gz"
    nib.save(image, path)
    return path


def test_the_model_picks_the_menu_and_the_demo_patients(workspace: Workspace) -> None:
    assert anatomy_of(workspace.model) is BRAIN and anatomy_of(PretrainedModel.load()) is CHEST
    assert all(edit.split("=")[0].rstrip("+-") in ("lesion", "alzheimers_disease", "age", "sex")
               for edit in BRAIN.edits.values())  # fmt: skip
    source = demo_patient(workspace, 1)
    _, render, row = unseen_patients("brain", 2, seed=0, size=64)[1]
    np.testing.assert_allclose(read_image(source.path).pixels, render.image, atol=1 / 65535)
    assert source.row == {key: row[key] for key in ("age", "sex", "diagnosis", "lesion", "alzheimers_disease")}


def test_a_nifti_volume_opens_at_its_middle_slice_as_an_anonymous_copy(workspace: Workspace, volume: Path) -> None:
    source = open_upload(workspace, volume)
    assert (source.slices, source.index) == (24, 12) and source.path.name == "volume.nii.gz"
    copy = nib.load(source.path)
    assert all(copy.header[field].tobytes().strip(b"\0") == b"" for field in ("descrip", "aux_file"))
    np.testing.assert_array_equal(np.asarray(copy.dataobj), np.asarray(nib.load(volume).dataobj))
    np.testing.assert_allclose(copy.affine, nib.load(volume).affine)
    flat = open_slice(workspace, source, 7)
    assert flat.index == 7 and np.ptp(flat.display) < 1e-6 and np.ptp(source.display) > 0.1
    with pytest.raises(ValueError, match=r"slice 24: the volume has 24 axial slices; choose 0 to 23"):
        open_slice(workspace, source, 24)
    with pytest.raises(ValueError, match="a single slice; upload a NIfTI volume"):
        open_slice(workspace, demo_patient(workspace, 0), 3)


def test_an_edit_of_a_chosen_slice_comes_back_as_that_slice(workspace: Workspace, volume: Path) -> None:
    source = open_slice(workspace, open_upload(workspace, volume), 5)
    source = dataclasses.replace(source, row={"age": 60, "sex": "F"})
    done = run_edit(workspace, source, BRAIN.edits["add Alzheimer's disease"], strength=0.6, latent_drift=0.0, steps=3)
    settings = json.loads((done.folder / "settings.json").read_text())
    assert settings["index"] == 5 and "Alzheimer" in settings["target prompt"]
    edited = nib.load(done.folder / "counterfactual.nii.gz")
    assert edited.shape[2] == 1 and edited.affine[2, 3] == pytest.approx(nib.load(volume).affine[2, 3] + 5 * 3.0)
    assert "DOE" not in json.dumps(settings)
