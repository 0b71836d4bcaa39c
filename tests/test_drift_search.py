"""Latent Drift δ grid search (Yeganeh et al. 2025, §3.4): distances, common random numbers, argmin, files."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import scipy.stats
import torch
from PIL import Image

from medcf.generate import generate
from medcf.models import Components, tiny_components
from medcf.training.drift_search import (
    DEFAULT_DELTAS,
    DriftSearchResult,
    drift_row,
    drift_search,
    intensity_l1,
    mean_image_l1,
    write_drift_search,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["a chest x-ray", "a chest x-ray with pleural effusion", "a chest x-ray of a 70 year old man"]
SETTINGS = {"num_samples": 8, "batch_size": 4, "num_inference_steps": 3, "progress": False}


@pytest.fixture(scope="module")
def components() -> Components:
    return tiny_components(seed=0)


@pytest.fixture(scope="module")
def real_images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return (torch.rand(6, 1, 32, 32, generator=generator) * 1.2 - 0.9).clamp(-1, 1)


@pytest.fixture(scope="module")
def result(components: Components, real_images: torch.Tensor) -> DriftSearchResult:
    return drift_search(components, PROMPTS, real_images, **SETTINGS)


def test_mean_image_l1_by_hand() -> None:
    a, b = torch.full((3, 1, 4, 4), 0.25), torch.full((5, 1, 4, 4), -0.5)
    assert mean_image_l1(a, b) == pytest.approx(0.75, abs=1e-12)
    generated = torch.tensor([[[[0.0, 1.0]]], [[[1.0, 1.0]]]])  # mean image [0.5, 1.0]
    real = torch.tensor([[[[0.0, 0.0]]]])
    assert mean_image_l1(generated, real) == pytest.approx((0.5 + 1.0) / 2, abs=1e-12)


def test_intensity_l1_is_wasserstein_of_pooled_pixels() -> None:
    assert intensity_l1(torch.full((2, 1, 3, 3), 0.4), torch.full((4, 1, 3, 3), -0.1)) == pytest.approx(0.5)
    generator = torch.Generator().manual_seed(0)
    generated = torch.rand(7, 1, 6, 6, generator=generator) * 2 - 1
    real = torch.randn(5, 1, 6, 6, generator=generator).clamp(-1, 1)
    expected = scipy.stats.wasserstein_distance(generated.flatten().numpy(), real.flatten().numpy())
    assert intensity_l1(generated, real) == pytest.approx(expected, abs=1e-6)
    assert intensity_l1(generated, generated) == 0.0


def test_one_row_per_delta_and_settings_recorded(result: DriftSearchResult, real_images: torch.Tensor) -> None:
    assert [row.delta for row in result.rows] == list(DEFAULT_DELTAS)
    assert len(DEFAULT_DELTAS) == 9 and DEFAULT_DELTAS[0] == -0.2 and DEFAULT_DELTAS[-1] == 0.2
    assert (result.num_samples, result.num_real, result.num_inference_steps) == (8, 6, 3)
    assert (result.scheduler, result.guidance_scale, result.seed, result.distance) == ("ddim", 3.0, 0, "mean-image")
    assert result.real_mean_intensity == pytest.approx(real_images.double().mean().item())
    assert len({row.mean_intensity for row in result.rows}) == len(result.rows)  # δ changes the samples


def test_best_delta_is_argmin_of_the_chosen_distance(
    result: DriftSearchResult, components: Components, real_images: torch.Tensor
) -> None:
    assert result.best_delta == min(result.rows, key=lambda row: row.l1_mean_image).delta
    grid = (-0.2, 0.0, 0.2)
    by_intensity = drift_search(components, PROMPTS, real_images, deltas=grid, distance="intensity", **SETTINGS)
    same_rows = [row for row in result.rows if row.delta in grid]
    assert by_intensity.rows == same_rows  # common random numbers: a row depends on its δ only
    assert by_intensity.best_delta == min(same_rows, key=lambda row: row.l1_intensity).delta


def test_same_seed_same_table_other_seed_differs(
    result: DriftSearchResult, components: Components, real_images: torch.Tensor
) -> None:
    again = drift_search(components, PROMPTS, real_images, **SETTINGS)
    assert again == result
    other = drift_search(components, PROMPTS, real_images, deltas=(0.0,), **{**SETTINGS, "seed": 1})
    assert other.rows[0] != next(row for row in result.rows if row.delta == 0.0)


def test_zero_drift_row_equals_plain_generation(
    result: DriftSearchResult, components: Components, real_images: torch.Tensor
) -> None:
    generator = torch.Generator().manual_seed(0)
    prompts = [PROMPTS[index % len(PROMPTS)] for index in range(8)]
    images = torch.cat(
        [
            generate(components, prompts[start : start + 4], num_inference_steps=3, generator=generator)
            for start in (0, 4)
        ]
    )
    expected = drift_row(0.0, images, real_images)
    assert next(row for row in result.rows if row.delta == 0.0) == expected


def test_files_written(result: DriftSearchResult, tmp_path: Path) -> None:
    folder = write_drift_search(result, tmp_path / "drift")
    with (folder / "drift_search.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [float(line["delta"]) for line in table] == [row.delta for row in result.rows]
    assert [float(line["l1_intensity"]) for line in table] == pytest.approx(
        [row.l1_intensity for row in result.rows], rel=1e-5
    )
    with Image.open(folder / "drift_search.png") as picture:
        assert picture.width > 100 and picture.height > 100
    report = (folder / "drift_search.md").read_text()
    assert f"**{result.best_delta:g}**" in report
    assert "- scheduler: ddim" in report and "- num_inference_steps: 3" in report
    assert report.count("\n| ") == 1 + len(result.rows)  # header + one line per δ
    assert sorted(path.name for path in folder.iterdir()) == [
        "drift_search.csv",
        "drift_search.md",
        "drift_search.png",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"deltas": (0.0, 1.5)}, "inside \\[-1, 1\\]"),
        ({"deltas": ()}, "non-empty grid"),
        ({"deltas": (0.1, 0.1)}, "each δ once"),
        ({"prompts": []}, "prompts"),
        ({"prompts": "a chest x-ray"}, "list"),
        ({"num_samples": 0}, "num_samples"),
        ({"distance": "fid"}, "unknown"),
        ({"real_images": torch.zeros(2, 3, 32, 32)}, "N, 1, H, W"),
        ({"real_images": torch.full((2, 1, 32, 32), 255.0)}, "outside \\[-1, 1\\]"),
    ],
)
def test_bad_inputs_raise(components: Components, real_images: torch.Tensor, change: dict, message: str) -> None:
    arguments = {"prompts": PROMPTS, "real_images": real_images, **SETTINGS, **change}
    with pytest.raises(ValueError, match=message):
        drift_search(components, **arguments)


def test_result_is_a_plain_dataclass(result: DriftSearchResult) -> None:
    assert "rows" not in result.settings() and result.settings()["best_delta"] == result.best_delta
    assert dataclasses.asdict(result)["rows"][0]["delta"] == DEFAULT_DELTAS[0]


class _MeanAndSpread:
    """A two-number 'feature extractor' (per-image mean and std): cheap, and FID over it is exact to check."""

    name, resize = "moments", "none"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.flatten(1).double()
        return torch.stack([flat.mean(dim=1), flat.std(dim=1)], dim=1)


def test_fid_per_delta_is_the_frechet_distance_of_that_deltas_samples(
    components: Components, real_images: torch.Tensor, tmp_path: Path
) -> None:
    from medcf.metrics import frechet_distance

    grid = (0.0, 0.2)
    scored = drift_search(components, PROMPTS, real_images, deltas=grid, extractor=_MeanAndSpread(), **SETTINGS)
    assert scored.fid_extractor == "moments"
    generator = torch.Generator().manual_seed(0)
    prompts = [PROMPTS[index % len(PROMPTS)] for index in range(8)]
    images = torch.cat([
        generate(components, prompts[start : start + 4], num_inference_steps=3, generator=generator,
                 latent_drift=0.2) for start in (0, 4)
    ])  # fmt: skip
    extractor = _MeanAndSpread()
    expected = frechet_distance(extractor((real_images + 1) / 2), extractor((images + 1) / 2))
    assert scored.rows[1].fid == pytest.approx(expected, rel=1e-9)
    plain = drift_search(components, PROMPTS, real_images, deltas=grid, **SETTINGS)
    assert all(row.fid is None for row in plain.rows) and plain.fid_extractor is None
    folder = write_drift_search(scored, tmp_path / "drift")
    assert "fid" in (folder / "drift_search.csv").read_text().splitlines()[0]
    worse = dataclasses.replace(scored, best_delta=0.2, rows=[
        dataclasses.replace(scored.rows[0], fid=1.0), dataclasses.replace(scored.rows[1], fid=2.0)])  # fmt: skip
    assert "Check before adopting" in write_drift_search(worse, tmp_path / "worse").joinpath(
        "drift_search.md").read_text()  # fmt: skip
