"""The model commands end to end through the console entry point: train → generate → drift-search, train-vae,
and their one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from test_cli import medcf

TINY = ["--set", "model.tiny=true", "--set", "data.resolution=32", "--set", "sample.num_inference_steps=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cxr_synth_root: Path) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    options = ["--set", "train.max_steps=2", "--set", "sample.num_images=2", "--no-progress"]
    result = medcf("train", "--set", f"data.root={cxr_synth_root}", *TINY, *options, "--out", run)
    assert result.returncode == 0, result.stderr
    assert f"model: {run / 'model'}" in result.stdout
    return run


def test_train_writes_a_run_folder_with_the_command(trained: Path) -> None:
    for name in ("model/unet/config.json", "config.yaml", "index.html", "loss.png", "manifest.json"):
        assert (trained / name).is_file(), name
    assert "medcf train --set" in (trained / "manifest.json").read_text()


def test_generate_writes_one_png_per_image_a_grid_and_the_prompts(trained: Path, tmp_path: Path, medcf_main) -> None:
    out = tmp_path / "samples"
    prompts = ["--prompt", "chest X-ray, cardiomegaly", "--prompt", "normal chest X-ray"]
    result = medcf_main("generate", "--model", trained / "model", *prompts, "--n", 3, "--steps", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    pngs = sorted(path.name for path in out.glob("[0-9]*.png"))
    assert pngs == ["0000.png", "0001.png", "0002.png"] and (out / "grid.png").is_file()
    assert Image.open(out / "0000.png").size == (32, 32)
    with (out / "prompts.csv").open() as table:
        rows = list(csv.DictReader(table))
    assert [row["prompt"] for row in rows] == (["chest X-ray, cardiomegaly", "normal chest X-ray"] * 2)[:3]


def test_drift_search_writes_one_row_per_delta(
    trained: Path, cxr_synth_root: Path, tmp_path: Path, medcf_main
) -> None:
    out = tmp_path / "drift"
    args = ["--n", 4, "--deltas", "-0.1,0,0.1", "--steps", 2, "--out", out]
    result = medcf_main("drift-search", "--model", trained / "model", "--data", cxr_synth_root, *args)
    assert result.returncode == 0, result.stderr
    assert "best δ =" in result.stdout
    with (out / "drift_search.csv").open() as table:
        assert [float(row["delta"]) for row in csv.DictReader(table)] == [-0.1, 0.0, 0.1]
    assert (out / "drift_search.png").is_file()


def test_train_vae_writes_a_diffusers_autoencoder(cxr_synth_root: Path, tmp_path: Path, medcf_main) -> None:
    options = ["--set", "vae.max_steps=2", "--set", "vae.batch_size=2", "--set", "data.resolution=32"]
    args = ["--set", f"data.root={cxr_synth_root}", *options, "--no-progress", "--out", tmp_path]
    result = medcf_main("train-vae", *args)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "vae" / "config.json").is_file() and (tmp_path / "reconstructions.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--set", "data.root=absent"], "absent"),
        (["train", "--set", "train.warp_speed=9"], "unknown key 'train.warp_speed'"),
        (["train", "--set", "train.max_steps=many"], "train.max_steps"),
        (["generate", "--model", "absent", "--prompt", "x", "--out", "o"], "absent"),
        (["train-vae", "--config", "absent.yaml"], "absent.yaml"),
    ],
)
def test_model_command_errors_are_one_line(tmp_path: Path, args: list[str], message: str, medcf_main) -> None:
    result = medcf_main(*args, *(["--out", "run"] if args[0] != "generate" else []), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing half-written
