"""The editing commands through the console entry point: one end-to-end run and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medcf.data import write_png
from medcf.models import save_components, tiny_components
from test_cli import medcf


@pytest.mark.slow  # end to end through subprocesses, ~15-25 s: runs in CI's slow pass
def test_counterfactual_runs_from_the_command_line(tmp_path: Path) -> None:
    model = save_components(tiny_components(in_channels=1), tmp_path / "model")
    image = tmp_path / "x.png"
    write_png(image, np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32), bit_depth=16)
    out = tmp_path / "cf"
    args = ["--model", model, "--image", image, "--set", "pleural_effusion=absent", "--row", "age=70"]
    result = medcf("counterfactual", *args, "--steps", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"counterfactual: {out / 'counterfactual.png'}" in result.stdout
    settings = json.loads((out / "settings.json").read_text())
    assert settings["source prompt"] == "Chest X-ray: Patient age: 70. Pleural effusion."  # no template: table style
    assert medcf("counterfactual", *args, "--steps", 2, "--no-residual", "--out", tmp_path / "r").returncode == 0
    assert json.loads((tmp_path / "r" / "settings.json").read_text())["residual"] is False
    assert settings["residual"] is True  # the default: a null edit gives the image back


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["counterfactual", "--model", "nowhere", "--image", "x.png", "--set", "nodule=absent", "--out", "o"],
         "nowhere: not found; check --model"),
        (["inpaint", "--model", ".", "--image", "x.png", "--mask", "m.png", "--prompt", "p", "--out", "o"],
         "x.png: not found; check --image"),
        (["attribute", "--model", ".", "--image", ".", "--out", "o"], ".: no model_index.json"),
        (["effect", "--model", "nowhere", "--attribute", "smoking"], "nowhere: not found; check --model"),
        (["train-classifier", "--data", "."], "metadata.csv: not found; point --data at a dataset folder"),
    ],
)  # fmt: skip
def test_editing_errors_are_one_line(tmp_path: Path, args: list[str], message: str, medcf_main) -> None:
    result = medcf_main(*args, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_counterfactual_defaults_to_the_shipped_model_and_can_drop_patient_info(tmp_path: Path, medcf_main) -> None:
    from medcf.pretrained import pretrained_path

    image = tmp_path / "x.png"
    write_png(image, np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64), bit_depth=16)
    args = ["--image", image, "--set", "pleural_effusion=absent", "--row", "age=70", "--row", "sex=F"]
    result = medcf_main("counterfactual", *args, "--steps", 2, "--no-patient-info", "--out", tmp_path / "cf")
    assert result.returncode == 0, result.stderr
    settings = json.loads((tmp_path / "cf" / "settings.json").read_text())
    assert settings["model"] == str(pretrained_path())  # as `medcf demo` and `medcf app` use it
    assert "effusion" in settings["source prompt"]
    assert "70" not in settings["source prompt"] and "female" not in settings["source prompt"].lower()
