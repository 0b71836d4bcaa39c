"""The `benchmarks/` performance scripts in their --quick mode (CI smoke tests, slow: subprocesses; no speed
thresholds here, as timings on shared machines are noise; the images medcf and diffusers make must agree)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def run_quick(script: str, out: Path, *options: str, record: str = "") -> dict:
    """Run `benchmarks/<script>.py --quick`, check it succeeded, return its JSON record (<record or script>-quick)."""
    command = [sys.executable, BENCHMARKS / f"{script}.py", "--quick", "--out", out, *options]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads((out / f"{record or script}-quick.json").read_text())


@pytest.mark.slow
def test_sampling_overhead_quick_writes_its_table_and_the_images_agree(tmp_path: Path) -> None:
    record = run_quick("sampling_overhead", tmp_path)
    assert record["max abs image difference"] < 1e-4  # the same images: only the loop differs
    assert record["seconds medcf"] > 0 and record["seconds diffusers"] > 0
    assert record["environment"]["versions"]["diffusers"]
    assert "| ratio medcf / diffusers |" in (tmp_path / "sampling_overhead-quick.md").read_text()


@pytest.mark.slow
def test_training_throughput_quick_measures_every_loop(tmp_path: Path) -> None:
    record = run_quick("training_throughput", tmp_path)
    rates = [record[f"samples/s {name}"] for name in ("medcf", "medcf without cache", "reference", "loader alone")]
    assert all(rate > 0 for rate in rates)
    assert record["ratio medcf / reference"] == rates[0] / rates[2]
    assert record["cache note"].startswith("encoding cache: posteriors (") and record["seconds to build the cache"] > 0


@pytest.mark.slow
def test_scaling_quick_counts_flops_that_grow_with_size_and_batch(tmp_path: Path) -> None:
    record = run_quick("scaling", tmp_path)
    flops = {(row["size"], row["batch"]): row["GFLOP / forward"] for row in record["rows"]}
    assert flops[(32, 2)] == 2 * flops[(32, 1)]  # FLOP are linear in the batch
    assert flops[(64, 1)] > 3 * flops[(32, 1)]  # and grow at least with the latent area (4×, less fixed costs)
    assert record["fp32 matmul GFLOP/s (2048², this run)"] > 0


def test_two_pass_guidance_gives_the_same_maps() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    from attribution_fast_path import TwoPassUNet, attribute

    from medcf.attribution.scoring import finding_cases
    from medcf.models import tiny_components
    from medcf.prompts import PromptTemplate

    components, template = tiny_components(sample_size=16), PromptTemplate("chest X-ray")
    cases = finding_cases("consolidation", n=2, size=32, seed=0)
    two_pass = dataclasses.replace(components, unet=TwoPassUNet(components.unet))
    together, apart = (attribute(c, template, cases.images, cases.rows, 3) for c in (components, two_pass))
    torch.testing.assert_close(apart, together, rtol=0, atol=1e-5)  # only the batching differs


def test_engine_inputs_per_finding_remove_the_scored_finding_only() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    from counterfactual_engines import engine_inputs

    from medcf.prompts import PromptTemplate
    from medcf.prompts.instructions import NO_CHANGE

    row = {"age": 60, "sex": "F", "smoking": "never", "view": "PA", "nodule": 1, "pleural_effusion": 1}
    template = PromptTemplate("chest X-ray")
    every = engine_inputs("instruct", template, [row], null=False)["healthy_prompts"][0]
    assert "remove the nodule" in every and "effusion" in every  # the healthy counterpart: both removed
    only = engine_inputs("instruct", template, [row], null=False, finding="pleural_effusion")["healthy_prompts"]
    assert only == ["remove the pleural effusion"]  # one change, as the model was trained on single-factor pairs
    assert engine_inputs("instruct", template, [row], null=True)["healthy_prompts"] == [NO_CHANGE]
    source, target = engine_inputs("inversion", template, [row], null=False, finding="nodule").values()
    assert source[0].endswith("Pleural effusion. Nodule.") and target[0].endswith("Pleural effusion. No nodule.")
    sets = engine_inputs("pix2pix-zero", template, [row], null=True, finding="nodule")["direction_prompts"]
    assert sets[0] == sets[1] and len(sets[0][0]) > 1  # the null edit: Δc = 0 over the paraphrase set


@pytest.mark.slow
def test_attribution_fast_path_quick_scores_every_way(tmp_path: Path) -> None:
    record = run_quick("attribution_fast_path", tmp_path)
    assert record["speed-up fast path"] > 0 and record["speed-up fast path, bf16 autocast"] > 0
    assert len(record["rows"]) == 12  # 4 findings × 3 methods


@pytest.mark.slow
def test_gpu_quick_measures_every_row_on_the_cpu(tmp_path: Path) -> None:
    record = run_quick("gpu", tmp_path)
    rows = {(row["measure"], row["batch"]): row for row in record["rows"]}
    training = [row for (measure, _), row in rows.items() if measure.startswith("training step")]
    sampling = [row for (measure, _), row in rows.items() if measure.startswith("sampling ") and "+" not in measure]
    assert len(training) == 4 and len(sampling) == 2  # (checkpointing off, on) × batch 1, 2; fp32 × batch 1, 2
    flops = {row["batch"]: row["GFLOP / image"] for row in training}
    assert flops[1] > 0 and flops[2] == flops[1]  # FLOP per image: the U-Net's work is linear in the batch
    assert all(row["max abs image difference"] < 1e-4 for row in sampling)  # the same images: only the loop differs
    timed = [row for row in record["rows"] if isinstance(row["time ratio medcf / reference"], float)]
    assert len(timed) == 7  # 2 sampling, 1 channels-last (the largest batch), 4 training; not the attribution
    assert all(math.isfinite(row["time ratio medcf / reference"]) for row in timed)
    assert all(row["time ratio medcf / reference"] > 0 and row["medcf of peak"] > 0 for row in timed)
    assert all(row["medcf peak GiB"] == "n/a on CPU" for row in training)
    assert record["fp32 matmul TFLOP/s (measured, 512³)"] > 0 and record["U-Net parameters (M)"] > 0


@pytest.mark.slow
def test_counterfactual_engines_quick_scores_every_engine_and_merges_a_rerun(tmp_path: Path) -> None:
    record = run_quick("counterfactual_engines", tmp_path)
    references = ("true counterpart", "VAE round trip", "VAE round trip residual", "no edit (VAE error)")
    engines = [(name, drift) for name in ("inversion", "sdedit", "pix2pix-zero", "instruct") for drift in (0.0, 0.05)]
    per_finding = [(name, "-") for name in references] + engines + [("gradient saliency", "-"), ("Grad-CAM", "-")]
    findings = ["nodule", "consolidation", "pleural_effusion", "cardiomegaly"]
    assert [(row["finding"], row["engine"], row["δ"]) for row in record["rows"]] == [
        (finding, *engine) for finding in findings for engine in per_finding
    ]
    assert all(0 <= row["auroc"] <= 1 for row in record["rows"])
    truth = [row for row in record["rows"] if row["engine"] == "true counterpart"]
    assert all(row["auroc"] > 0.99 and row["error"] == row["null edit"] == 0 for row in truth)  # the masks' own map
    by_engine = {(row["finding"], row["engine"]): row for row in record["rows"]}
    for finding in findings:  # the untrained VAE's round trip errs everywhere; its residual cancels most of that
        decoded, residual = by_engine[finding, "VAE round trip"], by_engine[finding, "VAE round trip residual"]
        assert decoded["null edit"] > 0.01 and residual["outside"] < decoded["outside"] / 2
        assert by_engine[finding, "no edit (VAE error)"]["null edit"] == decoded["null edit"]  # the same D(E(x))
    first = {(row["finding"], row["engine"], row["δ"]): row for row in record["rows"]}
    merged = run_quick("counterfactual_engines", tmp_path, "--engines", "sdedit", "--merge")
    again = {(row["finding"], row["engine"], row["δ"]): row for row in merged["rows"]}
    assert list(again) == list(first)  # same rows, same order
    assert all(again[key] == first[key] for key in first if key[1] != "sdedit")  # kept as they were
    added = run_quick("counterfactual_engines", tmp_path, "--engines", "instruct", "--per-finding", "--merge")
    labels = [(row["finding"], row["engine"]) for row in added["rows"]]
    assert labels.count(("nodule", "instruct, per finding")) == 2 and len(labels) == len(first) + 8  # 4 × (δ 0, δ)


@pytest.mark.slow
def test_per_finding_counterparts_quick_scores_both_counterparts_on_multi_finding_patients(tmp_path: Path) -> None:
    record = run_quick("per_finding_counterparts", tmp_path)
    assert [(row["finding"], row["counterpart"]) for row in record["rows"]] == [
        (finding, counterpart)
        for finding in ("pleural_effusion", "consolidation", "nodule")
        for counterpart in ("healthy (every finding)", "per finding")
    ]
    assert all(row["patients"] >= 1 and 0 <= row["auroc"] <= 1 for row in record["rows"])


@pytest.mark.slow
def test_instruct_settings_quick_scores_the_whole_grid_and_guidance_reaches_the_engine(tmp_path: Path) -> None:
    record = run_quick("instruct_settings", tmp_path)
    rows = record["rows"]
    assert [(row["finding"], row["strength"], row["s_T"]) for row in rows] == [
        (finding, strength, guidance)
        for finding in ("nodule", "consolidation", "pleural_effusion", "cardiomegaly")
        for strength in (0.3, 0.45, 0.6)
        for guidance in (3.0, 6.0, 9.0)
    ]
    assert record["cohort seed"] == 1  # validation patients, never the engines benchmark's seed-0 cases
    assert all(0 <= row["auroc"] <= 1 and -1 <= row["ncc"] <= 1 for row in rows)
    by_guidance = {guidance: [row["auroc"] for row in rows if row["s_T"] == guidance] for guidance in (3.0, 9.0)}
    assert by_guidance[3.0] != by_guidance[9.0]
    assert {row["s_I"] for row in rows} == {1.5}  # the engine's default image guidance unless asked
    options = "--findings", "cardiomegaly", "--strengths", "0.6", "--text-guidance", "3", "--image-guidance", "1", "3"
    named = run_quick("instruct_settings", tmp_path, *options, "--name", "image", record="instruct_settings-image")
    rows = named["rows"]
    assert [(row["finding"], row["strength"], row["s_T"], row["s_I"]) for row in rows] == [
        ("cardiomegaly", 0.6, 3.0, 1.0),
        ("cardiomegaly", 0.6, 3.0, 3.0),
    ]
    assert rows[0]["auroc"] != rows[1]["auroc"] or rows[0]["ncc"] != rows[1]["ncc"]  # s_I reaches the engine


@pytest.mark.slow
def test_instruct_models_quick_scores_each_model_at_the_engine_defaults(tmp_path: Path) -> None:
    record = run_quick("instruct_models", tmp_path)
    rows = record["rows"]
    findings = ("nodule", "consolidation", "pleural_effusion", "cardiomegaly")
    models = ("tiny seed 0", "tiny seed 1", "gradient saliency", "Grad-CAM")
    assert [(row["model"], row["finding"]) for row in rows] == [
        (model, finding) for model in models[:2] for finding in findings
    ] + [(model, finding) for finding in findings for model in models[2:]]  # fmt: skip
    assert (record["strength"], record["s_T"], record["s_I"], record["cohort seed"]) == (0.6, 3.0, 1.5, 1)
    assert [row["auroc"] for row in rows[:4]] != [row["auroc"] for row in rows[4:8]]  # each model is scored
    assert all(0 <= row["auroc"] <= 1 for row in rows[8:])
    for row in rows:  # two patients: the bootstrap's draws differ, and the pooled estimate is among them
        low, high = json.loads(row["auroc 95% CI"])
        assert low <= row["auroc"] <= high
        assert low < high or row["model"] in models[2:]  # an untrained classifier's maps may score alike in any draw
    for baseline in models[2:]:  # each method against each classifier map, paired
        reference = {row["finding"]: row["auroc"] for row in rows if row["model"] == baseline}
        for row in rows:
            column = row[f"auroc − {baseline}'s, 95% CI"]
            if row["model"] == baseline:
                assert column == "-"
                continue
            interval = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", column)
            difference, low, high = (float(value) for value in interval.groups())
            assert low <= difference <= high  # paired: the draws' differences hold the estimate's
            assert difference == pytest.approx(row["auroc"] - reference[row["finding"]], abs=0.002)  # both rounded
    bad = subprocess.run(
        [sys.executable, BENCHMARKS / "instruct_models.py", "--model", "no-label"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "write LABEL=PATH" in bad.stderr
    guided = run_quick("instruct_models", tmp_path / "guided", "--text-guidance", "9", "--image-guidance", "2")
    assert (guided["s_T"], guided["s_I"]) == (9.0, 2.0)
    assert [row["auroc"] for row in guided["rows"][:8]] != [row["auroc"] for row in rows[:8]]  # s_T reaches the maps


@pytest.mark.slow
def test_brain_atrophy_quick_scores_both_edits_on_every_measure(tmp_path: Path) -> None:
    record = run_quick("brain_atrophy", tmp_path)
    rows = record["rows"]
    assert [(row["edit"], row["measure"]) for row in rows][:3] == [
        ("20 years older (per decade)", name) for name in ("ventricles", "sulcal_csf", "cortical_signal")
    ]
    assert len(rows) == 6 and all(row["patients"] == 4 for row in rows)
    assert all(row["truth"] > 0 for row in rows if row["measure"] != "cortical_signal")  # the renderer's atrophy


@pytest.mark.slow
def test_ct_text_modulation_quick_scores_both_models_against_the_same_truth(tmp_path: Path) -> None:
    work = tmp_path / "work"
    record = run_quick("ct_text_modulation", tmp_path, "--work", str(work))
    plain, modulated, zero_snr, longer = record["rows"]
    assert plain["true shift (HU)"] == modulated["true shift (HU)"] == zero_snr["true shift (HU)"] < -10  # the truth
    assert longer["true shift (HU)"] == plain["true shift (HU)"]
    assert plain["model / truth"] == pytest.approx(plain["smoking shift (HU)"] / plain["true shift (HU)"])
    names = ("diffusion", "diffusion-text-modulation", "diffusion-zero-snr", "diffusion-text-modulation-2x")
    configs = {name: (work / "runs" / name / "config.yaml").read_text() for name in names}
    assert "text_modulation: false" in configs["diffusion"]
    assert "text_modulation: true" in configs["diffusion-text-modulation"]
    assert "zero_terminal_snr: false" in configs["diffusion-text-modulation"]
    assert "zero_terminal_snr: true" in configs["diffusion-zero-snr"]
    assert "snr_gamma: 0.0" in configs["diffusion-zero-snr"]
    steps = [yaml.safe_load(configs[name])["train"]["max_steps"] for name in (names[0], names[3])]
    assert steps[1] == 2 * steps[0] and "text_modulation: true" in configs[names[3]]  # twice the suite's steps
    scores = json.loads((work / "runs" / "diffusion-zero-snr" / "scores.json").read_text())  # cached by weights
    assert [row["smoking effect"]["mean_shift"] for row in scores.values()] == [zero_snr["smoking shift (HU)"]]
    assert record["baseline"] == "trained here"
    with Image.open(tmp_path / "ct_text_modulation-quick_montage.png") as montage:
        assert montage.height > 4 * 120 > montage.height / 2  # one row of 120 px tiles per model trained here
