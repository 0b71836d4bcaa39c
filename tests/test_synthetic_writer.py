"""Writing semi-synthetic cohorts: layout, tables, byte-identical reruns, atomicity, preview grids."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcf.data.synthetic import preview_grid, preview_kind, synthesize
from medcf.data.synthetic import writer as writer_module

CANONICAL_CXR = [
    "id",
    "patient_id",
    "path",
    "mask_path",
    "age",
    "sex",
    "smoking",
    "view",
    "nodule",
    "consolidation",
    "pleural_effusion",
    "cardiomegaly",
    "no_finding",
]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def cxr_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("cxr", tmp_path_factory.mktemp("cxr") / "data", n=3, size=64, seed=0, progress=False)


def test_cxr_layout_and_metadata_read_back_with_canonical_columns(cxr_dataset: Path):
    metadata = pd.read_csv(cxr_dataset / "metadata.csv")
    assert list(metadata.columns) == CANONICAL_CXR
    assert list(metadata["id"]) == ["cxr00000", "cxr00001", "cxr00002"]
    assert set(metadata["smoking"]) <= {"never", "former", "current"} and set(metadata["sex"]) <= {"F", "M"}
    for record in metadata.itertuples():
        with Image.open(cxr_dataset / record.path) as image:
            assert image.size == (64, 64) and image.mode.startswith("I;16")
        with Image.open(cxr_dataset / record.mask_path) as mask:
            assert mask.mode == "L" and set(np.unique(np.asarray(mask))) <= {0, 255}
        findings = [record.nodule, record.consolidation, record.pleural_effusion, record.cardiomegaly]
        assert record.no_finding == int(not any(findings))
    masks = pd.read_csv(cxr_dataset / "masks.csv")
    assert {"lungs", "heart"} <= set(masks["name"]) and all((cxr_dataset / path).exists() for path in masks["path"])


def test_counterfactual_index_matches_the_files(cxr_dataset: Path):
    changes = pd.read_csv(cxr_dataset / "counterfactuals.csv", dtype=str)
    assert list(changes.columns) == ["id", "factor", "value", "path", "effect_mask_path"]
    first = changes[changes["id"] == "cxr00000"]
    assert set(first["factor"]) == {
        "age",
        "sex",
        "smoking",
        "nodule",
        "consolidation",
        "pleural_effusion",
        "cardiomegaly",
    }
    for change in changes.itertuples():
        assert change.path == f"counterfactuals/{change.id}/{change.factor}={change.value}.png"
        with Image.open(cxr_dataset / change.effect_mask_path) as mask:
            assert np.asarray(mask).max() == 255  # every single-factor change changes something
    on_disk = {str(path.relative_to(cxr_dataset)) for path in (cxr_dataset / "counterfactuals").rglob("*.png")}
    assert on_disk == set(changes["path"]) | set(changes["effect_mask_path"])


def test_same_seed_gives_byte_identical_files_whatever_the_worker_count(cxr_dataset: Path, tmp_path: Path):
    again = synthesize("cxr", tmp_path / "again", n=3, size=64, seed=0, progress=False, workers=2)
    assert tree_digest(again) == tree_digest(cxr_dataset)
    other = synthesize("cxr", tmp_path / "other", n=3, size=64, seed=1, progress=False)
    assert tree_digest(other)["images/cxr00000.png"] != tree_digest(cxr_dataset)["images/cxr00000.png"]


def test_refuses_a_non_empty_folder_and_bad_arguments(tmp_path: Path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="busy: folder exists and is not empty"):
        synthesize("cxr", tmp_path / "busy", n=1, size=64, progress=False)
    with pytest.raises(ValueError, match="unknown synthetic dataset kind 'knee'"):
        synthesize("knee", tmp_path / "knee", n=1, progress=False)
    with pytest.raises(ValueError, match="size=8"):
        synthesize("cxr", tmp_path / "tiny", n=1, size=8, progress=False)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"


def test_a_crash_leaves_no_half_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real = writer_module.write_subject

    def failing(kind, root, size, seed, counterfactuals, index):
        if index == 1:
            raise RuntimeError("disk full")
        return real(kind, root, size, seed, counterfactuals, index)

    monkeypatch.setattr(writer_module, "write_subject", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize("cxr", tmp_path / "data", n=2, size=64, progress=False, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_brain_cohort_without_counterfactuals(tmp_path: Path):
    root = synthesize("brain", tmp_path / "brain", n=2, size=64, counterfactuals=False, progress=False)
    metadata = pd.read_csv(root / "metadata.csv")
    assert {"age", "sex", "diagnosis", "lesion", "alzheimers_disease", "mask_path"} <= set(metadata.columns)
    assert set(metadata["diagnosis"]) <= {"AD", "CN"}
    assert pd.read_csv(root / "counterfactuals.csv").empty and not any((root / "counterfactuals").iterdir())


def test_preview_grids_from_a_folder_and_from_a_generator(cxr_dataset: Path, tmp_path: Path):
    grid = preview_grid(cxr_dataset, tmp_path / "grid.png", subjects=2)
    rendered = preview_kind("brain", tmp_path / "brain.png", subjects=1, size=64)
    for path in (grid, rendered):
        with Image.open(path) as picture:
            assert picture.mode == "RGB" and picture.width > 4 * 128
    with pytest.raises(FileNotFoundError, match="no metadata.csv"):
        preview_grid(tmp_path, tmp_path / "none.png")


def test_the_generic_adapter_reads_the_cohort(cxr_dataset: Path):
    adapters = pytest.importorskip("medcf.data.adapters")
    cohort = adapters.image_folder(cxr_dataset, cxr_dataset / "metadata.csv", modality="chest X-ray")
    assert len(cohort.records) == 3
    assert all(Path(path).exists() for path in cohort.records["path"])
