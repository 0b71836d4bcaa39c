"""Multi-process training through `accelerate launch` (DDP over gloo on two CPU processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_two_process_ddp_replicas_agree(tmp_path: Path, cxr_synth_root: Path) -> None:
    run = tmp_path / "run"
    accelerate = Path(sys.executable).parent / "accelerate"
    # On a machine without GPUs `--multi_gpu` makes accelerate start CPU processes joined over gloo (MULTI_CPU).
    command = [
        str(accelerate),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "medcf",
        "train",
        "--no-progress",
        "--set",
        f"data.root={cxr_synth_root}",
        "--set",
        "data.resolution=32",
        "--set",
        "data.holdout_fraction=0",
        "--set",
        "model.tiny=true",
        "--set",
        "train.batch_size=2",
        "--set",
        "train.max_steps=4",
        "--set",
        "train.checkpoint_every=2",
        "--set",
        "train.sample_every=0",
        "--set",
        "sample.num_inference_steps=2",
        "--set",
        "sample.num_images=2",
        "--out",
        str(run),
    ]
    environment = os.environ | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["num_processes"] == 2
    fingerprints = manifest["replica_fingerprints"]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]  # DDP kept the replicas identical
    assert (run / "model" / "model_index.json").is_file()
    assert len((run / "loss.csv").read_text().splitlines()) == 1 + 4
