"""3-D volumes with prompts (medcf.data.volume) on a tiny cohort in the layout `medcf synth ct` writes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from medcf.data.volume import (
    VolumeTextDataset,
    dataset_value_range,
    from_unit_range,
    read_volume,
    readable_volumes,
    to_unit_range,
    write_volume,
)
from medcf.prompts import PromptTemplate
from medcf.training.data import TRAIN, load_cohorts, volume_dataset

SHAPE = (16, 16, 8)
SPACING = (2.0, 2.0, 4.0)
VALUE_RANGE = [-1024, 1024]


def write_ct_cohort(root: Path, *, patients: int = 6, shape: tuple[int, int, int] = SHAPE) -> Path:
    """out/volumes/<id>.nii.gz (int16 HU, RAS+ affine diag(spacing)), out/masks/<id>_lungs.nii.gz, metadata.csv,
    dataset.json: the layout of `medcf synth ct`, at toy size. Effusion patients have fluid (+20 HU) at the back."""
    (root / "volumes").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    affine = np.diag([*SPACING, 1.0])
    x, y, _ = np.meshgrid(*(np.linspace(-1, 1, side) for side in shape), indexing="ij")
    body = x**2 + y**2 < 0.8
    lungs = (np.abs(x) > 0.15) & (x**2 + y**2 < 0.5)
    rows = []
    for index in range(patients):
        case = f"ct{index:03d}"
        effusion = index % 2
        hu = np.where(body, 40.0, -1000.0)
        hu[lungs] = -850.0
        if effusion:
            hu[lungs & (y < -0.3)] = 20.0
        hu += rng.normal(0, 10, shape)
        nib.save(nib.Nifti1Image(hu.astype(np.int16), affine), root / "volumes" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(lungs.astype(np.uint8), affine), root / "masks" / f"{case}_lungs.nii.gz")
        rows.append(
            {
                "id": case, "patient_id": f"p{index:03d}", "path": f"volumes/{case}.nii.gz",
                "mask_path": f"masks/{case}_lungs.nii.gz", "age": 50 + index, "sex": "MF"[index % 2],
                "smoking": ["never", "current"][index % 2], "nodule": 0, "consolidation": 0,
                "pleural_effusion": effusion,
            }
        )  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    description = {
        "kind": "ct", "modality": "chest CT", "dims": 3, "shape": list(shape), "spacing_mm": list(SPACING),
        "value_range": VALUE_RANGE,
    }  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(description))
    return root


@pytest.fixture(scope="module")
def ct_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ct_cohort(tmp_path_factory.mktemp("ct"))


def _cohort(root: Path, holdout_fraction: float = 0.0):
    return load_cohorts(root, modality="chest CT", holdout_fraction=holdout_fraction, seed=0, bad_files="unchecked")


def test_items_are_whole_volumes_or_patches_in_unit_range(ct_root: Path) -> None:
    cohort = _cohort(ct_root)[TRAIN]
    template = PromptTemplate("chest CT", style="simple")
    whole = VolumeTextDataset(cohort, template, value_range=dataset_value_range(ct_root))
    item = whole[0]
    assert item["pixel_values"].shape == (1, *SHAPE) and whole.item_shape == SHAPE
    assert item["pixel_values"].min() >= -1 and item["pixel_values"].max() <= 1
    hu = read_volume(ct_root / "volumes" / f"{item['id']}.nii.gz")
    torch.testing.assert_close(item["pixel_values"][0], torch.from_numpy(hu).clamp(-1024, 1024) / 1024)
    assert "chest CT" in item["prompt"]
    patches = VolumeTextDataset(cohort, template, value_range=(-1024, 1024), patch=(8, 8, 4))
    assert patches[0]["pixel_values"].shape == (1, 8, 8, 4) and patches.item_shape == (8, 8, 4)
    with pytest.raises(ValueError, match="smaller than the patch"):
        VolumeTextDataset(cohort, template, value_range=(-1024, 1024), patch=(32, 8, 4))[0]


def test_split_is_by_patient_with_the_holdout_fraction(ct_root: Path) -> None:
    cohorts = _cohort(ct_root, holdout_fraction=0.34)
    options = {"patch": [], "bad_files": "error", "prompt_style": "diverse", "patient_info": True, "seed": 0}
    datasets = {name: volume_dataset(cohort, **options) for name, cohort in cohorts.items()}
    patients = [set(dataset.cohort.records["patient_id"]) for dataset in datasets.values()]
    assert len(datasets) == 2 and not patients[0] & patients[1] and len(patients[1]) == 2


def test_intensity_mapping_round_trips_within_the_value_range() -> None:
    hu = torch.tensor([-3000.0, -1024.0, 0.0, 512.0, 3000.0])
    unit = to_unit_range(hu, (-1024, 1024))
    assert unit.tolist() == [-1.0, -1.0, 0.0, 0.5, 1.0]
    assert from_unit_range(unit, (-1024, 1024)).tolist() == [-1024.0, -1024.0, 0.0, 512.0, 1024.0]


def test_written_volume_has_the_source_geometry_in_any_orientation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    stored = rng.integers(-1000, 1000, size=(6, 5, 4)).astype(np.int16)
    lps = np.diag([-1.5, -1.5, 3.0, 1.0])  # a DICOM-like left-posterior-superior file
    lps[:3, 3] = [10.0, 20.0, -30.0]
    nib.save(nib.Nifti1Image(stored, lps), tmp_path / "source.nii.gz")
    ras = read_volume(tmp_path / "source.nii.gz")  # RAS+ voxel order: flipped on the first two axes
    np.testing.assert_array_equal(ras, stored[::-1, ::-1, :])
    written = nib.load(write_volume(tmp_path / "out.nii.gz", ras, like=tmp_path / "source.nii.gz"))
    np.testing.assert_array_equal(written.affine, lps)
    np.testing.assert_array_equal(np.asarray(written.dataobj), stored)
    assert written.get_data_dtype() == np.int16


def test_unreadable_volumes_are_refused_or_skipped(tmp_path: Path) -> None:
    root = write_ct_cohort(tmp_path / "ct", patients=3)
    (root / "volumes" / "ct001.nii.gz").write_bytes(b"not a volume")
    cohort = _cohort(root)[TRAIN]
    with pytest.raises(ValueError, match="1 unreadable volume"):
        readable_volumes(cohort, "error")
    assert list(readable_volumes(cohort, "skip").records["id"]) == ["ct000", "ct002"]
