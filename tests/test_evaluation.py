"""medcf evaluate on a tiny model and a tiny semi-synthetic cohort: the held-out split, every section, the files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from medcf.classifier import fit_classifier, labelled_images, save_classifier
from medcf.data.adapters import image_folder
from medcf.data.synthetic import synthesize
from medcf.evaluation import EvaluationSettings, evaluate_to_folder
from medcf.evaluation.data import RunSplit, evaluation_set, run_split
from medcf.evaluation.generation import row_targets
from medcf.models import save_components, tiny_components
from medcf.prompts import PromptTemplate
from medcf.training.data import HOLDOUT, load_cohorts

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = 32


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("cxr", tmp_path_factory.mktemp("data") / "cxr", n=40, size=SIZE, seed=3, progress=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    folder = save_components(tiny_components(in_channels=1, sample_size=SIZE), run / "model")
    PromptTemplate("chest X-ray", style="diverse").save_pretrained(folder)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"holdout_fraction": 0.25}, "train": {"seed": 5}}))
    return folder


def test_the_run_split_is_read_beside_the_model_and_defaults_without_it(model: Path, tmp_path: Path) -> None:
    assert run_split(model) == RunSplit(0.25, 5, "")
    assert run_split(tmp_path / "model") == RunSplit()


def test_evaluation_set_holds_only_the_runs_held_out_patients(cohort: Path) -> None:
    split = RunSplit(0.25, 5, "")
    data = evaluation_set(cohort, resolution=SIZE, modality="chest X-ray", split=split, limit=100)
    held_out = load_cohorts(cohort, modality="chest X-ray", holdout_fraction=0.25, seed=5)[HOLDOUT]
    assert sorted(row["id"] for row in data.rows) == sorted(held_out.records["id"])
    assert data.images.shape == (len(data.rows), 1, SIZE, SIZE) and data.images.abs().max() <= 1
    assert len(data.training_images) == 40 - len(data.rows)
    with pytest.raises(ValueError, match="held out no patients"):
        evaluation_set(cohort, resolution=SIZE, modality="chest X-ray", split=RunSplit(0.0, 0, ""))


def test_row_targets_follow_the_rows_findings_and_smoking() -> None:
    rows = [{"nodule": 1, "smoking": "current"}, {"nodule": 0, "smoking": "former"}, {"smoking": None}]
    targets = row_targets(rows, ["nodule", "smoking_current"])
    expected = torch.tensor([[1.0, 1.0], [0.0, 0.0], [float("nan"), float("nan")]], dtype=torch.float64)
    torch.testing.assert_close(targets, expected, equal_nan=True)


def test_evaluate_to_folder_writes_every_section(model: Path, cohort: Path, tmp_path: Path) -> None:
    labelled = labelled_images(image_folder(cohort), resolution=16, label_names=["pleural_effusion", "nodule"])
    network, _ = fit_classifier(
        labelled.images, labelled.labels, labelled.label_names, steps=2, batch_size=8, learning_rate=1e-3, seed=0,
        channels=(4, 8), progress=False,
    )  # fmt: skip
    classifier = save_classifier(network, tmp_path / "classifier")
    settings = EvaluationSettings(
        n=6, num_inference_steps=2, diversity_prompts=2, edit_images=2, composition_images=2, attribution_cases=2,
        batch_size=8,
    )  # fmt: skip
    out = evaluate_to_folder(model, cohort, tmp_path / "eval", classifier=classifier, settings=settings)
    metrics = json.loads((out / "metrics.json").read_text())
    generation = metrics["generation"]
    assert generation["n_fake"] == 6 and generation["n_real"] == 10  # all held-out patients are the reference
    assert {"fid_effnet", "kid_effnet_mean", "fid_domain"} <= generation.keys()
    assert 0 < generation["diversity_ms_ssim"] <= 1
    assert {"features_effnet", "pixels"} == metrics["privacy"].keys()
    assert set(metrics["effectiveness"]) >= {"pleural_effusion", "nodule", "mean_accuracy"}
    edits = {edit["finding"]: edit for edit in metrics["soundness"]["finding_edits"]}
    assert set(edits) == {"pleural_effusion", "nodule"}
    assert set(metrics["soundness"]["composition_l1"]) == {"1", "2", "10"}
    methods = {(row["finding"], row["method"]) for row in metrics["attribution"]}
    assert ("nodule", "healthy counterpart (medcf)") in methods and ("nodule", "Grad-CAM") in methods
    assert ("cardiomegaly", "Grad-CAM") not in methods  # the classifier was not trained on it
    for name in ("samples.png", "nearest.png", "privacy_pixels.png", "privacy_features_effnet.png", "index.html"):
        assert (out / name).stat().st_size > 0
