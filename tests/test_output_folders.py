"""Output folders under hostile inputs: `--out` a symbolic link, a very large `generate --n`, and the staging
folder a killed run leaves behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from medcf import sampling
from medcf.atomic import atomic_folder, new_output_folder
from medcf.data import write_png
from medcf.data.synthetic import synthesize
from medcf.generate import generate
from medcf.models import Components, tiny_components

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["a chest x-ray", "=x", "normal chest x-ray", "effusion", "cardiomegaly"]


@pytest.fixture(scope="module")
def components() -> Components:
    return tiny_components()


def test_out_a_link_to_an_empty_folder_writes_into_it_and_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    out = new_output_folder(link)
    with atomic_folder(out) as staging:
        (staging / "result.txt").write_text("done")
    assert link.is_symlink() and (tmp_path / "target" / "result.txt").read_text() == "done"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["link", "target"]


def test_out_a_link_to_a_non_empty_folder_is_refused_naming_both_paths(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep.txt").write_text("keep me")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    with pytest.raises(FileExistsError, match=f"{link} \\(a link to {tmp_path / 'target'}\\): folder is not empty"):
        new_output_folder(link)
    assert link.is_symlink() and [path.name for path in (tmp_path / "target").iterdir()] == ["keep.txt"]
    assert (tmp_path / "target" / "keep.txt").read_text() == "keep me"


def test_synth_into_a_link_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    synthesize("cxr", tmp_path / "link", n=1, size=32, counterfactuals=False, progress=False)
    assert (tmp_path / "link").is_symlink() and (tmp_path / "target" / "dataset.json").is_file()


def test_generated_images_equal_direct_generate_with_the_same_noise(components: Components, tmp_path: Path) -> None:
    folder = sampling.generate_to_folder(
        components, PROMPTS, tmp_path / "out", num_inference_steps=2, batch_size=2, seed=3, progress=False
    )
    unet = components.unet
    shape = (unet.config.out_channels, unet.config.sample_size, unet.config.sample_size)
    noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(3 + i)) for i in range(5)])
    for start in range(0, 5, 2):  # the batches of generate_to_folder
        images = generate(
            components, PROMPTS[start : start + 2], num_inference_steps=2, latents=noise[start : start + 2]
        )
        for index, image in enumerate(((images.float().mean(dim=1) + 1) / 2).clamp(0, 1).numpy(), start):
            write_png(tmp_path / "expected.png", image)
            assert (folder / f"{index:04d}.png").read_bytes() == (tmp_path / "expected.png").read_bytes(), index
    assert sorted(path.name for path in folder.iterdir()) == [
        *(f"{i:04d}.png" for i in range(5)),
        "grid.png",
        "prompts.csv",
        "settings.json",
    ]
    assert (folder / "prompts.csv").read_text().splitlines()[1:3] == ["0000.png,a chest x-ray,3", "0001.png,'=x,4"]


def test_generate_holds_one_batch_of_images_whatever_n(
    components: Components, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[weakref.ref] = []
    real_batch = sampling._batch

    def tracked_batch(*args, **kwargs) -> torch.Tensor:
        images = real_batch(*args, **kwargs)
        batches.append(weakref.ref(images))
        return images

    alive: list[int] = []

    def counting_write_png(path: Path, image: np.ndarray) -> None:
        alive.append(sum(len(ref()) for ref in batches if ref() is not None))
        write_png(path, image)

    monkeypatch.setattr(sampling, "_batch", tracked_batch)
    monkeypatch.setattr(sampling, "write_png", counting_write_png)
    monkeypatch.setattr(sampling, "GRID_IMAGES", 3)
    folder = sampling.generate_to_folder(
        components, ["x-ray"] * 9, tmp_path / "out", num_inference_steps=1, batch_size=2, progress=False
    )
    assert len(alive) == 9 and max(alive) <= 2  # images alive while writing: one batch, not all 9
    assert len(list(folder.glob("[0-9]*.png"))) == 9


def test_generate_grid_shows_only_the_first_images(
    components: Components, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[int] = []
    real_grid = sampling.grid
    monkeypatch.setattr(sampling, "grid", lambda images: shown.append(len(images)) or real_grid(images))
    monkeypatch.setattr(sampling, "GRID_IMAGES", 3)
    sampling.generate_to_folder(components, ["x-ray"] * 5, tmp_path / "out", num_inference_steps=1, progress=False)
    assert shown == [3]


def test_generate_crash_mid_run_leaves_no_folder(
    components: Components, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_batch = sampling._batch

    def failing(components, prompts, start, *args, **kwargs):
        if start > 0:
            raise RuntimeError("out of memory")
        return real_batch(components, prompts, start, *args, **kwargs)

    monkeypatch.setattr(sampling, "_batch", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        sampling.generate_to_folder(components, ["x-ray"] * 4, tmp_path / "out", batch_size=2, progress=False)
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped), as a SIGKILLed writer's would be."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


@pytest.mark.skipif(os.name != "posix", reason="the liveness probe os.kill(pid, 0) is POSIX")
def test_rerun_removes_the_staging_folder_of_a_killed_synth(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "data"
    pid = _dead_pid()
    leftover = tmp_path / f".data.{pid}@{socket.gethostname()}.k1ll3d_x.partial"
    (leftover / "images").mkdir(parents=True)
    (leftover / "images" / "cxr00000.png").write_bytes(b"half")
    synthesize("cxr", out, n=2, size=32, seed=0, counterfactuals=False, progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]
    assert (out / "dataset.json").is_file() and len(list((out / "images").iterdir())) == 2
    assert capsys.readouterr().err.splitlines() == [f"medcf: removed {leftover}, left by a killed run (pid {pid})"]


def test_a_live_run_staging_folder_and_another_host_s_are_kept(tmp_path: Path) -> None:
    live = tmp_path / f".data.{os.getpid()}@{socket.gethostname()}.abcdefgh.partial"
    elsewhere = tmp_path / f".data.{_dead_pid()}@not-{socket.gethostname()}.abcdefgh.partial"
    live.mkdir()
    elsewhere.mkdir()
    with atomic_folder(tmp_path / "data") as staging:
        (staging / "x").write_text("x")
    assert live.is_dir() and elsewhere.is_dir() and (tmp_path / "data" / "x").is_file()
