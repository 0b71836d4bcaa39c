"""Crash-safe training: `medcf train` killed with SIGKILL mid-run resumes from its last checkpoint and ends
exactly where an uninterrupted run with the same seed ends (loss curve and weights). Slow: three processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

STEPS = 30
OPTIONS = (
    "data.resolution=32",
    "data.holdout_fraction=0.25",
    "model.tiny=true",
    "train.batch_size=4",
    "train.learning_rate=1e-3",
    f"train.max_steps={STEPS}",
    "train.checkpoint_every=3",
    "train.sample_every=0",
    "train.ema_decay=0.9",
    "train.latent_drift=0.05",
    "sample.num_images=2",
    "sample.num_inference_steps=2",
)


def command(root: Path, run: Path) -> list[str]:
    sets = [arg for option in (f"data.root={root}", *OPTIONS) for arg in ("--set", option)]
    return [sys.executable, "-m", "medcf", "train", *sets, "--out", str(run), "--no-progress"]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # same arithmetic in every run


def kill_after_first_checkpoint(root: Path, run: Path) -> int:
    """Start training, SIGKILL it as soon as a checkpoint exists (mid-run: the step it dies at varies)."""
    process = subprocess.Popen(command(root, run), env=environment(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list((run / "checkpoints").glob("step-*[0-9]")):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    return process.wait()


def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_result(tmp_path: Path, cxr_synth_root: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(command(cxr_synth_root, straight), env=environment(), check=True, capture_output=True)
    assert kill_after_first_checkpoint(cxr_synth_root, killed) == -signal.SIGKILL
    assert not (killed / "model").exists()  # the final model is only written by a finished run
    resumed = subprocess.run(command(cxr_synth_root, killed), env=environment(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    session = json.loads((killed / "manifest.json").read_text())["sessions"][-1]
    assert session["resumed_from"] and 0 < session["start_step"] < STEPS  # it really went on from mid-run

    assert (killed / "loss.csv").read_text() == (straight / "loss.csv").read_text()
    assert len((straight / "loss.csv").read_text().splitlines()) == STEPS + 1
    weights = "model/unet/diffusion_pytorch_model.safetensors"
    expected, got = load_file(straight / weights), load_file(killed / weights)
    for name, weight in expected.items():
        torch.testing.assert_close(got[name], weight, rtol=0, atol=1e-6)
    assert not list(killed.rglob("*.partial"))  # whatever the kill interrupted was cleaned up or replaced
