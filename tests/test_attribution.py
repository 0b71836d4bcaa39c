"""Healthy-counterpart attribution maps and their scoring against the true effect masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medcf.attribution import counterpart_attribution, difference_map
from medcf.attribution.difference import gaussian_blur
from medcf.attribution.scoring import compare_methods, finding_cases, score_maps
from medcf.classifier import fit_classifier, load_classifier, train_classifier_to_folder
from medcf.models import tiny_components
from medcf.prompts import PromptTemplate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_difference_map_is_signed_grey_in_display_units_and_masked() -> None:
    images = torch.zeros(1, 3, 8, 8)
    counterparts = images.clone()
    counterparts[:, :, 2:4, 2:4] = -1.0  # the counterpart is darker by half the display range
    counterparts[:, 0, 5, 5] = 0.6  # one channel brighter: grey is the channel mean
    maps = difference_map(images, counterparts)
    assert maps.shape == (1, 1, 8, 8) and maps[0, 0, 2, 2] == pytest.approx(0.5)
    assert maps[0, 0, 5, 5] == pytest.approx(-0.1) and maps[0, 0, 0, 0] == 0
    anatomy = torch.zeros(1, 1, 8, 8)
    anatomy[..., :3, :] = 1
    masked = difference_map(images, counterparts, anatomy_mask=anatomy)
    assert masked[0, 0, 2, 2] == pytest.approx(0.5) and masked[0, 0, 3, 3] == 0
    with pytest.raises(ValueError, match="differ in shape"):
        difference_map(images, counterparts[:, :1])


@pytest.mark.parametrize("sigma", [0.7, 1.5, 3.0])
def test_gaussian_blur_matches_scipy(sigma: float) -> None:
    maps = torch.rand(2, 1, 24, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = np.stack([gaussian_filter(m[0].numpy(), sigma, mode="mirror", truncate=3.0) for m in maps])
    np.testing.assert_allclose(gaussian_blur(maps, sigma)[:, 0].numpy(), expected, atol=1e-10)
    assert torch.equal(gaussian_blur(maps, 0.0), maps)


def test_counterpart_maps_average_the_seeds() -> None:
    components = tiny_components(in_channels=1)
    images = torch.linspace(-1, 1, 2 * 32 * 32).reshape(2, 1, 32, 32)
    source, healthy = ["chest x-ray with a nodule"] * 2, ["normal chest x-ray"] * 2
    options = {"num_inference_steps": 3, "sigma": 0.0}
    result = counterpart_attribution(components, images, source, healthy, engine="sdedit", seeds=(0, 1, 2), **options)
    assert result.seed_maps.shape == (3, 2, 1, 32, 32) and result.counterparts.shape == images.shape
    torch.testing.assert_close(result.maps, result.seed_maps.mean(dim=0))
    assert (result.seed_maps[0] - result.seed_maps[1]).abs().max() > 1e-4  # SDEdit draws differ by seed
    torch.testing.assert_close(result.seed_maps[0], difference_map(images, result.counterparts))
    once = counterpart_attribution(components, images, source, healthy, **options)  # inversion
    assert once.seed_maps.shape[0] == 1  # deterministic: one run whatever the seeds
    with pytest.raises(ValueError, match="seeds is empty"):
        counterpart_attribution(components, images, source, healthy, seeds=())


def test_finding_cases_are_unseen_patients_with_the_finding() -> None:
    cases = finding_cases("nodule", n=4, size=32)
    assert cases.images.shape == cases.masks.shape == (4, 1, 32, 32)
    assert all(row["nodule"] == 1 for row in cases.rows)
    inside = cases.masks.bool()
    assert all(mask.any() for mask in inside)
    assert (cases.images - cases.healthy)[~inside].abs().max() <= 2 * 0.02 + 1e-6  # below the effect threshold
    with pytest.raises(ValueError, match="not a binary factor"):
        finding_cases("smoking", n=1, size=32)


def test_methods_are_scored_on_the_same_cases() -> None:
    cases = finding_cases("pleural_effusion", n=4, size=32)
    labels = torch.tensor([[1.0], [1.0], [0.0], [0.0]])
    network, _ = fit_classifier(
        torch.cat([cases.images[:2], cases.healthy[:2]]), labels, ["pleural_effusion"], steps=2, batch_size=4,
        learning_rate=1e-3, seed=0, channels=(8, 16), progress=False,
    )  # fmt: skip
    rows = compare_methods(
        tiny_components(in_channels=1), PromptTemplate("chest X-ray"), cases, classifier=network,
        batch_size=2, seeds=(0,), num_inference_steps=2,
    )  # fmt: skip
    assert [row["method"] for row in rows] == [
        "true counterpart", "healthy counterpart (medcf)", "gradient saliency", "Grad-CAM"
    ]  # fmt: skip
    truth = rows[0]
    assert truth["auroc"] > 0.99 and truth["ncc"] > 0.5  # the ceiling: the true map finds its own mask
    assert all(0 <= row["auroc"] <= 1 and -1 <= row["ncc"] <= 1 and 0 <= row["dice"] <= 1 for row in rows)
    assert score_maps(cases.masks, cases.masks)["dice"] == pytest.approx(1.0)


def test_train_classifier_to_folder_holds_out_patients(cxr_synth_root: Path, tmp_path: Path) -> None:
    folder = train_classifier_to_folder(
        cxr_synth_root, tmp_path / "classifier", resolution=32, label_names=["cardiomegaly"], holdout_fraction=0.25,
        steps=3, batch_size=4, progress=False,
    )  # fmt: skip
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["train_images"] + metrics["holdout_images"] == 24 and metrics["holdout_images"] == 6
    assert set(metrics["holdout_auroc"]) == {"cardiomegaly"}
    assert load_classifier(folder).label_names == ["cardiomegaly"]
    for name in ("loss.png", "index.html", "report.md", "model.safetensors"):
        assert (folder / name).is_file()


def test_bf16_precision_gives_float32_maps_close_to_fp32() -> None:
    components = tiny_components(in_channels=1)
    images = torch.linspace(-1, 1, 2 * 32 * 32).reshape(2, 1, 32, 32)
    source, healthy = ["chest x-ray with a nodule"] * 2, ["normal chest x-ray"] * 2
    options = {"num_inference_steps": 3, "sigma": 0.0}
    full, half = (
        counterpart_attribution(components, images, source, healthy, precision=precision, **options)
        for precision in ("fp32", "bf16")
    )
    assert half.maps.dtype == half.counterparts.dtype == torch.float32
    assert not torch.equal(half.maps, full.maps)  # bf16 really ran
    correlation = torch.corrcoef(torch.stack([half.maps.flatten(), full.maps.flatten()]))[0, 1]
    # a random tiny model amplifies rounding; the shipped model scores equal AUROC (benchmarks/attribution_fast_path)
    assert correlation > 0.98 and (half.maps - full.maps).abs().mean() < 0.15 * full.maps.abs().mean()
    with pytest.raises(ValueError, match="precision=fp16: half-precision autocast needs a GPU"):
        counterpart_attribution(components, images, source, healthy, precision="fp16", **options)


def test_auto_precision_is_fp32_on_every_cpu_and_half_on_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from medcf.models import precision

    cpu = torch.device("cpu")
    assert precision.resolve_precision("auto", cpu) == "fp32"  # the same numbers on any CPU, bf16 units or not
    assert precision.resolve_precision("bf16", cpu) == "bf16" and precision.resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="fp16: half-precision autocast needs a GPU"):
        precision.resolve_precision("fp16", cpu)
    for native, expected in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, n=native: n)
        assert precision.resolve_precision("auto", torch.device("cuda", 0)) == expected
    assert precision.resolve_precision("auto", torch.device("mps")) == "fp16"


def test_per_finding_counterparts_keep_the_other_findings_in_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    from medcf.attribution import scoring

    cases = finding_cases("nodule", n=2, size=32)
    cases.rows[0]["pleural_effusion"] = 1  # a patient with two findings
    original, targets = scoring.counterpart_attribution, []

    def spy(components: object, images: torch.Tensor, source: list[str], healthy: list[str], **options: object):
        targets.append(healthy[0])
        return original(components, images, source, healthy, **options)

    monkeypatch.setattr(scoring, "counterpart_attribution", spy)
    template = PromptTemplate("chest X-ray", style="diverse")
    for per_finding in (False, True):
        compare_methods(tiny_components(in_channels=1), template, cases, seeds=(0,), num_inference_steps=1,
                        per_finding=per_finding)  # fmt: skip
    every, only = targets
    assert every.startswith("A normal PA chest X-ray")  # every finding removed: the healthy description
    assert "effusion" in only and "nodule" not in only  # the scored one only
