"""One file in, one folder out: counterfactual_to_folder, inpaint_to_folder, attribute_to_folder, effect_to_folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medcf.attribution.effect_folder import effect_to_folder
from medcf.attribution.to_folder import attribute_to_folder
from medcf.classifier import fit_classifier, save_classifier
from medcf.data import read_image, write_png
from medcf.data.dicom import clinical_fields
from medcf.editing.files import load_mask
from medcf.editing.to_folder import counterfactual_to_folder, inpaint_to_folder
from medcf.models import save_components, tiny_components
from medcf.models.precision import resolve_precision
from medcf.prompts import PromptTemplate

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = {"num_inference_steps": 3}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = save_components(tiny_components(in_channels=1), tmp_path_factory.mktemp("model") / "model")
    PromptTemplate("chest X-ray", style="diverse").save_pretrained(folder)
    return folder


def _radiograph(path: Path) -> Path:
    """A 48 × 40 (non-square) DX DICOM of a named 63-year-old man."""
    rows, columns = 48, 40
    stored = (np.add.outer(np.arange(rows), np.arange(columns)) * 500 % 65535).astype("<u2")
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID, dataset.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", generate_uid()
    dataset.PatientName, dataset.PatientID, dataset.PatientAge, dataset.PatientSex = "Doe^John", "MRN-7", "063Y", "M"
    dataset.Modality, dataset.PhotometricInterpretation, dataset.SamplesPerPixel = "DX", "MONOCHROME2", 1
    dataset.Rows, dataset.Columns, dataset.ViewPosition = rows, columns, "PA"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.PixelData = stored.tobytes()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(path, enforce_file_format=True)
    return path


def _png(path: Path, pixels: np.ndarray) -> Path:
    write_png(path, pixels.astype(np.float32), bit_depth=16)
    return path


def _square_mask(path: Path, size: int = 32) -> Path:
    mask = np.zeros((size, size), np.float32)
    mask[4:14, 18:30] = 1
    return _png(path, mask)


def test_the_header_gives_the_row(tmp_path: Path) -> None:
    assert clinical_fields(read_image(_radiograph(tmp_path / "x.dcm")).header) == {"age": 63, "sex": "M", "view": "PA"}
    assert clinical_fields(Dataset()) == {} and clinical_fields(None) == {}
    odd = Dataset()
    odd.PatientAge, odd.PatientSex = "006M", "O"
    assert clinical_fields(odd) == {"age": 0.5}


def test_a_dicom_counterfactual_is_written_back_anonymous_at_its_geometry(model: Path, tmp_path: Path) -> None:
    source = _radiograph(tmp_path / "x.dcm")
    out = counterfactual_to_folder(model, source, ["nodule=absent"], tmp_path / "cf", **FAST)
    for name in ("original.png", "counterfactual.png", "difference.png", "panel.png", "index.html", "report.md"):
        assert (out / name).is_file(), name
    settings = json.loads((out / "settings.json").read_text())
    assert "63 year old male" in settings["source prompt"] and "nodule" in settings["source prompt"]
    assert settings["target prompt"] == settings["source prompt"].replace(" with a nodule", "")
    written, original = dcmread(out / "counterfactual.dcm"), read_image(source)
    assert (written.Rows, written.Columns) == (48, 40) and str(written.PatientName) != "Doe^John"
    assert b"Doe^John" not in b"".join(path.read_bytes() for path in out.iterdir())
    back = read_image(out / "counterfactual.dcm").pixels
    np.testing.assert_allclose(back[:4], original.pixels[:4], atol=1e-4)  # rows outside the centre crop
    assert np.abs(back[4:44] - original.pixels[4:44]).mean() > 1e-3
    with pytest.raises(FileExistsError, match="not empty"):
        counterfactual_to_folder(model, source, ["nodule=absent"], out, **FAST)


def test_the_default_counterfactual_gives_a_null_edit_back(model: Path, tmp_path: Path) -> None:
    # issue 22: a null edit (target row = source row) should change under 0.005 of the range by default
    image = _png(tmp_path / "x.png", np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32))
    changes = {}
    for residual, options in ((True, {}), (False, {"residual": False})):  # True: the default
        out = counterfactual_to_folder(model, image, ["age=40"], tmp_path / f"{residual}", row=["age=40"],
                                       **options, **FAST)  # fmt: skip
        edited, original = (read_image(out / name).pixels for name in ("counterfactual.png", "original.png"))
        changes[residual] = np.abs(edited - original).mean()
        assert json.loads((out / "settings.json").read_text())["residual"] is residual
    assert changes[True] < 1e-4 and changes[False] > 0.005  # without the residual: the tiny VAE's error


def test_a_masked_counterfactual_changes_the_mask_only(model: Path, tmp_path: Path) -> None:
    image = _png(tmp_path / "x.png", np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32))
    mask = _square_mask(tmp_path / "m.png")
    out = counterfactual_to_folder(
        model, image, ["age+=20"], tmp_path / "cf", row=["age=40"], mask=mask, engine="sdedit", **FAST
    )
    edited, original = read_image(out / "counterfactual.png").pixels, read_image(out / "original.png").pixels
    inside = read_image(mask).pixels > 0.5
    assert np.array_equal(edited[~inside], original[~inside]) and not np.array_equal(edited, original)
    assert "60 year old" in json.loads((out / "settings.json").read_text())["target prompt"]
    assert not (out / "counterfactual.dcm").exists()


def test_inpainting_a_png_keeps_the_outside(model: Path, tmp_path: Path) -> None:
    image = _png(tmp_path / "x.png", np.full((32, 32), 0.3, np.float32))
    mask = _square_mask(tmp_path / "m.png")
    out = inpaint_to_folder(model, image, mask, "chest X-ray with consolidation", tmp_path / "lesion", **FAST)
    edited, original = read_image(out / "inpainted.png").pixels, read_image(out / "original.png").pixels
    inside = read_image(mask).pixels > 0.5
    assert np.array_equal(edited[~inside], original[~inside]) and np.abs(edited - original)[inside].mean() > 1e-3
    with pytest.raises(ValueError, match="mask is empty"):
        inpaint_to_folder(model, image, _png(tmp_path / "e.png", np.zeros((32, 32))), "x", tmp_path / "e", **FAST)
    assert not (tmp_path / "e").exists()


def test_attribution_writes_the_signed_map_and_the_classifier_baselines(model: Path, tmp_path: Path) -> None:
    images = torch.rand(16, 1, 32, 32) * 2 - 1
    labels = (images[:, :, 8:16, 8:16].mean(dim=(1, 2, 3)) > 0).float()[:, None]
    network, _ = fit_classifier(images, labels, ["nodule"], steps=3, batch_size=8, learning_rate=1e-3, seed=0,
                                channels=(8, 16), progress=False)  # fmt: skip
    classifier = save_classifier(network, tmp_path / "classifier")
    image = _png(tmp_path / "x.png", np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32))
    out = attribute_to_folder(
        model, image, tmp_path / "va", row=["nodule=1"], classifier=classifier, seeds=[0], sigma=0.0, **FAST
    )
    signed = np.load(out / "map.npy")
    difference = read_image(out / "original.png").pixels - read_image(out / "counterpart.png").pixels
    np.testing.assert_allclose(signed, difference, atol=1e-4)  # M = x − x_healthy in display units
    for name in ("saliency.npy", "gradcam.npy"):
        assert np.load(out / name).shape == (32, 32)
    for name in ("map.png", "overlay.png", "panel.png", "index.html"):
        assert (out / name).is_file()
    settings = json.loads((out / "settings.json").read_text())
    assert "normal" in settings["healthy prompt"].lower()
    assert settings["precision"] == resolve_precision("auto", torch.device("cpu"))  # what really ran
    with pytest.raises(ValueError, match="precision=fp16: half-precision autocast needs a GPU"):
        attribute_to_folder(model, image, tmp_path / "never", row=["nodule=1"], precision="fp16", **FAST)
    assert not (tmp_path / "never").exists()


def test_effect_to_folder_averages_matched_pairs(model: Path, tmp_path: Path) -> None:
    out = effect_to_folder(model, "smoking", tmp_path / "effect", n=4, batch_size=2, num_inference_steps=2)
    summary = json.loads((out / "effect.json").read_text())
    assert summary["n"] == 4 and summary["attribute"] == "smoking"
    assert np.load(out / "effect.npy").shape == (32, 32)


def test_a_mask_must_line_up_with_the_image(tmp_path: Path) -> None:
    """Same size, same shape (resized with it) or square (drawn on the square crop) load; others are refused."""
    for name, shape in [("same", (40, 60)), ("half", (20, 30)), ("square", (16, 16))]:
        mask = np.zeros(shape, np.float32)
        mask[shape[0] // 4 : -shape[0] // 4, shape[1] // 4 : -shape[1] // 4] = 1  # the middle half
        write_png(tmp_path / f"{name}.png", mask)
        assert load_mask(tmp_path / f"{name}.png", 8, like=(40, 60)).sum() >= 4
    write_png(tmp_path / "tall.png", np.ones((60, 40), np.float32))
    with pytest.raises(ValueError, match=r"tall\.png: mask is 40×60 px but the image is 60×40; draw the mask on"):
        load_mask(tmp_path / "tall.png", 8, like=(40, 60))


@pytest.mark.slow  # end to end through subprocesses, ~15-25 s: runs in CI's slow pass
def test_same_seed_same_bytes_and_no_patient_identifier_in_outputs_or_logs(model: Path, tmp_path: Path) -> None:
    """Determinism and privacy through the real CLI: two runs with one seed write the same pictures; the
    DICOM's name and ID reach neither a file nor the terminal; settings.json records the input's hash."""
    from test_cli import medcf

    source = _radiograph(tmp_path / "x.dcm")
    args = ["counterfactual", "--model", model, "--image", source, "--set", "nodule=absent", "--steps", "2"]
    args += ["--engine", "sdedit"]  # noise drawn from the seed (DDIM inversion would need none)
    first, second = (medcf(*args, "--seed", "3", "--out", tmp_path / name) for name in ("a", "b"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    for name in ("counterfactual.png", "difference.png", "original.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (
        dcmread(tmp_path / "a" / "counterfactual.dcm").PixelData
        == dcmread(tmp_path / "b" / "counterfactual.dcm").PixelData
    )
    logs = first.stdout + first.stderr
    written = b"".join(path.read_bytes() for path in (tmp_path / "a").iterdir())
    for identifier in ("Doe^John", "MRN-7"):
        assert identifier not in logs and identifier.encode() not in written
    settings = json.loads((tmp_path / "a" / "settings.json").read_text())
    assert settings["seed"] == 3 and settings["image sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert settings["environment"]["versions"]["torch"] == torch.__version__
    other = medcf(*args, "--seed", "4", "--out", tmp_path / "c")
    assert (
        other.returncode == 0
        and (tmp_path / "c" / "counterfactual.png").read_bytes()
        != (tmp_path / "a" / "counterfactual.png").read_bytes()
    )  # the seed matters: the equality above is not a constant output


def test_a_per_finding_counterpart_keeps_the_other_findings() -> None:
    from medcf.attribution.to_folder import counterpart_prompts

    template = PromptTemplate("chest X-ray", style="diverse")
    row = {"age": 60, "sex": "M", "nodule": 1, "pleural_effusion": 1}
    source, healthy, _ = counterpart_prompts(template, row, "inversion")
    source_again, without_nodule, _ = counterpart_prompts(template, row, "inversion", finding="nodule")
    assert source_again == source and "nodule" in source and "effusion" in source
    assert healthy.startswith("A normal chest X-ray")  # every finding removed: the healthy description
    assert without_nodule == "A chest X-ray of a 60 year old male with pleural effusion."  # that one only
    _, instruction, _ = counterpart_prompts(template, row, "instruct", finding="nodule")
    assert "nodule" in instruction and "effusion" not in instruction
    _, _, (sources, targets) = counterpart_prompts(template, row, "pix2pix-zero", finding="nodule")
    assert len(targets[0]) == 16 and not any("nodule" in text or "normal" in text.lower() for text in targets[0])
    assert sum("pleural" in text for text in targets[0]) > 8  # effusion's paraphrases stay
    with pytest.raises(
        ValueError, match=r"--finding cardiomegaly: the row does not have it.*\['pleural_effusion', 'nodule'\]"
    ):
        counterpart_prompts(template, row, "inversion", finding="cardiomegaly")


def test_attribute_maps_one_finding_of_several(model: Path, tmp_path: Path) -> None:
    image = _png(tmp_path / "x.png", np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32))
    rows = ["nodule=1", "pleural_effusion=1"]
    out = attribute_to_folder(model, image, tmp_path / "va", row=rows, seeds=[0], finding="nodule", **FAST)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["finding"] == "nodule" and "effusion" in settings["healthy prompt"]
    assert "nodule" not in settings["healthy prompt"] and np.abs(np.load(out / "map.npy")).max() > 0
    with pytest.raises(ValueError, match="--finding consolidation: the row does not have it"):
        attribute_to_folder(model, image, tmp_path / "no", row=rows, finding="consolidation", **FAST)
    assert not (tmp_path / "no").exists()
