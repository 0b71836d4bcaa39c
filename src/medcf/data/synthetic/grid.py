"""Preview grids: a few subjects' factual images, masks, and every counterfactual with its effect mask.

Pure Pillow through `medcf.figures`. `preview_grid` reads a written dataset folder (so it also checks
what is on disk; a 3-D CT cohort is drawn by `ct_preview`); `preview_kind` renders subjects of a 2-D
generator directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medcf.data.synthetic.ct_preview import preview_volumes
from medcf.data.synthetic.factors import Render, counterfactual_values, effect_mask
from medcf.data.synthetic.kinds import get_kind
from medcf.data.synthetic.writer import format_value
from medcf.figures import mask_outline, overlay, panel, save_figure

ANATOMY_COLOURS = ((255, 200, 0), (0, 200, 255))  # first and second anatomy mask
EFFECT_COLOUR = (255, 40, 40)


def _read_png(path: Path) -> np.ndarray:
    """A PNG this package wrote (8- or 16-bit grey) as float32 in [0, 1]."""
    with Image.open(path) as picture:
        pixels = np.asarray(picture)
    return (pixels / np.iinfo(pixels.dtype).max).astype(np.float32)


def _outlined(image: np.ndarray, masks: list[np.ndarray], colours: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """RGB image with each mask's outline drawn in its colour."""
    rgb = mask_outline(image, masks[0], colour=colours[0])
    for mask, colour in zip(masks[1:], colours[1:], strict=True):
        edges = mask_outline(np.zeros(image.shape, np.float32), mask, colour=colour)
        rgb[edges.any(axis=2)] = colour
    return rgb


def _subject_row(
    title: str,
    factual: np.ndarray,
    anatomy: list[np.ndarray],
    findings: list[np.ndarray],
    changes: list[tuple[str, np.ndarray, np.ndarray]],
) -> tuple[list[np.ndarray], list[str]]:
    tiles = [factual, _outlined(factual, anatomy, ANATOMY_COLOURS)]
    titles = [title, "anatomy masks"]
    if findings:
        tiles.append(_outlined(factual, [np.logical_or.reduce(findings)], (EFFECT_COLOUR,)))
        titles.append("finding masks")
    for label, image, mask in changes:
        red = np.broadcast_to(np.array(EFFECT_COLOUR, np.uint8), (*image.shape, 3))
        tiles.append(overlay(image, red, mask, alpha=0.35))  # effect mask tinted: the image stays readable
        titles.append(label)
    return tiles, titles


def preview_grid(dataset: Path, path: Path, *, subjects: int = 4) -> Path:
    """Grid PNG of the first `subjects` subjects of a dataset folder written by `synthesize`."""
    dataset = Path(dataset)
    if not (dataset / "metadata.csv").exists():
        raise FileNotFoundError(f"{dataset}: no metadata.csv; pass a folder written by `medcf synth`")
    kind = get_kind(json.loads((dataset / "dataset.json").read_text())["kind"])
    if kind.dims == 3:
        return preview_volumes(dataset, path, subjects=subjects)
    metadata = pd.read_csv(dataset / "metadata.csv").head(subjects)
    masks = pd.read_csv(dataset / "masks.csv")
    changes = pd.read_csv(dataset / "counterfactuals.csv", dtype=str)
    rows, titles = [], []
    for record in metadata.itertuples():
        own = masks[masks["id"] == record.id].set_index("name")["path"]
        anatomy = [_read_png(dataset / own[name]) > 0.5 for name in kind.anatomy_masks]
        findings = [_read_png(dataset / own[name]) > 0.5 for name in own.index if name not in kind.anatomy_masks]
        own_changes = [
            (
                f"{change.factor}={change.value}",
                _read_png(dataset / change.path),
                _read_png(dataset / change.effect_mask_path) > 0.5,
            )
            for change in changes[changes["id"] == record.id].itertuples()
        ]
        title = f"{record.id} {format_value(record.age)}{record.sex}"
        tiles, labels = _subject_row(title, _read_png(dataset / record.path), anatomy, findings, own_changes)
        rows.append(tiles)
        titles.append(labels)
    return save_figure(
        panel(rows, titles, tile=max(128, _read_png(dataset / metadata.iloc[0]["path"]).shape[0])), Path(path)
    )


def _render_row(kind_name: str, subject: object, size: int) -> tuple[list[np.ndarray], list[str]]:
    kind = get_kind(kind_name)
    factual: Render = kind.render(subject, size)
    anatomy = [factual.masks[name] for name in kind.anatomy_masks]
    findings = [mask for name, mask in factual.masks.items() if name not in kind.anatomy_masks]
    changes = []
    for factor, value in counterfactual_values(subject, kind.factors):
        changed = kind.render(subject, size, **{factor: value})
        changes.append((f"{factor}={format_value(value)}", changed.image, effect_mask(factual, changed, factor)))
    row = kind.row(subject)
    title = f"{row['id']} {format_value(row['age'])}{row['sex']}"
    return _subject_row(title, factual.image, anatomy, findings, changes)


def preview_kind(kind: str, path: Path, *, subjects: int = 4, size: int = 128, seed: int = 0) -> Path:
    """Grid PNG of subjects 0..subjects-1 rendered straight from the `kind` generator."""
    generator = get_kind(kind)
    if generator.dims != 2:
        raise ValueError(f"preview_kind draws 2-D kinds; write the {kind} cohort with synthesize, then preview_grid")
    rendered = [_render_row(kind, generator.sample(seed, index), size) for index in range(subjects)]
    rows, titles = [tiles for tiles, _ in rendered], [labels for _, labels in rendered]
    return save_figure(panel(rows, titles, tile=max(128, size)), Path(path))
