"""The suites' runs are valid `medcf train` configs, distinct, and cover the papers' experiments."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from medcf.config import config_dict, load_config, save_config
from medcf.data.synthetic import synthesize
from medcf.evaluation.benchmark_merge import earlier_results, merged_results, selected_runs
from medcf.evaluation.brain_edits import EDIT_SIZES, instruct_overrides
from medcf.evaluation.stages import cached_stage, synthesized, trained, trained_vae, training_seconds
from medcf.evaluation.suite import SUITES, base_overrides, common_overrides, slug, suite_runs
from medcf.training.data import HOLDOUT, TRAIN, load_cohorts

CXR, BRAIN = SUITES["cxr-synth"], SUITES["brain-synth"]


@pytest.mark.parametrize("size", CXR.sizes)
def test_every_run_is_a_valid_training_config(size: str) -> None:
    chosen = CXR.sizes[size]
    base = load_config(None, base_overrides(CXR, chosen, "data", "vae", 0))
    assert base.data.filter == "no_finding == 1" and base.data.prompt_style == "simple"
    assert base.model.tiny == chosen.tiny and base.data.patient_info is False
    configs = {}
    for run in suite_runs(CXR, chosen):
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
    names = [run.name for run in suite_runs(CXR, CXR.sizes["full"])]
    assert slug("LoRA, δ=0.1") == "lora-d0.1"
    assert len({slug(name) for name in names}) == len(names)


def test_textual_inversion_and_dreambooth_are_prompted_with_their_identifier() -> None:
    runs = {run.name: run for run in suite_runs(CXR, CXR.sizes["quick"])}
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


def test_a_finished_run_is_reused_for_its_recipe_only(tmp_path) -> None:
    recipe = ("model.tiny=true", "data.root=/data", "train.max_steps=4", "sample.num_images=4")
    save_config(load_config(None, recipe), tmp_path / "config.yaml")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text("{}")  # finished: trained() must not train again
    previews = ("model.tiny=true", "data.root=/data", "train.max_steps=4", "sample.num_images=2")
    assert trained(previews, tmp_path) == tmp_path / "model"  # sample settings never touch the weights
    with pytest.raises(ValueError, match="holds a run with another config"):
        trained((*recipe, "train.prediction_type=v_prediction"), tmp_path)


def test_a_finished_vae_is_reused_for_its_recipe_only(tmp_path) -> None:
    recipe = ("data.root=/data", "data.resolution=64", "vae.max_steps=1500")
    save_config(load_config(None, recipe), tmp_path / "config.yaml")  # what train_autoencoder writes beside it
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text("{}")  # finished: trained_vae() must not train again
    assert trained_vae(recipe, tmp_path) == tmp_path / "vae"
    with pytest.raises(ValueError, match="holds a run with another config"):  # e.g. another cohort's VAE
        trained_vae(("data.root=/other", *recipe[1:]), tmp_path)


def test_a_quick_runs_cohort_is_refused_by_a_full_run_of_any_suite(tmp_path) -> None:
    rows = "".join(f"cxr{i:05d},images/cxr{i:05d}.png\n" for i in range(3))  # a quick run's cohort, cut short
    (tmp_path / "metadata.csv").write_text("id,path\n" + rows)
    with pytest.raises(ValueError, match="metadata.csv: 3 subjects where this size of cxr-synth needs 2000"):
        synthesized("cxr-synth", "cxr", tmp_path, n=2000, size=64, seed=0, counterfactuals=False)
    assert synthesized("cxr-synth", "cxr", tmp_path, n=3, size=64, seed=0, counterfactuals=False) == tmp_path


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


def test_brain_suite_fine_tunes_a_normal_only_base_with_latent_driftings_four_methods() -> None:
    full = BRAIN.sizes["full"]
    base = load_config(None, base_overrides(BRAIN, full, "data", "brain64/vae", 0))
    assert base.data.filter == "lesion == 0 and alzheimers_disease == 0" and base.model.vae == "brain64/vae"
    runs = {run.name: run for run in suite_runs(BRAIN, full)}
    methods = {name.split(", δ=")[0] for name, run in runs.items() if run.group == "methods"}
    assert methods == {"basic fine-tune", "textual inversion", "DreamBooth", "Custom Diffusion"} and len(runs) == 16
    dreambooth = load_config(None, (*common_overrides(full, "data", 0), *runs["DreamBooth, δ=0.1"].overrides))
    assert dreambooth.train.class_prompt == "A brain MRI." and dreambooth.train.latent_drift == 0.1
    assert BRAIN.data_seed != 0  # brain64, whose VAE the full size reuses, was trained on the seed-0 cohort


def test_instruct_pix2pix_trains_on_the_true_age_pairs_of_training_patients_only(tmp_path) -> None:
    synthesize("brain", tmp_path / "brain", n=12, size=32, seed=1)
    overrides = instruct_overrides(BRAIN.sizes["quick"], EDIT_SIZES["quick"], str(tmp_path / "brain"), "base", 0.1)
    config = load_config(None, overrides)
    assert config.train.method == "instruct-pix2pix" and config.train.latent_drift == 0.1
    cohorts = load_cohorts(tmp_path / "brain", modality="brain MRI", row_filter=config.data.filter,
                           holdout_fraction=0.25, seed=0, pairs=config.data.pairs)  # fmt: skip
    train, held_out = cohorts[TRAIN].records, cohorts[HOLDOUT].records
    every = load_cohorts(tmp_path / "brain", modality="brain MRI", holdout_fraction=0, seed=0, pairs="counterfactuals")
    ages = every[TRAIN].records["instruction"].str.fullmatch(r"make the patient 20 years (older|younger)")
    assert 0 < ages.sum() < len(ages)  # the cohort's pairs also change sex, lesion and AD: those are left out
    assert len(train) + len(held_out) == ages.sum()
    assert set(train["instruction"]) == {"make the patient 20 years older", "make the patient 20 years younger"}
    assert not set(train["patient_id"]) & set(held_out["patient_id"])


def _published(runs, *, skip: str = "") -> dict:
    """A results file as run_benchmark writes it, with a row for every run but those named `skip`."""
    size = CXR.sizes["quick"]
    rows = [{"run": run.name, "fid_effnet": float(index)} for index, run in enumerate(runs) if skip not in run.name]
    header = {"suite": "cxr-synth", "size": "quick", "settings": asdict(size), "seed": 0}
    return {**header, "runs": rows, "attribution": [{"finding": "nodule"}], "smoking_effect": {"n": 8}}


def test_only_picks_a_methods_three_rows_or_one_named_row() -> None:
    runs = suite_runs(CXR, CXR.sizes["quick"])
    picked = selected_runs(runs, ("Custom Diffusion",), "cxr-synth")
    assert [run.name for run in picked] == [
        "Custom Diffusion, δ=0", "Custom Diffusion, δ=0.1", "Custom Diffusion, δ=0.1 in training only"
    ]  # fmt: skip
    assert [run.name for run in selected_runs(runs, ("LoRA, δ=0",), "cxr-synth")] == ["LoRA, δ=0"]
    message = "--only 'Custom' names no run of cxr-synth; name a method or a row: 'basic fine-tune', 'LoRA', "
    with pytest.raises(ValueError, match=message):
        selected_runs(runs, ("Custom",), "cxr-synth")


def test_only_adds_rows_to_the_published_results_in_the_suites_order(tmp_path) -> None:
    runs = suite_runs(CXR, CXR.sizes["quick"])
    earlier = _published(runs, skip="Custom Diffusion")
    path = tmp_path / "cxr-synth-quick.json"
    path.write_text(json.dumps(earlier))
    chosen = selected_runs(runs, ("Custom Diffusion",), "cxr-synth")
    header = {key: earlier[key] for key in ("suite", "size", "settings", "seed")}
    assert earlier_results(path, header, runs, chosen) == earlier
    fresh = [{"run": run.name, "fid_effnet": -1.0} for run in chosen]
    merged = merged_results({**header, "runs": fresh, "seconds": 5.0}, earlier, runs)
    assert [row["run"] for row in merged["runs"]] == [run.name for run in runs]
    scores = {row["run"]: row["fid_effnet"] for row in merged["runs"]}
    assert scores["Custom Diffusion, δ=0"] == -1.0 and scores["LoRA, δ=0"] == 3.0  # new rows, and the kept ones
    assert merged["attribution"] == earlier["attribution"] and merged["smoking_effect"] == {"n": 8}
    assert merged["rerun"] == [run.name for run in chosen] and merged["seconds"] == 5.0


def test_only_refuses_results_it_cannot_add_to_before_any_work(tmp_path) -> None:
    runs = suite_runs(CXR, CXR.sizes["quick"])
    chosen = selected_runs(runs, ("Custom Diffusion",), "cxr-synth")
    path = tmp_path / "cxr-synth-quick.json"
    header = {key: value for key, value in _published(runs).items() if key != "runs"}
    with pytest.raises(ValueError, match="no earlier results to add rows to; run the whole suite first"):
        earlier_results(path, header, runs, chosen)
    path.write_text(json.dumps(_published(runs) | {"seed": 1}))
    with pytest.raises(ValueError, match="its seed is 1, this run's 0"):
        earlier_results(path, header, runs, chosen)
    path.write_text(json.dumps(_published(runs, skip="LoRA")))
    with pytest.raises(ValueError, match="lacks the row 'LoRA, δ=0'; add it too: --only 'LoRA'"):
        earlier_results(path, header, runs, chosen)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a benchmark results file"):
        earlier_results(path, header, runs, chosen)
