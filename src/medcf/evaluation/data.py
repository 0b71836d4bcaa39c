"""The images a model is judged on: its held-out patients (the split `medcf train` made) and, for the privacy
audit, its training patients. The split is recomputed from the run's own config.yaml beside the model folder,
so an evaluation never scores a model on the patients it learnt from.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import yaml

from medcf.data.dataset import ImageTextDataset
from medcf.prompts import PromptTemplate
from medcf.training.data import HOLDOUT, TRAIN, load_cohorts


class RunSplit(NamedTuple):
    """How a training run read and split its data folder: data.holdout_fraction, train.seed, data.filter,
    data.adapter, data.csv."""

    holdout_fraction: float = 0.1
    seed: int = 0
    row_filter: str = ""
    adapter: str = "folder"
    csv: str = ""


class EvaluationSet(NamedTuple):
    images: torch.Tensor  # held-out real images (N, 1, R, R) in [-1, 1]
    rows: list[dict]  # their clinical rows
    training_images: torch.Tensor  # training-split images (M, 1, R, R), the privacy audit's reference
    split: RunSplit


def run_split(model: str | Path) -> RunSplit:
    """The split of the run that trained `model` (RUN/model → RUN/config.yaml); medcf's defaults without one."""
    config = Path(model) / ".." / "config.yaml"
    if not config.is_file():
        return RunSplit()
    values = yaml.safe_load(config.read_text()) or {}
    data, train = values.get("data", {}), values.get("train", {})
    return RunSplit(
        float(data.get("holdout_fraction", 0.1)),
        int(train.get("seed", 0)),
        str(data.get("filter", "")),
        str(data.get("adapter", "folder")),
        str(data.get("csv", "")),
    )


def evaluation_set(
    data: str | Path,
    *,
    resolution: int,
    modality: str,
    split: RunSplit,
    limit: int = 1000,
    training_limit: int = 5000,
) -> EvaluationSet:
    """Up to `limit` held-out and `training_limit` training images of the dataset folder `data`, split as the
    run did (the memorisation audit wants every training patient a sample could copy: keep the second large)."""
    if split.holdout_fraction <= 0:
        raise ValueError(f"{data}: the run held out no patients (holdout_fraction=0); evaluate on a run that did")
    cohorts = load_cohorts(
        data, adapter=split.adapter, csv=split.csv, modality=modality, row_filter=split.row_filter,
        holdout_fraction=split.holdout_fraction, seed=split.seed,
    )  # fmt: skip
    seed = split.seed
    template = PromptTemplate(modality, style="table")
    held_out = ImageTextDataset(cohorts[HOLDOUT], template, resolution=resolution, seed=seed)
    training = ImageTextDataset(cohorts[TRAIN], template, resolution=resolution, seed=seed)
    chosen = _subset(len(held_out), limit, seed)
    items = [held_out[index] for index in chosen]
    training_images = torch.stack(
        [training[index]["pixel_values"] for index in _subset(len(training), training_limit, seed)]
    )
    return EvaluationSet(
        torch.stack([item["pixel_values"] for item in items]),
        [item["row"] for item in items],
        training_images,
        split,
    )


def _subset(size: int, limit: int, seed: int) -> list[int]:
    return sorted(torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:limit].tolist())
