"""`medcf benchmark --quick` end to end (slow: trains 2–19 tiny models per suite), and its repeatability."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medcf.cli import app

pytestmark = pytest.mark.slow


def test_quick_benchmark_writes_the_table_and_repeats_its_numbers(tmp_path: Path) -> None:
    arguments = ["benchmark", "--suite", "cxr-synth", "--quick", "--work", str(tmp_path / "work")]
    first = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "first")])
    assert first.exit_code == 0, first.output
    results = json.loads((tmp_path / "first" / "cxr-synth-quick.json").read_text())
    runs = {row["run"]: row for row in results["runs"]}
    assert len(runs) == 19 and {row["group"] for row in runs.values()} == {"methods", "prompts"}
    for row in runs.values():
        assert math.isfinite(row["fid_effnet"]) and row["fid_effnet"] >= 0 and 0 <= row["effectiveness"] <= 1
    assert runs["LoRA, δ=0.1"]["latent drift"] == runs["LoRA, δ=0.1"]["sampling drift"] == 0.1
    plain = runs["LoRA, δ=0.1 in training only"]
    assert plain["latent drift"] == 0.1 and plain["sampling drift"] == 0.0 and plain["model"] == "lora-d0.1"
    assert plain["fid_effnet"] != runs["LoRA, δ=0.1"]["fid_effnet"]  # the same model, sampled differently
    findings = {row["finding"] for row in results["attribution"]}
    assert findings == {"nodule", "consolidation", "pleural_effusion", "cardiomegaly"}
    effect = results["smoking_effect"]
    assert effect["n"] == effect["truth"]["n"] == 8
    assert effect["truth"]["mean_shift"] > 0.03 > effect["truth"]["outside_shift"]  # the renderer's lung shift
    markdown = (tmp_path / "first" / "cxr-synth-quick.md").read_text()
    assert "textual inversion, δ=0.1" in markdown and "Smoking effect map" in markdown
    assert (tmp_path / "first" / "cxr-synth-quick_fid.png").stat().st_size > 0
    # a second run reuses the trained models and, its cached scores removed, must score them identically
    models = {row["model"] for row in results["runs"]}  # runs with the same training config share a model
    cached = [tmp_path / "work" / "runs" / model / "scores.json" for model in models]
    cached.append(tmp_path / "work" / "attribution.json")
    for path in cached:
        path.unlink()
    second = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "second")])
    assert second.exit_code == 0, second.output
    again = json.loads((tmp_path / "second" / "cxr-synth-quick.json").read_text())
    for before, after in zip(results["runs"], again["runs"], strict=True):
        assert before.pop("train seconds") == after.pop("train seconds") > 0  # the cached model, not retrained
        before.pop("score seconds"), after.pop("score seconds")
        assert before == after
    assert _same_scores(again["attribution"], results["attribution"])
    # --only rescoring one row adds it to the published file and keeps every other row and section as it was
    (tmp_path / "work" / "runs" / "lora-d0" / "scores.json").unlink()
    only = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "second"), "--only", "LoRA, δ=0"])
    assert only.exit_code == 0, only.output
    merged = json.loads((tmp_path / "second" / "cxr-synth-quick.json").read_text())
    assert merged.pop("rerun") == ["LoRA, δ=0"] and merged["attribution"] == again["attribution"]
    for before, after in zip(again["runs"], merged["runs"], strict=True):  # `again`'s timings were popped above
        after.pop("train seconds"), after.pop("score seconds")
        assert before == after
    assert "Rows run in this invocation" in (tmp_path / "second" / "cxr-synth-quick.md").read_text()


def test_quick_brain_benchmark_scores_every_edit_engine_against_the_truth(tmp_path: Path) -> None:
    arguments = ["benchmark", "--suite", "brain-synth", "--quick", "--work", str(tmp_path / "work")]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "brain-synth-quick.json").read_text())
    runs = {row["run"]: row for row in results["runs"]}
    assert len(runs) == 16 and "Custom Diffusion, δ=0.1 in training only" in runs and "LoRA, δ=0" not in runs
    assert {row["finding"] for row in results["attribution"]} == {"lesion", "alzheimers_disease"}
    edits = {(row["edit"], row["engine"]): row for row in results["brain_edits"]}
    assert len(edits) == 14 and "smoking_effect" not in results
    assert edits["20 years older", "InstructPix2Pix + LD"]["model"] == "instruct-pix2pix-d0.1"
    assert edits["Alzheimer's disease removed", "Pix2Pix-Zero + LD"]["latent drift"] == 0.1
    for row in edits.values():
        assert row["ventricles true"] * (-1 if "removed" in row["edit"] else 1) > 0  # the truth's direction
        assert row["error of the unedited image"] > 0 and min(row["inside"], row["outside"]) >= 0
        assert (row["effectiveness"] is None) == (row["edit"] == "20 years older")
    manifest = json.loads((tmp_path / "work" / "runs" / "instruct-pix2pix-d0" / "manifest.json").read_text())
    assert "train.method=instruct-pix2pix" in json.dumps(manifest)
    markdown = (tmp_path / "out" / "brain-synth-quick.md").read_text()
    assert "Latent Drifting's directions, here" in markdown
    assert "| LD lowers FID: basic fine-tune | FID 92.1" in markdown


def test_quick_ct_benchmark_scores_both_3d_backends_against_the_truth(tmp_path: Path) -> None:
    arguments = ["benchmark", "--suite", "ct-synth", "--quick", "--work", str(tmp_path / "work")]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "ct-synth-quick.json").read_text())
    rows = {row["model"]: row for row in results["runs"]}
    assert list(rows) == ["real training volumes", "diffusion", "GAN"]
    real = rows.pop("real training volumes")
    for row in rows.values():
        assert row["volume FID (CT features)"] > real["volume FID (CT features)"] >= 0  # nothing beats real data
        assert row["volumes"] == real["volumes"] == 2  # the quick cohort's 24 × 0.1 held-out patients
        truth = row["smoking effect"]["truth"]
        assert truth["mean_shift"] < -15 and truth["ci_high"] < 0  # the renderer: smokers' lungs darker in HU
        edits = {edit["edit"]: edit for edit in row["edits"]}
        assert edits["smoking removed (current → never)"]["true lung change (HU)"] > 15
        assert edits["nodule removed"]["true lung change (HU)"] < 0
        assert all(0 <= edit["effectiveness"] <= 1 and 0 <= edit["AUROC of |change|"] <= 1 for edit in edits.values())
    gan = json.loads((tmp_path / "work" / "runs" / "gan" / "manifest.json").read_text())
    assert gan["backend"] == "gan" and "data.prompt_style=table" in json.dumps(gan)
    markdown = (tmp_path / "out" / "ct-synth-quick.md").read_text()
    assert "DGM-VLC's finding: smoking shifts lung attenuation" in markdown
    assert (tmp_path / "out" / "ct-synth-quick_montage.png").stat().st_size > 0


def _same_scores(first: list[dict], second: list[dict]) -> bool:
    keys = ("auroc", "ncc", "dice")
    return all(a[k] == b[k] for a, b in zip(first, second, strict=True) for k in keys)
