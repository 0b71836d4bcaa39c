"""Fine-tuning a user's Stable Diffusion folder keeps what was not trained: its sampler class and settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from diffusers import DDIMScheduler, StableDiffusionPipeline

from medcf.models import load_components, save_components, tiny_components
from medcf.training import train
from test_training_loop import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# What SD v1.5's scheduler/scheduler_config.json holds (a PNDM there; DDIM in many fine-tunes), here as DDIM.
USER_SCHEDULER = {
    "_class_name": "DDIMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "clip_sample": False, "num_train_timesteps": 1000, "set_alpha_to_one": False, "steps_offset": 1,
}  # fmt: skip


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    folder = save_components(tiny_components(sample_size=16), tmp_path / "user-sd")
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(USER_SCHEDULER))
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "scheduler": ["diffusers", "DDIMScheduler"]}))
    return folder


def _sampler(folder: Path) -> DDIMScheduler:
    return StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, local_files_only=True).scheduler


def test_a_loaded_folder_saves_back_its_own_scheduler(user_folder: Path, tmp_path: Path) -> None:
    saved = save_components(load_components(user_folder), tmp_path / "saved")
    assert json.loads((saved / "model_index.json").read_text())["scheduler"] == ["diffusers", "DDIMScheduler"]
    sampler = _sampler(saved)
    assert isinstance(sampler, DDIMScheduler) and sampler.config.set_alpha_to_one is False
    assert {key: sampler.config[key] for key in USER_SCHEDULER if key != "_class_name"} == {
        key: value for key, value in USER_SCHEDULER.items() if key != "_class_name"
    }


def test_a_fine_tune_keeps_the_users_sampler_with_its_new_prediction_type(
    user_folder: Path, tmp_path: Path, cxr_synth_root: Path
) -> None:
    options = (f"model.pretrained={user_folder}", "train.max_steps=1", "train.prediction_type=v_prediction")
    model = train(tiny_config(cxr_synth_root, *options), tmp_path / "run", progress=False)
    sampler = _sampler(model)
    assert isinstance(sampler, DDIMScheduler) and sampler.config.set_alpha_to_one is False
    assert sampler.config.prediction_type == "v_prediction"  # what the fine-tuned U-Net now predicts


def test_a_scheduler_medcf_cannot_save_back_is_refused_when_loaded(user_folder: Path) -> None:
    config = {**USER_SCHEDULER, "_class_name": "FlowMatchEulerDiscreteScheduler"}
    (user_folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="names 'FlowMatchEulerDiscreteScheduler', not one of diffusers' DDPM-comp"):
        load_components(user_folder)
