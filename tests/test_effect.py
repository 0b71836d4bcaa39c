"""Population attribute-effect maps (DGM-VLC, Xing et al. 2024): contrasts, estimator, bootstrap, samplers, files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medcf.attribution import effect_pairs
from medcf.attribution.effect import (
    ATTRIBUTE_CONTRASTS,
    EffectResult,
    bootstrap_interval,
    contrast,
    matched_rows,
    population_effect,
)
from medcf.attribution.effect_pairs import (
    cohort_anatomy_mask,
    cohort_pairs,
    cohort_rows,
    diffusion_pairs,
)
from medcf.attribution.effect_report import write_effect
from medcf.data.synthetic.cxr_findings import SMOKING_SHIFT
from medcf.data.synthetic.kinds import get_kind
from medcf.models import Components, tiny_components
from medcf.prompts import PromptTemplate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 64
N = 60
CXR = get_kind("cxr")


@pytest.fixture(scope="module")
def lungs() -> np.ndarray:
    """Majority lung atlas: the mask the mean shift is measured in."""
    return cohort_anatomy_mask("cxr", size=SIZE)


def smoking_effect(n: int, mask: np.ndarray, *, batch_size: int = 16) -> EffectResult:
    """The smoking effect measured on ground-truth pairs: cohort subjects rendered never vs current."""
    sample_pairs = cohort_pairs("cxr", attribute="smoking", size=SIZE)
    return population_effect(
        sample_pairs, n, attribute="smoking", anatomy_mask=mask, batch_size=batch_size, progress=False
    )


@pytest.fixture(scope="module")
def smoking(lungs: np.ndarray) -> EffectResult:
    return smoking_effect(N, lungs)


def direct_shifts(indices: range, mask: np.ndarray) -> np.ndarray:
    """Per-subject mean of (current − never) inside `mask`, straight from the renderer, display units."""
    shifts = []
    for index in indices:
        subject = CXR.sample(0, index)
        never, current = (CXR.render(subject, SIZE, smoking=level).image for level in ("never", "current"))
        shifts.append((current.astype(np.float64) - never)[mask].mean())
    return np.array(shifts)


# Contrasts and matched rows


def test_default_contrasts_and_finding_keys() -> None:
    assert ATTRIBUTE_CONTRASTS["smoking"] == ("smoking=never", "smoking=current")
    assert ATTRIBUTE_CONTRASTS["sex"] == ("sex=F", "sex=M")
    assert ATTRIBUTE_CONTRASTS["age"] == ("age=40", "age=70")
    assert contrast("pleural_effusion") == ("pleural_effusion=absent", "pleural_effusion=present")
    assert contrast("smoking", low="smoking=former") == ("smoking=former", "smoking=current")


@pytest.mark.parametrize(
    ("attribute", "low", "high", "message"),
    [
        ("smoking", "age=40", None, "does not change 'smoking'"),
        ("smoking", "smoking=current", None, "same edit"),
        ("pack_years", None, None, "no default contrast"),
    ],
)
def test_contrast_errors(attribute: str, low: str | None, high: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        contrast(attribute, low=low, high=high)


def test_matched_rows_differ_in_the_attribute_only() -> None:
    rows = cohort_rows("cxr", n=12, seed=0)
    rows_low, rows_high = matched_rows(rows, "smoking")
    assert len(rows_low) == len(rows_high) == 12
    for base, low, high in zip(rows, rows_low, rows_high, strict=True):
        assert (low["smoking"], high["smoking"]) == ("never", "current")
        assert {key: value for key, value in low.items() if key != "smoking"} == {
            key: value for key, value in base.items() if key != "smoking"
        }
        assert {key for key in low if low[key] != high[key]} == {"smoking"}
    ages = matched_rows(rows, "age")
    assert {row["age"] for row in ages[0]} == {40.0} and {row["age"] for row in ages[1]} == {70.0}


# The estimator against the ground-truth renderer


def test_smoking_brightens_the_lungs_with_the_renderer_sign(smoking: EffectResult, lungs: np.ndarray) -> None:
    # Smoking adds density inside the lungs; density is white in display units and the exposure curve is increasing.
    assert np.sign(smoking.mean_shift) == np.sign(SMOKING_SHIFT) == 1
    assert 0.03 < smoking.mean_shift < 0.1
    assert smoking.interval[0] > 0
    assert smoking.effect_map[lungs].mean() == pytest.approx(smoking.mean_shift, abs=1e-12)
    assert abs(smoking.outside_shift) < 0.1 * smoking.mean_shift
    assert (smoking.n, smoking.pair_shifts.shape, smoking.effect_map.shape) == (N, (N,), (SIZE, SIZE))
    assert smoking.effect_map == pytest.approx(smoking.mean_high - smoking.mean_low)


def test_estimate_equals_direct_computation_and_ci_holds_the_population_value(
    smoking: EffectResult, lungs: np.ndarray
) -> None:
    assert smoking.pair_shifts == pytest.approx(direct_shifts(range(N), lungs), abs=1e-6)
    held_out = direct_shifts(range(N, 4 * N), lungs)  # 180 other subjects: the population value to cover
    low, high = smoking.interval
    assert low < smoking.mean_shift < high
    assert low < held_out.mean() < high


def test_effect_is_concentrated_in_the_lungs_and_zero_outside() -> None:
    # The majority atlas misses lung edges of some poses; this mask: lung in at least 10 % of subjects.
    any_lung = cohort_anatomy_mask("cxr", size=SIZE, threshold=0.1)
    result = smoking_effect(N, any_lung)
    assert result.inside_fraction > 0.95
    assert abs(result.outside_shift) < 0.002 < 0.03 < result.mean_shift
    assert np.abs(result.outside_shifts).max() < 0.01


def test_ci_narrows_as_n_grows(smoking: EffectResult, lungs: np.ndarray) -> None:
    few = smoking_effect(15, lungs)
    width = smoking.interval[1] - smoking.interval[0]
    assert width < 0.7 * (few.interval[1] - few.interval[0])  # ∝ 1/√n: halves from 15 to 60 pairs


def test_batch_size_does_not_change_the_result(smoking: EffectResult, lungs: np.ndarray) -> None:
    other = smoking_effect(N, lungs, batch_size=7)
    assert other.pair_shifts == pytest.approx(smoking.pair_shifts, abs=1e-12)
    assert other.interval == smoking.interval


def test_sample_pairs_of_the_wrong_shape_are_refused(lungs: np.ndarray) -> None:
    def wrong(indices: range) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(len(indices), 1, 32, 32), torch.zeros(len(indices), 1, 32, 32)

    with pytest.raises(ValueError, match="expected"):
        population_effect(wrong, 4, attribute="smoking", anatomy_mask=lungs, progress=False)


# Bootstrap


def test_bootstrap_is_seeded() -> None:
    values = np.random.default_rng(3).normal(0.2, 1.0, 50)
    assert bootstrap_interval(values, seed=1) == bootstrap_interval(values, seed=1)
    assert bootstrap_interval(values, seed=1) != bootstrap_interval(values, seed=2)


def test_bootstrap_tiny_known_cases() -> None:
    assert bootstrap_interval(np.full(9, 0.25)) == (0.25, 0.25)
    # Two values 0, 1: resampled means 0, ½, 1 with probability ¼, ½, ¼, so the 95 % percentile CI is (0, 1).
    assert bootstrap_interval(np.array([0.0, 1.0])) == (0.0, 1.0)
    assert bootstrap_interval(np.array([0.0, 1.0]), confidence=0.4) == (0.5, 0.5)


def test_bootstrap_coverage_and_normal_width() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(300):
        low, high = bootstrap_interval(rng.normal(0.3, 1.0, 40), n_bootstrap=500, seed=trial)
        covered += low < 0.3 < high
    assert 0.89 <= covered / 300 <= 0.99
    values = rng.normal(0.0, 1.0, 400)
    low, high = bootstrap_interval(values)
    assert (high - low) / 2 == pytest.approx(1.96 * values.std() / np.sqrt(400), rel=0.1)


# Diffusion pairs with a tiny untrained model


@pytest.fixture(scope="module")
def components() -> Components:
    return tiny_components(seed=0)


PAIR_OPTIONS = {"num_inference_steps": 3, "guidance_scale": 2.0, "seed": 5}
TEMPLATE = PromptTemplate("chest X-ray", style="simple")


def test_same_prompts_give_identical_pairs(components: Components) -> None:
    rows = cohort_rows("cxr", n=3)
    images_low, images_high = diffusion_pairs(components, TEMPLATE, rows, rows, **PAIR_OPTIONS)(range(3))
    assert images_low.shape == images_high.shape == (3, 1, 32, 32)
    assert torch.equal(images_low, images_high)
    assert images_low.min() >= -1 and images_low.max() <= 1


def test_pair_i_does_not_depend_on_the_batch(components: Components) -> None:
    rows_low, rows_high = matched_rows(cohort_rows("cxr", n=4), "smoking")
    sample_pairs = diffusion_pairs(components, TEMPLATE, rows_low, rows_high, **PAIR_OPTIONS)
    batch_low, batch_high = sample_pairs(range(4))
    alone_low, alone_high = sample_pairs(range(2, 3))
    torch.testing.assert_close(alone_low[0], batch_low[2], atol=1e-5, rtol=0)
    torch.testing.assert_close(alone_high[0], batch_high[2], atol=1e-5, rtol=0)
    assert not torch.allclose(batch_low, batch_high)  # the prompts differ in smoking
    assert not torch.allclose(batch_low[0], batch_low[1])  # each pair has its own noise


def test_generate_gets_low_then_high_prompts_with_shared_noise(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_generate(components: Components, prompts: list[str], **options: object) -> torch.Tensor:
        calls.append((prompts, options))
        return torch.zeros(len(prompts), 1, 32, 32)

    monkeypatch.setattr(effect_pairs, "generate", fake_generate)
    rows_low, rows_high = matched_rows(cohort_rows("cxr", n=2), "smoking")
    diverse = PromptTemplate("chest X-ray", style="diverse")
    diffusion_pairs(components, diverse, rows_low, rows_high, **PAIR_OPTIONS)(range(2))
    prompts, options = calls[0]
    assert prompts == [TEMPLATE.render(row) for row in (*rows_low, *rows_high)]  # diverse → its simple wording
    assert [prompt.replace("never", "current") for prompt in prompts[:2]] == prompts[2:]
    latents = options["latents"]
    assert latents.shape == (4, 4, 16, 16) and torch.equal(latents[:2], latents[2:])


def test_stochastic_scheduler_is_refused(components: Components) -> None:
    rows = cohort_rows("cxr", n=1)
    with pytest.raises(ValueError, match="ddim"):
        diffusion_pairs(components, TEMPLATE, rows, rows, scheduler="ddpm")


def test_population_effect_of_a_diffusion_sampler(components: Components) -> None:
    rows_low, rows_high = matched_rows(cohort_rows("cxr", n=4), "smoking")
    sample_pairs = diffusion_pairs(components, TEMPLATE, rows_low, rows_high, **PAIR_OPTIONS)
    mask = cohort_anatomy_mask("cxr", size=32, n=8)
    result = population_effect(sample_pairs, 4, attribute="smoking", anatomy_mask=mask, batch_size=3, progress=False)
    assert result.effect_map.shape == (32, 32) and result.n == 4
    assert result.interval[0] <= result.mean_shift <= result.interval[1]


# Files


def test_write_effect_files_match_the_result(smoking: EffectResult, lungs: np.ndarray, tmp_path: Path) -> None:
    out = write_effect(smoking, tmp_path / "effect", anatomy_mask=lungs)
    summary = json.loads((out / "effect.json").read_text())
    assert summary["mean_shift"] == pytest.approx(smoking.mean_shift)
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx(smoking.interval)
    assert (summary["n"], summary["attribute"], summary["low"], summary["high"]) == (
        N,
        "smoking",
        "smoking=never",
        "smoking=current",
    )
    assert summary["inside_fraction"] == pytest.approx(smoking.inside_fraction)
    assert np.load(out / "effect.npy") == pytest.approx(smoking.effect_map, abs=1e-6)
    with (out / "pairs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == N and float(rows[7]["shift_inside"]) == pytest.approx(smoking.pair_shifts[7], rel=1e-6)
    figure = Image.open(out / "effect_map.png")
    assert figure.width > 4 * 192 and figure.height > 192 + 40  # four tiles and the colour bar under them
    assert "smoking=current" in (out / "index.html").read_text()
    assert "CI" in (out / "report.md").read_text()
    assert not list(out.glob(".*partial"))


def test_mask_conditioned_model_gets_the_shared_mask() -> None:
    model = tiny_components(seed=0, mask_conditioning=True)
    rows = cohort_rows("cxr", n=2)
    mask = cohort_anatomy_mask("cxr", size=32, n=8)
    images_low, images_high = diffusion_pairs(model, TEMPLATE, rows, rows, mask=mask, **PAIR_OPTIONS)(range(2))
    assert images_low.shape == (2, 1, 32, 32) and torch.equal(images_low, images_high)
    with pytest.raises(ValueError, match="mask-conditioned"):
        diffusion_pairs(model, TEMPLATE, rows, rows, **PAIR_OPTIONS)(range(1))
