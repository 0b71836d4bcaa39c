"""Hostile inputs that carry identifiers: a patient's name or ID in the file name or the DICOM header reaches
no output file unless asked for, the app deletes gradio's copy of an upload, and volumes take an index."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import write_volume
from medcf.app.session import Workspace, discard_upload, open_upload, run_edit
from medcf.data import read_image, write_png
from medcf.editing.to_folder import counterfactual_to_folder
from medcf.models import save_components, tiny_components
from medcf.pretrained import PretrainedModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = {"num_inference_steps": 2}
IDENTIFIERS = (b"LEAKID123", b"LEAK^NAME", b"LEAKFILE")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_components(tiny_components(in_channels=1), tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    shipped = PretrainedModel.load()
    return Workspace(dataclasses.replace(shipped, settings={**shipped.settings, "num_inference_steps": 2}),
                     tmp_path / "app-output")  # fmt: skip


def _dicom(path: Path, size: int = 40) -> Path:
    """A DX DICOM of patient 'LEAK^NAME', ID 'LEAKID123', a 63-year-old woman."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID, dataset.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", generate_uid()
    dataset.PatientName, dataset.PatientID = "LEAK^NAME", "LEAKID123"
    dataset.PatientAge, dataset.PatientSex = "063Y", "F"
    dataset.Modality, dataset.PhotometricInterpretation, dataset.SamplesPerPixel = "DX", "MONOCHROME2", 1
    dataset.Rows, dataset.Columns, dataset.ViewPosition = size, size, "PA"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.PixelData = (np.add.outer(np.arange(size), np.arange(size)) * 500 % 65535).astype("<u2").tobytes()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(path, enforce_file_format=True)
    return path


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32), bit_depth=16)
    return path


def _leaks(folder: Path) -> list[str]:
    """Files under `folder` (PNG metadata, DICOM/NIfTI headers, reports, any depth) holding an identifier."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert files, folder
    return [f"{path.name}: {word!r}" for path in files for word in IDENTIFIERS if word in path.read_bytes()]


@pytest.mark.parametrize("kind", ["png", "dcm"])
def test_outputs_record_the_inputs_hash_not_their_names(model: Path, tmp_path: Path, kind: str) -> None:
    image = tmp_path / f"LEAKFILE_LEAKID123.{kind}"
    _png(image) if kind == "png" else _dicom(image, size=32)
    mask = write_png(tmp_path / "LEAKFILE_LEAKID123_mask.png", np.pad(np.ones((8, 8), np.float32), 12))
    out = counterfactual_to_folder(model, image, ["nodule=absent"], tmp_path / "cf", mask=mask, **FAST)
    assert not _leaks(out)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["image sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert settings["mask sha256"] == hashlib.sha256(Path(mask).read_bytes()).hexdigest()
    assert (settings["image"], settings["mask"]) == (f"<redacted>.{kind}", "<redacted>.png")
    assert settings["image sha256"] in (out / "report.md").read_text()
    named = counterfactual_to_folder(model, image, ["nodule=absent"], tmp_path / "named", show_names=True, **FAST)
    assert json.loads((named / "settings.json").read_text())["image"] == str(image)
    assert str(image) in (named / "report.md").read_text() and str(image) in (named / "index.html").read_text()


def test_a_volume_needs_an_index_and_records_it(model: Path, tmp_path: Path) -> None:
    volume = write_volume(tmp_path / "LEAKFILE_LEAKID123.nii.gz", (32, 32, 8))
    with pytest.raises(ValueError, match=r"holds 8 axial slices; pass --index 0\.\.7$"):
        counterfactual_to_folder(model, volume, ["nodule=absent"], tmp_path / "refused", **FAST)
    out = counterfactual_to_folder(model, volume, ["nodule=absent"], tmp_path / "cf", index=3, **FAST)
    assert json.loads((out / "settings.json").read_text())["index"] == 3
    assert read_image(out / "counterfactual.nii.gz").shape == (32, 32) and not _leaks(out)


@pytest.mark.slow  # end to end through subprocesses, ~15-25 s: runs in CI's slow pass
def test_the_cli_takes_index_and_record_names(model: Path, tmp_path: Path) -> None:
    from test_cli import medcf

    volume = write_volume(tmp_path / "LEAKFILE_LEAKID123.nii.gz", (32, 32, 8))
    args = ["counterfactual", "--model", model, "--image", volume, "--set", "nodule=absent", "--steps", 2]
    refused = medcf(*args, "--out", tmp_path / "refused")
    assert refused.returncode == 1 and refused.stderr.strip().endswith("holds 8 axial slices; pass --index 0..7")
    done = medcf(*args, "--index", 5, "--record-names", "--out", tmp_path / "cf")
    assert done.returncode == 0, done.stderr
    settings = json.loads((tmp_path / "cf" / "settings.json").read_text())
    assert (settings["index"], settings["image"]) == (5, str(volume))


def test_an_upload_is_deleted_once_read_and_the_app_keeps_an_anonymous_copy(workspace: Workspace, tmp_path: Path):
    upload = _dicom(tmp_path / "gradio" / "3f9a" / "LEAKFILE_LEAKID123.dcm")
    source = open_upload(workspace, upload)
    discard_upload(upload)
    assert not upload.exists() and not upload.parent.exists() and (tmp_path / "gradio").is_dir()
    assert source.row == {"age": 63, "sex": "F", "view": "PA"} and source.path.name == "image.dcm"
    run_edit(workspace, source, "nodule=absent", strength=0.6, latent_drift=0.0, steps=2)
    assert not _leaks(workspace.out)


def test_the_page_deletes_uploads_read_or_refused(workspace: Workspace, tmp_path: Path) -> None:
    from medcf.app.ui import DELETE_CACHE, _open, build_app

    upload = _png(tmp_path / "gradio" / "a1" / "LEAKFILE_LEAKID123.png")
    status = _open(workspace, upload=str(upload))[4]
    assert not upload.exists() and "LEAK" not in status and not _leaks(workspace.out)
    volume = write_volume(tmp_path / "gradio" / "b2" / "LEAKFILE_LEAKID123.nii.gz", (32, 32, 8))
    named = nib.load(volume)
    named.header["descrip"] = b"LEAKID123"  # where converters leave names
    nib.save(named, volume)
    source, *_, status, index = _open(workspace, upload=str(volume))  # a volume opens at its middle slice
    assert (source.slices, index) == (8, 4) and not volume.exists() and "LEAK" not in status
    assert not _leaks(workspace.out)
    refused = tmp_path / "gradio" / "c3" / "LEAKFILE_LEAKID123.png"
    refused.parent.mkdir(parents=True)
    refused.write_bytes(b"not a PNG at all")
    with pytest.raises(Exception, match="LEAKFILE_LEAKID123.png") as caught:  # the user's own file name, once
        _open(workspace, upload=str(refused))
    assert "\n" not in str(caught.value) and not refused.exists()
    assert build_app(workspace).delete_cache == DELETE_CACHE
