"""The web app's actions without the web: uploads checked, demo patients, edits and inpainting written to disk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medcf.app import session
from medcf.app.session import (
    Workspace,
    check_upload,
    demo_patient,
    format_row,
    open_upload,
    parse_row,
    run_edit,
    run_inpaint,
)
from medcf.data import read_image, write_image
from medcf.data.synthetic.kinds import unseen_patients
from medcf.pretrained import PretrainedModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> PretrainedModel:
    shipped = PretrainedModel.load()
    return dataclasses.replace(shipped, settings={**shipped.settings, "num_inference_steps": 3})


@pytest.fixture
def workspace(model: PretrainedModel, tmp_path: Path) -> Workspace:
    return Workspace(model, tmp_path / "app-output")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"hello", "notes.txt: not an image medcf reads; upload PNG, JPEG, DICOM"),
        ("empty.png", b"", "empty.png: the file is empty"),
    ],
)
def test_uploads_of_the_wrong_type_or_empty_are_refused(tmp_path: Path, name: str, content: bytes, message: str):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        check_upload(path)


def test_oversized_uploads_are_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(session, "MAX_UPLOAD_MB", 0.001)
    path = tmp_path / "big.dcm"
    path.write_bytes(b"\0" * 2000)
    with pytest.raises(ValueError, match="big.dcm: larger than 0.001 MB"):
        check_upload(path)


@pytest.mark.parametrize("preamble", [b"", b"\0" * 128], ids=["no-header", "header-then-garbage"])
def test_a_corrupt_dicom_gets_one_line_naming_the_file(workspace: Workspace, tmp_path: Path, preamble: bytes):
    path = tmp_path / "broken.dcm"
    path.write_bytes(preamble + b"DICM" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"broken\.dcm: ") as caught:
        open_upload(workspace, path)
    assert "\n" not in str(caught.value)


def test_a_dicom_upload_brings_its_header_row(workspace: Workspace) -> None:
    source = open_upload(workspace, get_testdata_file("RG1_UNCR.dcm"))
    assert source.row == {"sex": "F", "view": "PA"} and source.display.shape == (64, 64)


def test_demo_patients_are_the_unseen_cohort_patients(workspace: Workspace) -> None:
    source = demo_patient(workspace, 2)
    _, render, row = unseen_patients("cxr", 3, seed=0, size=64)[2]
    np.testing.assert_allclose(read_image(source.path).pixels, render.image, atol=1 / 65535)
    assert source.row["age"] == row["age"] and source.row["pleural_effusion"] == row["pleural_effusion"]
    with pytest.raises(ValueError, match="choose 1 to 8"):
        demo_patient(workspace, 8)


def test_rows_round_trip_and_malformed_parts_are_named() -> None:
    row = {"age": "63", "sex": "F", "nodule": "1"}
    assert parse_row(format_row(row)) == row
    with pytest.raises(ValueError, match="clinical row 'age63': write field=value"):
        parse_row("sex=F, age63")


def test_an_edit_writes_the_counterfactual_its_signed_map_and_histogram(workspace: Workspace) -> None:
    source = demo_patient(workspace, 0)
    first = run_edit(workspace, source, "pleural_effusion=absent", strength=0.6, latent_drift=0.0, steps=3)
    second = run_edit(workspace, source, "age+=20", strength=0.6, latent_drift=0.0, steps=3)
    assert (first.folder.name, second.folder.name) == ("0001-counterfactual", "0002-counterfactual")
    original = read_image(first.folder / "original.png").pixels
    signed = np.load(first.folder / "map.npy")
    np.testing.assert_allclose(signed, original - first.counterfactual, atol=1e-6)  # M = x − x_cf
    assert np.abs(signed).max() > 0.01 and first.overlay.shape == (64, 64, 3)
    assert {"counterfactual.png", "overlay.png", "histogram.png", "map.npy", "index.html"} <= {
        path.name for path in first.files
    }


def test_inpainting_changes_only_the_painted_region(workspace: Workspace, tmp_path: Path) -> None:
    source = demo_patient(workspace, 1)
    mask = np.zeros((256, 256), dtype=np.float32)
    mask[160:224, 32:96] = 1  # drawn on the 4× enlarged canvas; resized to 64 px like the image
    folder, image = run_inpaint(workspace, source, mask, "A PA chest X-ray with consolidation.", steps=3)
    original = read_image(folder / "original.png").pixels
    inside = np.zeros((64, 64), dtype=bool)
    inside[40:56, 8:24] = True
    assert np.array_equal(image[~inside], original[~inside]) and not np.array_equal(image[inside], original[inside])
    with pytest.raises(ValueError, match="the mask is empty"):
        run_inpaint(workspace, source, np.zeros((64, 64)), "consolidation", steps=3)
    with pytest.raises(ValueError, match="inpainting needs a prompt"):
        run_inpaint(workspace, source, mask, "  ", steps=3)


def test_an_uploaded_png_has_no_row_until_the_user_gives_one(workspace: Workspace, tmp_path: Path) -> None:
    path = write_image(tmp_path / "film.png", np.linspace(0, 1, 96 * 80, dtype=np.float32).reshape(96, 80))
    source = open_upload(workspace, path)
    assert source.row == {} and source.display.shape == (64, 64)


def test_painted_editor_layers_or_an_uploaded_file_become_the_mask(tmp_path: Path) -> None:
    from medcf.app.ui import painted_mask

    layer = np.zeros((256, 256, 4), dtype=np.uint8)
    layer[10:20, 30:40, 3] = 255  # gradio's ImageEditor: RGBA layers, painted where alpha > 0
    mask = painted_mask({"background": None, "layers": [np.zeros_like(layer), layer]}, None)
    assert mask.shape == (256, 256) and mask.sum() == 100 and mask[15, 35] == 1
    uploaded = write_image(tmp_path / "mask.png", (mask > 0).astype(np.float32))
    np.testing.assert_array_equal(painted_mask(None, str(uploaded)), mask)
    with pytest.raises(ValueError, match="no mask: paint the region"):
        painted_mask({"layers": []}, None)
