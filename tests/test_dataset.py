"""ImageTextDataset items and batches read from every adapter's layout: shapes, ranges, prompts, masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from medcf.data import Cohort, ImageTextDataset, collate_items, split_by_patient
from medcf.data.adapters import (
    brain_mri,
    chexpert,
    covid_radiography,
    image_folder,
    mimic_cxr,
    nih_chestxray14,
)
from medcf.data.dataset import resize_square
from medcf.data.io import read_image
from medcf.data.synthetic import synthesize
from medcf.prompts import PromptTemplate

CXR = PromptTemplate("chest X-ray")


def check_item(item: dict, resolution: int) -> None:
    pixels = item["pixel_values"]
    assert pixels.shape == (1, resolution, resolution) and pixels.dtype == torch.float32
    assert pixels.min() >= -1 and pixels.max() <= 1 and pixels.std() > 0
    if "mask" in item:
        assert item["mask"].shape == (1, resolution, resolution) and item["mask"].dtype == torch.float32
        assert set(item["mask"].unique().tolist()) == {0.0, 1.0}


def test_folder_items_crop_to_the_centre_square_and_keep_masks_binary(folder_root):
    dataset = ImageTextDataset(image_folder(folder_root), CXR, resolution=32)
    item = dataset[2]
    check_item(item, 32)
    stored = np.asarray(Image.open(folder_root / "images/img2.png"), dtype=np.float32) / 255  # 40 × 32
    expected = stored[4:36] * 2 - 1  # centre 32 × 32 crop of the 40 rows, same size: no resampling
    assert torch.allclose(item["pixel_values"][0], torch.from_numpy(expected), atol=1e-6)
    mask = np.asarray(Image.open(folder_root / "masks/img2.png"))[4:36] > 0
    assert torch.equal(item["mask"][0].bool(), torch.from_numpy(mask))
    assert item["id"] == "img2" and item["row"]["smoking"] == "current" and item["row"]["nodule"] == 1
    assert item["prompt"] == (
        "Chest X-ray: Patient age: 62. Gender: Male. Smoking status: current smoker. Nodule. pack years is 20."
    )
    assert dataset[3]["row"]["smoking"] is None and "Smoking" not in dataset[3]["prompt"]
    assert isinstance(dataset[3]["row"]["age"], float) and dataset[3]["row"]["slice_index"] is None


def test_resize_square_antialiases_images_and_keeps_masks_binary():
    stripes = torch.zeros(64, 96)
    stripes[:, ::2] = 1  # one-pixel stripes alias to 0/1 without antialiasing
    small = resize_square(stripes, 16)
    assert small.shape == (16, 16) and torch.allclose(small, torch.full((16, 16), 0.5), atol=0.05)
    mask = torch.zeros(10, 30)
    mask[:, 10:20] = 1  # exactly the centre square
    assert torch.equal(resize_square(mask, 20, nearest=True), torch.ones(20, 20))
    assert torch.equal(resize_square(mask, 4, nearest=True).unique(), torch.tensor([1.0]))


def test_covid_masks_are_resized_to_their_image(covid_root):
    dataset = ImageTextDataset(covid_radiography(covid_root), CXR, resolution=24)
    item = dataset[0]
    check_item(item, 24)
    assert item["mask"][0, 12, 12] == 1 and item["mask"][0, 0, 0] == 0  # 24² mask → 36² image → 24²
    assert item["mask"].mean().item() == pytest.approx(0.25, abs=0.05)
    assert item["prompt"].startswith("Chest X-ray: COVID-19 pneumonia. No viral pneumonia.")
    assert "lung opacity" not in item["prompt"].lower()


def test_folder_mask_of_another_size_is_an_error_naming_both_files(folder_root):
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder_root / "masks/img1.png")
    dataset = ImageTextDataset(image_folder(folder_root), CXR, resolution=16)
    with pytest.raises(ValueError, match=r"masks/img1.png: mask is 20×20 px but its image .*images/img1.png is 32×40"):
        dataset[1]


def test_corrupt_image_is_an_error_naming_the_file(folder_root):
    (folder_root / "images/img0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dataset = ImageTextDataset(image_folder(folder_root), CXR, resolution=16)
    with pytest.raises(ValueError, match="img0.png"):
        dataset[0]


def test_every_chest_adapter_yields_model_ready_items(chexpert_csv, mimic_root, nih_csv):
    for cohort in (chexpert(chexpert_csv), mimic_cxr(mimic_root, reports=True), nih_chestxray14(nih_csv)):
        dataset = ImageTextDataset(cohort, CXR, resolution=16)
        for index in range(len(dataset)):
            check_item(dataset[index], 16)
    nih = ImageTextDataset(nih_chestxray14(nih_csv), CXR, resolution=16)
    assert nih[0]["prompt"].startswith("Chest X-ray: Patient age: 58. Gender: Male. View: PA.")
    assert "Cardiomegaly." in nih[0]["prompt"] and "No hernia." in nih[0]["prompt"]
    mimic = ImageTextDataset(mimic_cxr(mimic_root, reports=True), CXR, resolution=16)
    assert "FINDINGS" not in mimic[0]["prompt"] and mimic[0]["row"]["report"].startswith("FINDINGS")


def test_brain_slices_match_the_reader(oasis):
    root, csv = oasis
    cohort = brain_mri(root, csv, id_column="ID", axis="coronal", slices=[3, 7])
    dataset = ImageTextDataset(cohort, PromptTemplate("brain MRI"), resolution=12)
    item = dataset[1]
    check_item(item, 12)
    direct = read_image(root / "OAS1_0001_MR1.nii.gz", index=7, axis="coronal").pixels
    expected = resize_square(torch.from_numpy(direct), 12) * 2 - 1
    assert torch.allclose(item["pixel_values"][0], expected) and item["row"]["slice_index"] == 7
    assert item["prompt"] == (
        "Brain MRI: Patient age: 74. Gender: Female. Alzheimer's disease. No mild cognitive impairment. "
        "dementia severity is very mild."
    )


def test_diverse_prompts_vary_per_item_and_repeat_per_seed(tmp_path, folder_root):
    records = pd.DataFrame(
        {
            "id": [f"x{i}" for i in range(12)],
            "patient_id": "p",
            "path": "images/img0.png",
            "nodule": 1,
            "age": 60.0,
        }
    )
    cohort = Cohort(records, modality="chest X-ray", root=folder_root)
    diverse = PromptTemplate("chest X-ray", style="diverse")
    prompts = [ImageTextDataset(cohort, diverse, seed=1).prompt(i) for i in range(12)]
    assert len(set(prompts)) > 3  # same row, different ids → different paraphrases
    assert prompts == [ImageTextDataset(cohort, diverse, seed=1).prompt(i) for i in range(12)]
    assert prompts != [ImageTextDataset(cohort, diverse, seed=2).prompt(i) for i in range(12)]


def test_bad_clinical_value_is_reported_with_the_image(folder_root):
    records = pd.DataFrame({"id": ["a"], "patient_id": ["p"], "path": ["images/img0.png"], "sex": ["W"]})
    dataset = ImageTextDataset(Cohort(records, modality="chest X-ray", root=folder_root), CXR)
    with pytest.raises(ValueError, match=r"image a \(.*img0.png\): sex value 'W' not understood"):
        dataset.prompt(0)
    with pytest.raises(ValueError, match="resolution=0"):
        ImageTextDataset(dataset.cohort, CXR, resolution=0)


def test_collate_batches_through_a_dataloader(folder_root):
    parts = split_by_patient(image_folder(folder_root), {"train": 2 / 3, "test": 1 / 3}, seed=0)
    dataset = ImageTextDataset(parts["train"], CXR, resolution=8)
    batch = next(iter(DataLoader(dataset, batch_size=2, collate_fn=collate_items)))
    assert batch["pixel_values"].shape == (2, 1, 8, 8) and batch["mask"].shape == (2, 1, 8, 8)
    assert len(batch["prompt"]) == 2 and len(batch["row"]) == 2 and batch["row"][0]["split"] == "train"
    assert batch["id"] == [row["id"] for row in batch["row"]]
    item = dataset[0]
    without_mask = {key: value for key, value in item.items() if key != "mask"}
    with pytest.raises(ValueError, match="1 of 2 items have a mask"):
        collate_items([item, without_mask])
    with pytest.raises(ValueError, match="no items"):
        collate_items([])
    assert "mask" not in collate_items([without_mask])


@pytest.mark.parametrize(("kind", "modality"), [("cxr", "chest X-ray"), ("brain", "brain MRI")])
def test_synthetic_cohorts_load_through_the_generic_adapter(tmp_path, kind, modality):
    root = synthesize(kind, tmp_path / kind, n=3, size=32, seed=0, progress=False)
    cohort = image_folder(root, modality=modality)
    assert cohort.has_masks and len(cohort) == 3
    item = ImageTextDataset(cohort, PromptTemplate(modality), resolution=16)[0]
    check_item(item, 16)
    assert item["prompt"].startswith(PromptTemplate(modality).render({}).rstrip("."))
