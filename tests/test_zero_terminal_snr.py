"""train.zero_terminal_snr (Lin et al., WACV 2024): the schedule ends in pure noise, samplers start at t = T, the saved
model says so to vanilla diffusers, and what cannot carry it is refused before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

from medcf.generate import generate
from medcf.models import load_components, save_components, tiny_components
from medcf.models.components import training_scheduler
from medcf.training import train
from medcf.training.setup import build_components, training_noise_schedule
from test_training_loop import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_schedule_ends_in_pure_noise_and_sampling_starts_there() -> None:
    plain = training_noise_schedule(training_scheduler(), "v_prediction", False)
    rescaled = training_noise_schedule(training_scheduler(), "v_prediction", True)
    assert plain.alphas_cumprod[-1].sqrt() == pytest.approx(0.068, abs=1e-3)  # SD's z_T keeps 7% of the image
    assert rescaled.alphas_cumprod[-1] < 1e-6 and rescaled.alphas_cumprod[0] == pytest.approx(plain.alphas_cumprod[0])
    timesteps = {}
    for name, schedule in (("plain", plain), ("rescaled", rescaled)):
        sampler = DDIMScheduler.from_config(schedule.config)
        sampler.set_timesteps(20)
        timesteps[name] = sampler.timesteps
    assert timesteps["plain"][0] == 951 and timesteps["rescaled"][0] == 999 and timesteps["rescaled"][-1] == 49


def test_zero_terminal_snr_needs_v_prediction() -> None:
    with pytest.raises(ValueError, match="zero_terminal_snr=true needs train.prediction_type=v_prediction"):
        build_components(tiny=True, resolution=32, prediction_type="epsilon", zero_terminal_snr=True)


def test_a_sampler_without_the_schedule_is_refused_before_training(tmp_path: Path) -> None:
    folder = save_components(tiny_components(in_channels=1), tmp_path / "model")
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, "_class_name": "PNDMScheduler"}))
    with pytest.raises(ValueError, match="PNDMScheduler has no zero-terminal-SNR schedule"):
        build_components(pretrained=str(folder), prediction_type="v_prediction", zero_terminal_snr=True)
    assert build_components(pretrained=str(folder), prediction_type="v_prediction").scheduler.config.prediction_type


def test_a_zero_terminal_snr_model_samples_from_pure_noise_in_vanilla_diffusers(
    tmp_path: Path, cxr_synth_root: Path
) -> None:
    options = ("train.max_steps=2", "train.prediction_type=v_prediction", "train.zero_terminal_snr=true")
    model = train(tiny_config(cxr_synth_root, *options), tmp_path / "run", progress=False)
    saved = json.loads((model / "scheduler" / "scheduler_config.json").read_text())
    assert saved["rescale_betas_zero_snr"] is True and saved["timestep_spacing"] == "trailing"
    components = load_components(model)
    assert components.scheduler.alphas_cumprod[-1] < 1e-6  # medcf reads the schedule back
    images = generate(components, ["chest X-ray"], num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(images).all()
    pipeline = StableDiffusionPipeline.from_pretrained(
        model, safety_checker=None, requires_safety_checker=False, local_files_only=True
    )
    assert pipeline.scheduler.alphas_cumprod[-1] < 1e-6
    pipeline.scheduler.set_timesteps(3)
    assert pipeline.scheduler.timesteps[0] == 999
