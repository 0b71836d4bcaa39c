"""Training data: the cohort split by patient, its (image, prompt) dataset, and the exact batch order.

The batch order is a pure function of (seed, epoch, process): epoch e shuffles the images with a generator
seeded by (seed, e), drops the ragged tail so every process gets the same number of batches, and process r
takes every world_size-th batch starting at r. A resumed run therefore continues with exactly the batches
an uninterrupted run would have seen, without reading the skipped images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from medcf.data import Cohort, ImageTextDataset, collate_items
from medcf.data.adapters.registry import open_dataset
from medcf.data.pairs import counterfactual_pairs, longitudinal_image_pairs, pairs_table
from medcf.data.row_filter import select_rows
from medcf.data.split import train_holdout
from medcf.data.verify import readable_cohort
from medcf.data.volume import VolumeTextDataset, dataset_value_range, readable_volumes
from medcf.prompts import PromptTemplate

TRAIN, HOLDOUT = "train", "holdout"


def load_cohorts(
    root: str | Path,
    *,
    adapter: str = "folder",
    csv: str = "",
    modality: str,
    row_filter: str = "",
    holdout_fraction: float,
    seed: int,
    bad_files: str = "unchecked",
    pairs: str = "",
    progress: bool = True,
) -> dict[str, Cohort]:
    """{"train": ..., "holdout": ...} of the dataset at `root` read by `adapter` (holdout may be absent): the
    release's own split when it has one, else a patient-level split. `bad_files` (medcf.data.verify) is applied
    to each part after the split, so the split never depends on which files decode. `pairs` (data.pairs) reads
    image pairs instead of images (medcf.data.pairs), split by patient the same way."""
    if not str(root):
        raise ValueError("data.root is empty; set it to a dataset folder, e.g. --set data.root=data/cxr")
    cohort = (
        _pairs(pairs, root, adapter, csv, modality)
        if pairs
        else open_dataset(adapter, root, table=csv or None, modality=modality)
    )
    if row_filter:
        keep = select_rows(cohort.records, row_filter)  # our own grammar: pandas' eval would run code from a config
        if not keep.any():
            raise ValueError(f"data.filter={row_filter!r} keeps no rows of {root} ({adapter}); loosen it")
        cohort = cohort.select(keep)
    parts = train_holdout(cohort, holdout_fraction, seed=seed)
    return {name: readable_cohort(part, bad_files, progress=progress) for name, part in parts.items()}


def _pairs(pairs: str, root: str | Path, adapter: str, csv: str, modality: str) -> Cohort:
    """The pair cohort data.pairs names: a synth folder's counterfactuals, repeat visits, or a CSV of pairs."""
    if pairs == "counterfactuals":
        return counterfactual_pairs(root)
    if pairs == "longitudinal":
        return longitudinal_image_pairs(open_dataset(adapter, root, table=csv or None, modality=modality))
    return pairs_table(root, pairs, modality=modality)


def training_dataset(
    cohort: Cohort, *, resolution: int, prompt_style: str, patient_info: bool, seed: int
) -> ImageTextDataset:
    template = PromptTemplate(cohort.modality, style=prompt_style, patient_info=patient_info)
    return _checked_prompts(ImageTextDataset(cohort, template, resolution=resolution, seed=seed))


def volume_dataset(
    cohort: Cohort,
    *,
    patch: list[int],
    bad_files: str,
    prompt_style: str,
    patient_info: bool,
    seed: int,
    masks: bool = False,
) -> VolumeTextDataset:
    """The 3-D twin of `training_dataset`: whole volumes or random `patch` crops (with their masks for a
    mask-conditioned model), intensities from dataset.json; `bad_files` (data.bad_files) as `load_cohorts` applies
    it to 2-D files."""
    cohort = readable_volumes(cohort, bad_files)
    template = PromptTemplate(cohort.modality, style=prompt_style, patient_info=patient_info)
    value_range = dataset_value_range(cohort.root)
    patch = tuple(patch) or None
    dataset = VolumeTextDataset(cohort, template, value_range=value_range, patch=patch, seed=seed, masks=masks)
    return _checked_prompts(dataset)


def _checked_prompts(dataset: ImageTextDataset | VolumeTextDataset) -> ImageTextDataset | VolumeTextDataset:
    """`dataset` once every row's prompt has rendered: a row that cannot become a prompt (a contradiction, a bad
    value) stops the run before step 0, naming its image, not when a batch first draws it (milliseconds a row)."""
    for index in range(len(dataset)):
        dataset.prompt(index)
    return dataset


def epoch_batches(
    num_items: int, batch_size: int, *, seed: int, epoch: int, process_index: int = 0, num_processes: int = 1
) -> list[list[int]]:
    """This process's batches (lists of item indices) of one epoch; deterministic in every argument."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_items, generator=generator).tolist()
    count = num_items // batch_size
    if count < num_processes:
        raise ValueError(
            f"{num_items} training images make {count} batch(es) of {batch_size}, fewer than the "
            f"{num_processes} processes; lower train.batch_size or add images"
        )
    count -= count % num_processes  # equal batch counts per process keep DDP's collectives in step
    batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(count)]
    return batches[process_index::num_processes]


def batch_stream(
    dataset: ImageTextDataset,
    batch_size: int,
    *,
    seed: int,
    start: int = 0,
    process_index: int = 0,
    num_processes: int = 1,
    num_workers: int = 0,
) -> Iterator[dict]:
    """Endless batches of this process from micro-batch number `start` on (epochs follow one another).

    Micro-batch k is read with torch's global generator seeded by (seed, k, process) and then restored: random
    augmentations drawn from it (VolumeTextDataset's patches, as torchvision's RandomCrop) are then the same in every
    run of the seed, and a resumed run reads what an uninterrupted one would have."""
    per_epoch = len(epoch_batches(len(dataset), batch_size, seed=seed, epoch=0, num_processes=num_processes))
    epoch, skip = divmod(start, per_epoch)
    index = start
    while True:
        batches = epoch_batches(
            len(dataset), batch_size, seed=seed, epoch=epoch, process_index=process_index, num_processes=num_processes
        )
        loader = DataLoader(dataset, batch_sampler=batches[skip:], collate_fn=collate_items, num_workers=num_workers)
        with _seeded(seed, -1 - epoch, process_index):  # worker processes take their seeds from it here
            items = iter(loader)
        for _ in range(len(batches) - skip):
            with _seeded(seed, index, process_index):
                batch = next(items)
            index += 1
            yield batch
        epoch, skip = epoch + 1, 0


@contextmanager
def _seeded(seed: int, index: int, process_index: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(((seed * 1_000_003 + index) * 1_000 + process_index) % 2**63)
        yield


def data_fingerprint(cohort: Cohort) -> str:
    """SHA-256 over `(id, image bytes[, mask bytes][, source bytes])` of every row: which data a run saw."""
    file_digests: dict[str, str] = {}  # slices of one volume share a file: hash it once
    digest = hashlib.sha256()
    columns = ["id", "path"] + [column for column in ("mask_path", "source_path") if column in cohort.records]
    for row in cohort.records[columns].sort_values("id").itertuples(index=False):
        digest.update(str(row[0]).encode())
        for path in row[1:]:
            if path not in file_digests:
                file_digests[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            digest.update(file_digests[path].encode())
    return digest.hexdigest()


def images_and_prompts(
    root: str | Path,
    *,
    resolution: int,
    modality: str,
    prompt_style: str = "diverse",
    limit: int = 1000,
    seed: int = 0,
) -> tuple[torch.Tensor, list[str]]:
    """Up to `limit` images of a dataset folder as (N, 1, R, R) in [-1, 1] with their clinical prompts (all rows)."""
    cohort = load_cohorts(root, modality=modality, holdout_fraction=0, seed=seed)[TRAIN]
    dataset = training_dataset(cohort, resolution=resolution, prompt_style=prompt_style, patient_info=True, seed=seed)
    chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:limit].tolist()
    return torch.stack([dataset[index]["pixel_values"] for index in chosen]), [dataset.prompt(i) for i in chosen]
