"""The cxr-synth suite's runs are valid `medcf train` configs, distinct, and cover the papers' experiments."""

from __future__ import annotations

import json

import pytest

from medcf.config import config_dict, load_config
from medcf.evaluation.benchmark import cached_stage, training_seconds
from medcf.evaluation.suite import SIZES, base_overrides, common_overrides, slug, suite_runs


@pytest.mark.parametrize("size", SIZES)
def test_every_run_is_a_valid_training_config(size: str) -> None:
    chosen = SIZES[size]
    base = load_config(None, base_overrides(chosen, "data", "vae", 0))
    assert base.data.filter == "no_finding == 1" and base.data.prompt_style == "simple"
    assert base.model.tiny == chosen.tiny and base.data.patient_info is False
    configs = {}
    for run in suite_runs(chosen):
        config = load_config(None, (*common_overrides(chosen, "data", 0), "model.pretrained=base", *run.overrides))
        assert config.train.max_steps == chosen.finetune_steps and config.model.pretrained == "base"
        assert config.train.latent_drift == run.latent_drift
        assert run.sampling_drift == (run.latent_drift if "training only" not in run.name else 0.0)
        configs[run.name] = json.dumps(config_dict(config), sort_keys=True)
    methods = [name for name in configs if "δ=" in name]
    assert len(methods) == 15 and len(set(configs[name] for name in methods)) == 10
    # sampling a drifted model plainly reuses that model: only the sampling differs
    assert configs["LoRA, δ=0.1 in training only"] == configs["LoRA, δ=0.1"]
    # the diverse-with-patient-info prompt run is the basic fine-tune itself: the benchmark trains it once
    assert configs["diverse prompts, with patient info"] == configs["basic fine-tune, δ=0"]
    assert len(set(configs.values())) == len(configs) - 6


def test_run_names_make_distinct_folder_names() -> None:
    names = [run.name for run in suite_runs(SIZES["full"])]
    assert slug("LoRA, δ=0.1") == "lora-d0.1"
    assert len({slug(name) for name in names}) == len(names)


def test_textual_inversion_and_dreambooth_are_prompted_with_their_identifier() -> None:
    runs = {run.name: run for run in suite_runs(SIZES["quick"])}
    for name in ("textual inversion, δ=0", "DreamBooth, δ=0.1", "Custom Diffusion, δ=0"):
        assert runs[name].instance_prompt == "<medcf> {prompt}"
    assert runs["LoRA, δ=0"].instance_prompt == ""


def test_training_seconds_counts_a_killed_sessions_kept_steps(tmp_path) -> None:
    sessions = [
        {"start_step": 0, "resumed_from": None},  # killed after its step-300 checkpoint: no seconds recorded
        {"start_step": 300, "resumed_from": "step-0000300", "end_step": 500, "seconds": 400.0},
    ]
    (tmp_path / "manifest.json").write_text(json.dumps({"sessions": sessions}))
    assert training_seconds(tmp_path) == pytest.approx(400.0 + 300 * 2.0)  # 2 s per step in the finished session


def test_scores_are_cached_per_key_and_survive_a_restart(tmp_path) -> None:
    calls = []

    def score(value: float) -> dict:
        calls.append(value)
        return {"fid": value}

    path = tmp_path / "scores.json"
    assert cached_stage(path, {"drift": 0}, lambda: score(1.5)) == {"fid": 1.5}
    assert cached_stage(path, {"drift": 0}, lambda: score(9.0)) == {"fid": 1.5}  # stored, not computed again
    assert cached_stage(path, {"drift": 0.1}, lambda: score(2.5)) == {"fid": 2.5}
    assert calls == [1.5, 2.5] and len(json.loads(path.read_text())) == 2
