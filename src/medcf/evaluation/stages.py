"""The benchmarks' cached stages: a finished training run is not trained again, a computed score is kept under the
settings (its key) that produced it, so an interrupted benchmark continues where it stopped."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import pandas as pd

from medcf.atomic import atomic_path
from medcf.config import load_config
from medcf.data.synthetic import synthesize
from medcf.training import train, train_autoencoder
from medcf.training.options import check_run_folder

T = TypeVar("T")


def synthesized(suite: str, kind: str, folder: Path, *, n: int, size: int, seed: int, counterfactuals: bool) -> Path:
    """`suite`'s cohort (`medcf synth kind`) in `folder`, written unless an earlier benchmark did; a cohort of
    another size (a quick run's work folder reused by a full run) is an error, never reused."""
    table = folder / "metadata.csv"
    if not table.is_file():
        synthesize(kind, folder, n=n, size=size, seed=seed, counterfactuals=counterfactuals)
    elif (subjects := len(pd.read_csv(table))) != n:
        raise ValueError(f"{table}: {subjects} subjects where this size of {suite} needs {n} (a quick run's "
                         "folder?); use another --work folder")  # fmt: skip
    return folder


def trained(overrides: tuple[str, ...], folder: Path) -> Path:
    """The model folder of the run with `overrides`, trained unless an earlier benchmark finished it; a run of
    another recipe in `folder` (the suite's settings changed since) is an error, never reused."""
    config = load_config(None, overrides)
    check_run_folder(config, folder)
    if not (folder / "model" / "model_index.json").is_file():
        train(config, folder, command="medcf benchmark: medcf train " + " ".join(
            f"--set '{override}'" for override in overrides))  # fmt: skip
    return folder / "model"


def trained_vae(overrides: tuple[str, ...], folder: Path) -> Path:
    """The VAE of `overrides` (`medcf train-vae`), trained unless an earlier benchmark finished it; a VAE of another
    recipe in `folder` (another cohort, size or step count) is an error, never reused."""
    config = load_config(None, overrides)
    check_run_folder(config, folder)
    if not (folder / "vae" / "config.json").is_file():
        train_autoencoder(config, folder)
    return folder / "vae"


def training_seconds(run: Path) -> float:
    """Wall time of the steps a training run kept, over all its sessions (its manifest), so a resumed benchmark
    reports it whole. A killed session recorded no time: its kept steps (up to the checkpoint the next session
    resumed from) are counted at the mean seconds per step of the finished sessions."""
    sessions = json.loads((run / "manifest.json").read_text())["sessions"]
    finished = [s for s in sessions if "seconds" in s]
    per_step = sum(s["seconds"] for s in finished) / max(sum(s["end_step"] - s["start_step"] for s in finished), 1)
    kept = [after["start_step"] - s["start_step"] for s, after in pairwise(sessions) if "seconds" not in s]
    return sum(s["seconds"] for s in finished) + per_step * sum(kept)


def cached_stage(path: Path, key: dict, compute: Callable[[], T]) -> T:
    """`compute()`'s JSON result, stored in `path` under `key` (one file holds several keys)."""
    entries, tag = json.loads(path.read_text()) if path.is_file() else {}, json.dumps(key, sort_keys=True)
    if tag not in entries:
        entries[tag] = compute()
        with atomic_path(path) as temporary:
            temporary.write_text(json.dumps(entries, indent=1))
    return entries[tag]


def weights_stamp(model: Path, part: str = "unet") -> list[int]:
    """Size and modification time of the weights of `part` (the U-Net, a GAN's generator): a retrained model
    invalidates its cached scores."""
    stat = next((model / part).glob("*.safetensors")).stat()
    return [stat.st_size, stat.st_mtime_ns]


def placement_key(place: dict[str, str], *known: str) -> dict[str, str]:
    """The cache key's placement: nothing for the CPU in fp32, so that the caches of earlier runs stay valid."""
    if place == {"device": "cpu", "precision": "fp32"}:
        return {}
    return {"placement": "-".join(value for name, value in place.items() if name not in known)}
