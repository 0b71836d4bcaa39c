"""Write a semi-synthetic cohort to disk in the generic folder + CSV layout that `image_folder(...)` reads.

    out/
      images/<id>.png                              16-bit factual image
      masks/<id>_<name>.png                        8-bit masks (anatomy, and each finding present)
      counterfactuals/<id>/<factor>=<value>.png    16-bit single-factor counterfactual
      counterfactuals/<id>/<factor>=<value>_mask.png   8-bit effect mask (|difference| > threshold
                                                       ∪ finding mask)
      metadata.csv         id, patient_id, path, mask_path + canonical clinical fields (paths relative to out)
      masks.csv            id, name, path: every mask of every factual image
      counterfactuals.csv  id, factor, value, path, effect_mask_path
      dataset.json         kind, modality, n, size, seed, effect threshold, factors and their levels

The chest CT kind ("ct") writes the same layout with 3-D NIfTI files (volume_writer): volumes/<id>.nii.gz
(int16 HU) in place of images/, masks and counterfactuals as .nii.gz (uint8 0/1 masks), and dataset.json
adds dims, shape, spacing_mm, value_range, the threshold's units (HU) and how the anatomy was made. The
3-D brain kind ("brain3d", `medcf synth brain --3d`) writes the same, its volumes in [0, 1] as scaled uint16.

The cohort is built in a hidden sibling folder and renamed onto `out` only when complete, so a
crash never leaves half a dataset; the next run removes the hidden folder of a killed one (medcf.atomic).
Files depend only on (kind, n, size, seed): same seed, same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from medcf.atomic import atomic_folder, shown_path
from medcf.data.synthetic.factors import counterfactual_values, effect_mask
from medcf.data.synthetic.kinds import Kind, get_kind

PARALLEL_FROM = 200  # subjects: smaller cohorts are written in-process (worker start-up would dominate)
SubjectFiles = tuple[dict[str, object], list[dict[str, object]], list[dict[str, object]]]


def format_value(value: object) -> str:
    """Factor value as written in file names and tables: whole-number ages without a decimal point."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write_subject(kind_name: str, root: Path, size: int, seed: int, counterfactuals: bool, index: int) -> SubjectFiles:
    """Render subject `index` with its masks and counterfactuals into `root`; returns its table rows."""
    kind = get_kind(kind_name)
    files = kind.files
    subject = kind.sample(seed, index)
    factual = kind.render(subject, size)
    files.write_image(root / files.folder / f"{subject.id}{files.suffix}", factual.image)
    mask_rows = []
    for name, mask in factual.masks.items():
        path = f"masks/{subject.id}_{name}{files.suffix}"
        files.write_mask(root / path, mask)
        mask_rows.append({"id": subject.id, "name": name, "path": path})
    row = {
        "id": subject.id,
        "patient_id": subject.id,
        "path": f"{files.folder}/{subject.id}{files.suffix}",
        "mask_path": f"masks/{subject.id}_{kind.anatomy_masks[0]}{files.suffix}",
        **kind.row(subject),
    }
    counterfactual_rows = []
    if counterfactuals:
        (root / "counterfactuals" / subject.id).mkdir()
        for factor, value in counterfactual_values(subject, kind.factors):
            changed = kind.render(subject, size, **{factor: value})
            stem = f"counterfactuals/{subject.id}/{factor}={format_value(value)}"
            files.write_image(root / f"{stem}{files.suffix}", changed.image)
            files.write_mask(
                root / f"{stem}_mask{files.suffix}",
                effect_mask(factual, changed, factor, threshold=kind.effect_threshold),
            )
            counterfactual_rows.append(
                {
                    "id": subject.id,
                    "factor": factor,
                    "value": format_value(value),
                    "path": f"{stem}{files.suffix}",
                    "effect_mask_path": f"{stem}_mask{files.suffix}",
                }
            )
    return row, mask_rows, counterfactual_rows


def _check_arguments(out: Path, kind: Kind, n: int, size: int, seed: int, workers: int | None) -> None:
    if n < 1:
        raise ValueError(f"n={n}: a cohort needs at least one subject; pass --n 1 or more")
    if seed < 0:
        raise ValueError(f"seed={seed}: pass a non-negative integer seed")
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}: pass 1 or more worker processes, or None for all CPUs")
    low, high = kind.size_range
    if not low <= size <= high:
        raise ValueError(f"size={size}: choose a {kind.name} image size from {low} to {high} pixels")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{shown_path(out)}: is a file; pass --out a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(
            f"{shown_path(out)}: folder exists and is not empty; pass --out a new folder or empty this one"
        )


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def _progress_bar(show: bool, description: str, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar (tqdm is not a dependency); yields the function that advances it by one."""
    if not show:
        yield lambda: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)


def _render_all(
    job: Callable[[int], SubjectFiles], n: int, workers: int, advance: Callable[[], None]
) -> list[SubjectFiles]:
    """Run `job` for subjects 0..n-1 in order, in `workers` processes; results are ordered by index."""
    results = []
    if workers == 1:
        for index in range(n):
            results.append(job(index))
            advance()
        return results
    with get_context().Pool(workers) as pool:
        for result in pool.imap(job, range(n), chunksize=8):
            results.append(result)
            advance()
    return results


def _write_tables(root: Path, kind: Kind, results: list[SubjectFiles], *, n: int, size: int, seed: int) -> None:
    pd.DataFrame([row for row, _, _ in results]).to_csv(root / "metadata.csv", index=False)
    pd.DataFrame([mask for _, masks, _ in results for mask in masks]).to_csv(root / "masks.csv", index=False)
    changes = [change for _, _, rows in results for change in rows]
    columns = ["id", "factor", "value", "path", "effect_mask_path"]
    pd.DataFrame(changes, columns=columns).to_csv(root / "counterfactuals.csv", index=False)
    description = {
        "kind": kind.name,
        "modality": kind.modality,
        "n": n,
        "size": size,
        "seed": seed,
        "effect_threshold": kind.effect_threshold,
        "factors": {factor.name: None if factor.levels is None else list(factor.levels) for factor in kind.factors},
        **kind.files.describe(size),
    }
    (root / "dataset.json").write_text(json.dumps(description, indent=2) + "\n")


def synthesize(
    kind: str,
    out: Path,
    *,
    n: int,
    size: int | None = None,
    seed: int = 0,
    counterfactuals: bool = True,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Write `n` subjects of the `kind` ("cxr" | "brain" | "ct" | "brain3d") cohort into the new or empty folder `out`.

    `size` None is the kind's default (128 px for 2-D kinds; 64 for ct and brain3d: 64x64x32, 64x64x48 volumes).
    `workers` processes render in parallel (None: every available CPU from PARALLEL_FROM subjects on,
    else one); the output is the same whatever the number of workers.
    """
    generator = get_kind(kind)
    out = Path(out)
    size = generator.default_size if size is None else size
    _check_arguments(out, generator, n, size, seed, workers)
    if workers is None:
        workers = _available_cpus() if n >= PARALLEL_FROM else 1
    with atomic_folder(out) as staging:  # checked empty above; a crash leaves no half dataset
        for folder in (generator.files.folder, "masks", "counterfactuals"):
            (staging / folder).mkdir()
        job = partial(write_subject, kind, staging, size, seed, counterfactuals)
        with _progress_bar(progress, f"medcf synth {kind}", n) as advance:
            results = _render_all(job, n, min(workers, n), advance)
        _write_tables(staging, generator, results, n=n, size=size, seed=seed)
    return out
