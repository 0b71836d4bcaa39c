"""ct-synth: its training overrides are valid configs, its edit cases carry the renderer's truth, the edit scores
read the truth as perfect and half the truth as half, and both backends edit volumes through the suite's code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medcf.config import load_config
from medcf.data.synthetic.ct import CT_EFFECT_THRESHOLD_HU
from medcf.editing.gan_counterfactual import gan_counterfactual
from medcf.evaluation.ct_benchmark import stage_data
from medcf.evaluation.ct_edits import CT_EDITS, ct_cases, ct_edit_scores, edit_ct_cases
from medcf.evaluation.ct_report import write_ct_benchmark
from medcf.evaluation.ct_suite import BACKENDS, CT_SIZES, model_overrides, vae_overrides
from medcf.models.gan_components import tiny_gan
from medcf.models.volume_components import tiny_volume_components
from medcf.prompts import PromptTemplate
from medcf.training.gan_run import build_gan_components

SMOKING, NODULE = CT_EDITS
HU = (-1024.0, 1024.0)


@pytest.mark.parametrize("size", CT_SIZES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_overrides_load_as_3d_configs(size: str, backend: str) -> None:
    config = load_config(None, model_overrides(CT_SIZES[size], backend, "/data", "/vae", 0))
    assert config.model.spatial_dims == 3 and config.data.prompt_style == "table"  # DGM-VLC's table-to-text
    assert config.model.backend == ("gan" if backend == "GAN" else "diffusion")
    assert config.model.vae == ("/vae" if backend == "diffusion" and size == "full" else "")
    assert load_config(None, vae_overrides(CT_SIZES["full"], "/data", 0)).vae.block_out_channels == [16, 32]


def test_the_suites_gan_widths_reach_the_generator_and_are_checked_against_the_volume() -> None:
    class Volumes:  # the one property build_gan_components reads besides the units
        item_shape, value_range, spacing_mm = (32, 32, 16), HU, (11.25, 11.25, 18.75)

    config = load_config(None, model_overrides(CT_SIZES["full"], "GAN", "/data", "", 0))
    gan = build_gan_components(config, Volumes())
    assert list(gan.generator.config.block_out_channels) == [128, 64, 32, 16]
    Volumes.item_shape = (32, 32, 12)  # 12 is no multiple of the generator's ×8 upsampling
    with pytest.raises(ValueError, match=r"multiple of 8 \(the GAN generator's upsampling\)"):
        build_gan_components(config, Volumes())


def test_cases_are_unseen_patients_the_edit_applies_to_with_their_true_volumes() -> None:
    smokers, nodules = ct_cases(SMOKING, 2, size=32), ct_cases(NODULE, 2, size=32)
    assert [row["smoking"] for row in smokers.rows] == ["current", "current"]
    assert [row["nodule"] for row in nodules.rows] == [1, 1]
    assert smokers.volumes.shape == smokers.truths.shape == smokers.lungs.shape == (2, 32, 32, 16)
    change = smokers.truths - smokers.volumes
    lung_change = [values[lung].mean() for values, lung in zip(change, smokers.lungs, strict=True)]
    assert min(lung_change) > CT_EFFECT_THRESHOLD_HU  # never smokers' lungs are denser (ct.py: +24 HU and no LAA)


def test_scores_read_the_truth_as_perfect_half_of_it_as_half_and_no_edit_as_none() -> None:
    cases = ct_cases(NODULE, 3, size=32)
    truth, true_change = ct_edit_scores(cases, cases.truths), cases.truths - cases.volumes
    assert truth["correlation with true change"] == pytest.approx(1.0)
    assert truth["AUROC of |change|"] > 0.99 and truth["effectiveness"] == 1.0
    assert truth["lung change (HU)"] == pytest.approx(truth["true lung change (HU)"])
    assert truth["error"] == 0.0
    half = ct_edit_scores(cases, cases.volumes + true_change / 2)
    assert half["effectiveness"] == 1.0  # exactly half the true size still counts
    assert half["lung change (HU)"] == pytest.approx(truth["true lung change (HU)"] / 2)
    assert half["error"] == pytest.approx(truth["error of the unedited image"] / 2)
    none = ct_edit_scores(cases, cases.volumes.copy())
    assert none["effectiveness"] == 0.0 and none["AUROC of |change|"] == pytest.approx(0.5)
    assert none["lung change (HU)"] == 0.0


def test_a_gan_residual_edit_with_the_source_prompt_returns_the_volume() -> None:
    gan = tiny_gan(spatial_dims=3, sample_size=(16, 16, 8))
    volumes = torch.rand(2, 1, 16, 16, 8) * 2 - 1
    prompts = ["Chest CT: current smoker.", "Chest CT: never smoker."]
    same = gan_counterfactual(gan, volumes, prompts, prompts, steps=2, residual=True)
    assert torch.allclose(same, volumes, atol=1e-6)
    edited = gan_counterfactual(gan, volumes, prompts, prompts[::-1], steps=2, residual=True)
    assert not torch.allclose(edited, volumes, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_edit_the_cases_in_hu(backend: str) -> None:
    cases = ct_cases(SMOKING, 2, size=16)  # 16 × 16 × 8: the tiny models' volumes
    template = PromptTemplate(style="table", modality="chest CT")
    if backend == "GAN":
        model, engine = tiny_gan(spatial_dims=3, sample_size=(16, 16, 8)), {"steps": 2}
    else:
        model, engine = tiny_volume_components(), {"num_inference_steps": 2, "strength": 0.5}
    edited = edit_ct_cases(model, template, cases, SMOKING, value_range=HU, batch_size=1, **engine)
    assert edited.shape == cases.volumes.shape and np.isfinite(edited).all()
    change = np.abs(edited - np.clip(cases.volumes, *HU))
    assert 0 < change.mean() < 300  # an edit in HU, not the whole volume replaced


def test_the_report_marks_the_smoking_direction_and_draws_one_montage_row_per_model(tmp_path: Path) -> None:
    figures, shape = tmp_path / "figures", (32, 32, 16)
    figures.mkdir()
    rows = [{"model": "real training volumes", "volume FID (CT features)": 0.1}]
    for model, shift in (("diffusion", -20.0), ("GAN", 5.0)):
        slug = model.lower()
        np.save(figures / f"samples-{slug}.npy", np.full((2, *shape), -800.0))
        np.savez_compressed(figures / f"edit-{slug}-smoking=never.npz", source=np.zeros(shape), edited=np.ones(shape),
                            truth=np.ones(shape))  # fmt: skip
        (figures / f"effect-{slug}").mkdir()
        for name in ("effect.npy", "true_effect.npy"):
            np.save(figures / f"effect-{slug}" / name, np.zeros(shape, np.float32))
        truth = {"mean_shift": -26.0, "ci_low": -27.0, "ci_high": -25.0}
        effect = {"n": 8, "mean_shift": shift, "ci_low": shift - 1, "ci_high": shift + 1, "truth": truth,
                  "shift_ratio": shift / -26.0, "inside_fraction": 0.5, "map_correlation": 0.1,
                  "map_correlation_inside": 0.2}  # fmt: skip
        rows.append({"model": model, "smoking effect": effect, "edits": [{"edit": SMOKING, "effectiveness": 0.5}]})
    results = {"suite": "ct-synth", "size": "full", "settings": {}, "seed": 0, "runs": rows, "seconds": 60.0,
               "overrides": {"diffusion": ["model.spatial_dims=3"]},
               "environment": {"platform": "p", "cpu_count": 2, "cuda": None, "versions": {}}}  # fmt: skip
    markdown = write_ct_benchmark(results, tmp_path / "out", "ct-synth", figures).read_text()
    assert "| diffusion | 8 | -20 | -21 to -19 | -26 | -27 to -25 | True |" in markdown
    assert "| GAN | 8 | 5 | 4 to 6 | -26 | -27 to -25 | False |" in markdown
    assert f"| diffusion | {SMOKING} |" in markdown and "ct-synth_montage.png" in markdown
    with Image.open(tmp_path / "out" / "ct-synth_montage.png") as montage:
        assert montage.height > 2 * 120 > montage.height / 2  # two model rows of 120 px tiles


def test_a_cohort_of_another_size_is_refused_not_reused(tmp_path: Path) -> None:
    rows = "".join(f"ct{i:05d},volumes/ct{i:05d}.nii.gz\n" for i in range(24))  # a quick run's cohort
    (tmp_path / "metadata.csv").write_text("id,path\n" + rows)
    with pytest.raises(ValueError, match="metadata.csv: 24 subjects where this size of ct-synth needs 800"):
        stage_data(CT_SIZES["full"], tmp_path)
    assert stage_data(CT_SIZES["quick"], tmp_path) == tmp_path  # the quick size's own cohort is reused
