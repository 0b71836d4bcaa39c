"""The image classifier: learns a synthetic two-label task, saves and loads, is deterministic, reads folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medcf.classifier import (
    ImageClassifier,
    classify,
    fit_classifier,
    labelled_images,
    load_classifier,
    load_labelled_images,
    save_classifier,
)
from medcf.classifier.fit import augment
from medcf.data import write_png
from medcf.data.adapters import image_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32
CHANNELS = (8, 16, 32)  # 3 stages: a fast model with an 8×8 last feature map
LABELS = ["bright_blob_left", "dark_square"]


def blob_task(count: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 32×32 images; label 0: a bright Gaussian blob in the left half, label 1: a dark 6×6 square."""
    generator = torch.Generator().manual_seed(seed)
    images = -0.1 + 0.15 * torch.randn(count, 1, SIZE, SIZE, generator=generator)
    labels = (torch.rand(count, 2, generator=generator) < 0.5).float()
    rows, columns = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    for index in range(count):
        centre_row = torch.randint(4, SIZE - 4, (), generator=generator)
        centre_column = torch.randint(4, SIZE // 2 - 3, (), generator=generator)  # left half
        top, left = torch.randint(0, SIZE - 6, (2,), generator=generator).tolist()
        if labels[index, 0]:
            squared = (rows - centre_row) ** 2 + (columns - centre_column) ** 2
            images[index, 0] += torch.exp(-squared / (2 * 2.0**2))
        if labels[index, 1]:
            images[index, 0, top : top + 6, left : left + 6] = -1
    return images.clamp(-1, 1), labels


@pytest.fixture(scope="module")
def trained(one_torch_thread: None) -> tuple[ImageClassifier, dict, torch.Tensor, torch.Tensor]:
    images, labels = blob_task(256, seed=0)
    val_images, val_labels = blob_task(128, seed=1)
    model, history = fit_classifier(
        images, labels, LABELS, val_images=val_images, val_labels=val_labels,
        steps=120, batch_size=32, learning_rate=3e-3, seed=0, channels=CHANNELS, progress=False,
    )  # fmt: skip
    return model, history, val_images, val_labels


def test_learns_both_labels_of_the_synthetic_task(trained):
    model, history, _, _ = trained
    assert len(history["loss"]) == 120
    assert np.mean(history["loss"][-20:]) < 0.5 * np.mean(history["loss"][:20])
    assert set(history["auroc"]) == set(history["accuracy"]) == set(LABELS)
    assert min(history["auroc"].values()) > 0.9, history["auroc"]
    assert min(history["accuracy"].values()) > 0.8, history["accuracy"]
    assert not model.training


def test_classify_gives_sigmoid_probabilities_in_batches(trained):
    model, _, val_images, _ = trained
    probabilities = classify(model, val_images[:10], batch_size=3)
    assert probabilities.shape == (10, 2)
    with torch.no_grad():
        torch.testing.assert_close(probabilities, model(val_images[:10]).sigmoid())


def test_save_load_round_trip_gives_identical_logits(trained, tmp_path):
    model, _, val_images, _ = trained
    folder = save_classifier(model, tmp_path / "classifier")
    config = json.loads((folder / "config.json").read_text())
    assert config["label_names"] == LABELS and config["channels"] == list(CHANNELS) and config["image_size"] == SIZE
    loaded = load_classifier(folder)
    assert not loaded.training and loaded.label_names == LABELS
    with torch.no_grad():
        assert torch.equal(loaded(val_images), model(val_images))
        assert torch.equal(loaded.embed(val_images), model.embed(val_images))
    save_classifier(loaded, folder)  # replacing a classifier folder is allowed
    assert sorted(path.name for path in folder.parent.iterdir()) == ["classifier"]  # no staging folder left


def test_load_and_save_errors_name_the_folder_and_the_fix(tmp_path):
    model = ImageClassifier(["nodule"], image_size=16, channels=(8, 8))
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such classifier folder"):
        load_classifier(tmp_path / "nowhere")
    folder = save_classifier(model, tmp_path / "model")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model: lacks model.safetensors"):
        load_classifier(folder)
    for number, text in enumerate(['{"format": "something else"}', "{not json"]):
        folder = save_classifier(model, tmp_path / f"config{number}")
        (folder / "config.json").write_text(text)
        with pytest.raises(ValueError, match=r"not a medcf classifier config|not valid JSON"):
            load_classifier(folder)
    other = ImageClassifier(["nodule", "mass"], image_size=16, channels=(8, 8))
    save_classifier(model, tmp_path / "model")
    save_classifier(other, tmp_path / "other")
    (tmp_path / "other" / "model.safetensors").replace(tmp_path / "model" / "model.safetensors")
    with pytest.raises(ValueError, match=r"does not match config.json"):
        load_classifier(tmp_path / "model")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds no classifier"):
        save_classifier(model, tmp_path / "notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_same_seed_same_weights_and_the_global_rng_is_untouched():
    images, labels = blob_task(16, seed=2)
    settings = {"steps": 3, "batch_size": 8, "learning_rate": 1e-3, "channels": (8, 8), "progress": False}
    state = torch.random.get_rng_state()
    first, first_history = fit_classifier(images, labels, LABELS, seed=7, **settings)
    assert torch.equal(torch.random.get_rng_state(), state)
    second, second_history = fit_classifier(images, labels, LABELS, seed=7, **settings)
    other, _ = fit_classifier(images, labels, LABELS, seed=8, **settings)
    assert first_history["loss"] == second_history["loss"] and first_history["auroc"] == {}
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert not torch.equal(first.head.weight, other.head.weight)


def test_augmentation_shifts_and_jitters_but_never_flips():
    images = torch.full((64, 1, SIZE, SIZE), -1.0)
    images[..., : SIZE // 2] = 1  # bright left half
    augmented = augment(images, generator=torch.Generator().manual_seed(0))
    left, right = augmented[..., :8].mean(dim=(1, 2, 3)), augmented[..., -8:].mean(dim=(1, 2, 3))
    assert (left > right + 1.5).all()  # laterality kept in every image
    edge = augmented[..., SIZE // 2 - 2 : SIZE // 2 + 2].mean(dim=(1, 2))  # (64, 4) column means near the edge
    assert len({tuple(row.round(decimals=3).tolist()) for row in edge}) > 5  # the edge moved or the levels changed
    assert augmented.min() >= -1 and augmented.max() <= 1


def test_predictions_in_eval_mode_do_not_depend_on_the_batch(trained):
    model, _, val_images, _ = trained
    with torch.no_grad():
        torch.testing.assert_close(model(val_images[:5])[:1], model(val_images[:1]))


def test_bad_inputs_are_refused_with_the_fix():
    model = ImageClassifier(LABELS, image_size=SIZE, channels=CHANNELS)
    with pytest.raises(ValueError, match=r"takes \(B, 1, 32, 32\)"):
        model(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"divisible by 4"):
        ImageClassifier(LABELS, image_size=30, channels=CHANNELS)
    images, labels = blob_task(8, seed=4)
    settings = {"steps": 1, "batch_size": 4, "learning_rate": 1e-3, "seed": 0, "progress": False}
    with pytest.raises(ValueError, match=r"map them to \[-1, 1\]"):
        fit_classifier(images * 3, labels, LABELS, **settings)
    with pytest.raises(ValueError, match=r"labels must be 0 or 1"):
        fit_classifier(images, labels * 2, LABELS, **settings)
    with pytest.raises(ValueError, match=r"need \(N, K\) = \(8, 3\)"):
        fit_classifier(images, labels, [*LABELS, "third"], **settings)


@pytest.fixture
def labelled_folder(tmp_path: Path) -> Path:
    """Five 40×32 PNGs (constant grey levels) and a metadata.csv with findings, smoking and an unknown value."""
    root = tmp_path / "cohort"
    (root / "images").mkdir(parents=True)
    rows = []
    for number, (smoking, nodule, effusion) in enumerate(
        [("never", "0", "1"), ("current", "1", "0"), ("former", "1", "1"), ("current", "", "0"), ("", "0", "0")]
    ):
        write_png(root / "images" / f"img{number}.png", np.full((40, 32), number / 4), bit_depth=8)
        rows.append({"id": f"img{number}", "path": f"images/img{number}.png", "age": 50 + number, "sex": "F",
                     "smoking": smoking, "view": "PA", "nodule": nodule, "consolidation": "0",
                     "pleural_effusion": effusion, "cardiomegaly": "0", "no_finding": "0"})  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


def test_loader_reads_finding_columns_and_drops_rows_with_unknown_labels(labelled_folder):
    images, labels, names, ids = load_labelled_images(labelled_folder, resolution=16)
    assert names == ["nodule", "consolidation", "pleural_effusion", "cardiomegaly", "no_finding"]
    assert ids == ["img0", "img1", "img2", "img4"]  # img3 has no nodule value
    assert images.shape == (4, 1, 16, 16) and labels.shape == (4, 5) and labels.dtype == torch.float32
    torch.testing.assert_close(images.mean(dim=(1, 2, 3)), torch.tensor([0, 1, 2, 4]) / 4 * 2 - 1, atol=0.01, rtol=0)
    assert labels[:, 0].tolist() == [0, 1, 1, 0] and labels[:, 2].tolist() == [1, 0, 1, 0]


def test_loader_derives_smoking_current_and_refuses_unknown_labels(labelled_folder):
    cohort = image_folder(labelled_folder)
    _, labels, names, ids = labelled_images(cohort, resolution=8, label_names=["smoking_current", "pleural_effusion"])
    assert names == ["smoking_current", "pleural_effusion"] and ids == ["img0", "img1", "img2", "img3"]
    assert labels.tolist() == [[0, 1], [1, 0], [0, 1], [1, 0]]
    with pytest.raises(ValueError, match=r"label 'pneumonia' is not a column"):
        labelled_images(cohort, resolution=8, label_names=["pneumonia"])
    with pytest.raises(ValueError, match=r"column 'sex' holds values other than 1, 0 or empty"):
        labelled_images(cohort, resolution=8, label_names=["sex"])


def test_the_classifier_trains_in_fp32_or_bf16_never_fp16(monkeypatch: pytest.MonkeyPatch) -> None:
    from medcf.classifier.fit import training_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert training_precision("auto", cpu) == "fp32" and training_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert training_precision("auto", cuda) == "fp32"  # a GPU without bf16: not fp16, which needs loss scaling
    with pytest.raises(ValueError, match="precision=fp16: the classifier trains in fp32 or bf16"):
        training_precision("fp16", cuda)
