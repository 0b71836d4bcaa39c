"""Population effects of volume models and GANs (DGM-VLC's smoking finding in 3-D): HU units, the CT renderer's
truth, matched pairs of 3-D diffusion models and GANs, and `medcf effect` on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medcf.attribution.effect import EffectResult, matched_rows, population_effect
from medcf.attribution.effect_folder import effect_to_folder
from medcf.attribution.effect_pairs import cohort_anatomy_mask, cohort_pairs, cohort_rows, diffusion_pairs, gan_pairs
from medcf.attribution.effect_report import map_agreement, write_effect
from medcf.data.synthetic.kinds import get_kind
from medcf.models import save_components, save_gan, tiny_gan, tiny_volume_components
from medcf.prompts import PromptTemplate
from test_cli import medcf

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32  # the CT cohort at 32: volumes of 32 × 32 × 16 voxels
SHAPE = (32, 32, 16)
HU = (-1024.0, 1024.0)
CT = get_kind("ct")
N = 8


@pytest.fixture(scope="module")
def lungs() -> np.ndarray:
    return cohort_anatomy_mask("ct", size=SIZE, n=16)


@pytest.fixture(scope="module")
def true_smoking(lungs: np.ndarray) -> EffectResult:
    pairs = cohort_pairs("ct", attribute="smoking", size=SIZE, value_range=HU)
    return population_effect(pairs, N, attribute="smoking", anatomy_mask=lungs, value_range=HU, units="HU",
                             batch_size=3, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def volume_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    components = tiny_volume_components(sample_size=SHAPE)
    components.vae.register_to_config(value_range=list(HU), spacing_mm=[10.0, 7.5, 15.0])  # as training records
    return save_components(components, tmp_path_factory.mktemp("volume") / "model")


def test_ct_truth_is_the_renderers_hu_shift(true_smoking: EffectResult, lungs: np.ndarray) -> None:
    assert lungs.shape == SHAPE and 0.02 < lungs.mean() < 0.6
    direct = []
    for index in range(N):  # the same subjects rendered never vs current, straight from the renderer, in HU
        subject = CT.sample(0, index)
        never, current = (np.clip(CT.render(subject, SIZE, smoking=s).image, *HU) for s in ("never", "current"))
        direct.append((current.astype(np.float64) - never)[lungs].mean())
    assert true_smoking.pair_shifts == pytest.approx(direct, abs=1e-3)  # float32 round trip through [-1, 1]
    # −24 HU of air trapping plus emphysema clusters at −985 HU: the lungs darken by more than the diffuse shift
    assert -80 < true_smoking.mean_shift < -24 and true_smoking.interval[1] < 0
    assert abs(true_smoking.outside_shift) < 0.1 * abs(true_smoking.mean_shift)
    assert true_smoking.effect_map.shape == SHAPE and true_smoking.units == "HU"
    assert true_smoking.summary()["units"] == "HU: the model range [-1, 1] is [-1024, 1024] HU"


def test_volume_pairs_share_their_noise_whatever_the_batch(volume_model: Path) -> None:
    from medcf.models import load_components

    components = load_components(volume_model)
    rows = matched_rows(cohort_rows("ct", n=2), "smoking")
    template = PromptTemplate.from_pretrained(volume_model)
    pairs = diffusion_pairs(components, template, *rows, num_inference_steps=1, size=SHAPE)
    low, high = pairs(range(0, 2))
    assert low.shape == high.shape == (2, 1, *SHAPE)
    assert not torch.equal(low, high)  # the prompts differ in smoking
    assert torch.allclose(pairs(range(1, 2))[0], low[1:2], atol=1e-5)  # pair 1 alone = pair 1 in a batch
    same = diffusion_pairs(components, template, rows[0], rows[0], num_inference_steps=1, size=SHAPE)
    assert torch.equal(*same(range(0, 1)))  # one row twice, one noise: no difference at all


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gan_pairs_share_z_and_differ_by_the_prompt(spatial_dims: int) -> None:
    gan = tiny_gan(spatial_dims=spatial_dims, sample_size=8)
    rows = matched_rows(cohort_rows("cxr", n=4), "smoking")
    pairs = gan_pairs(gan, PromptTemplate("chest X-ray"), *rows, seed=3)
    low, high = pairs(range(0, 4))
    assert low.shape == (4, 1, *(8,) * spatial_dims) and not torch.equal(low, high)
    assert torch.allclose(pairs(range(2, 3))[1], high[2:3], atol=1e-5)  # batch-size independent
    assert torch.equal(*gan_pairs(gan, PromptTemplate("chest X-ray"), rows[1], rows[1], seed=3)(range(0, 4)))


def test_map_agreement_is_one_for_the_truth_itself(true_smoking: EffectResult, lungs: np.ndarray) -> None:
    agreement = map_agreement(true_smoking, true_smoking, lungs)
    assert agreement == pytest.approx({"map_correlation": 1.0, "map_correlation_inside": 1.0, "shift_ratio": 1.0})


def test_write_effect_of_a_volume_with_its_truth(
    true_smoking: EffectResult, lungs: np.ndarray, tmp_path: Path
) -> None:
    out = write_effect(true_smoking, tmp_path / "effect", anatomy_mask=lungs, truth=true_smoking)
    summary = json.loads((out / "effect.json").read_text())
    assert summary["units"].startswith("HU") and summary["truth"]["mean_shift"] == pytest.approx(summary["mean_shift"])
    assert np.load(out / "true_effect.npy").shape == SHAPE
    assert "true effect on the same subjects" in (out / "report.md").read_text()
    assert (out / "effect_map.png").is_file() and (out / "convergence.png").is_file()


def test_effect_to_folder_on_a_volume_model_reports_hu_beside_the_truth(volume_model: Path, tmp_path: Path) -> None:
    out = effect_to_folder(volume_model, "smoking", tmp_path / "effect", cohort="ct", n=3, batch_size=2,
                           num_inference_steps=2)  # fmt: skip
    summary = json.loads((out / "effect.json").read_text())
    assert summary["units"].startswith("HU") and summary["size"] == SIZE and summary["n"] == 3
    assert summary["truth"]["mean_shift"] < -15  # the renderer's answer for these three subjects
    assert set(summary) >= {"map_correlation", "map_correlation_inside", "shift_ratio"}
    effect = np.load(out / "effect.npy")
    assert effect.shape == SHAPE and np.abs(effect).max() > 0  # an untrained model: some change, in HU
    assert np.abs(effect).max() <= 2048


def test_effect_to_folder_on_a_gan_without_the_truth(tmp_path: Path) -> None:
    model = save_gan(tiny_gan(sample_size=64), tmp_path / "gan")
    out = effect_to_folder(model, "smoking", tmp_path / "effect", n=3, truth=False)
    summary = json.loads((out / "effect.json").read_text())
    assert summary["units"].startswith("display units") and "truth" not in summary
    assert np.load(out / "effect.npy").shape == (64, 64) and not (out / "true_effect.npy").exists()


def test_effect_refuses_a_cohort_of_other_dimensions(volume_model: Path, tmp_path: Path) -> None:
    result = medcf("effect", "--model", volume_model, "--attribute", "smoking", "--n", 2, "--out", tmp_path / "e")
    assert result.returncode == 1
    assert "a 3-D model cannot be measured on the 2-D cxr cohort; use --cohort" in result.stderr
    assert not (tmp_path / "e").exists()
