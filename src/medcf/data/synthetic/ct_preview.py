"""Preview grid of a written 3-D cohort (chest CT, brain MRI): axial and coronal slices, masks, counterfactuals.

Each row is one subject: the mid-axial and mid-coronal slice of its volume, the anatomy masks outlined,
the findings outlined on the axial slice they fill most, then each counterfactual on the axial slice
where its effect mask is largest, the effect tinted red. Slices are shown in radiological display
orientation (`medcf.data.nifti.display_slice`) through the kind's display window (CT: the lung window;
brain: [0, 1]) and coronal slices stretched to their true aspect.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from medcf.data.intensity import window_level
from medcf.data.nifti import display_slice
from medcf.data.synthetic.kinds import Kind, get_kind
from medcf.figures import mask_outline, overlay, panel, save_figure

ANATOMY_COLOURS = ((255, 200, 0), (0, 200, 255), (0, 255, 120), (255, 0, 255))  # the kind's anatomy masks, in order
EFFECT_COLOUR = (255, 40, 40)


def _volume(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def _axial(volume: np.ndarray, index: int, window: tuple[float, float]) -> np.ndarray:
    """Axial slice `index` in display orientation through `window` (centre, width)."""
    return window_level(display_slice(volume[:, :, index]), *window, function="LINEAR_EXACT")


def _busiest_slice(mask: np.ndarray) -> int:
    """The axial slice holding most of `mask`, the middle one when it is empty."""
    counts = mask.reshape(-1, mask.shape[2]).sum(axis=0)
    return int(np.argmax(counts)) if counts.any() else mask.shape[2] // 2


def _outlined(image: np.ndarray, masks: list[tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    rgb = mask_outline(image, np.zeros(image.shape, bool))
    for mask, colour in masks:
        edges = mask_outline(np.zeros(image.shape, np.float32), mask, colour=colour)
        rgb[edges.any(axis=2)] = colour
    return rgb


def _coronal(volume: np.ndarray, spacing: tuple[float, ...], window: tuple[float, float]) -> np.ndarray:
    """Mid-coronal slice through `window`, resampled so one pixel is square in millimetres."""
    plane = display_slice(volume[:, volume.shape[1] // 2, :])
    stretched = ndimage.zoom(plane.astype(np.float32), (spacing[2] / spacing[0], 1.0), order=1)
    return window_level(stretched, *window, function="LINEAR_EXACT")


def _subject_row(
    dataset: Path, kind: Kind, record, masks: pd.DataFrame, changes: pd.DataFrame
) -> tuple[list, list[str]]:
    image = nib.load(dataset / record.path)
    volume, spacing, window = np.asanyarray(image.dataobj), image.header.get_zooms(), kind.display_window
    middle = volume.shape[2] // 2
    own = masks[masks["id"] == record.id].set_index("name")["path"]
    anatomy = [
        (display_slice(_volume(dataset / own[name])[:, :, middle]) > 0, colour)
        for name, colour in zip(kind.anatomy_masks, ANATOMY_COLOURS, strict=False)
    ]
    axial = _axial(volume, middle, window)
    tiles = [axial, _coronal(volume, spacing, window), _outlined(axial, anatomy)]
    titles = [f"{record.id} {record.age:g}{record.sex} z{middle}", "coronal", "anatomy masks"]
    findings = [_volume(dataset / own[name]) > 0 for name in own.index if name not in kind.anatomy_masks]
    if findings:
        union = np.logical_or.reduce(findings)
        index = _busiest_slice(union)
        tiles.append(_outlined(_axial(volume, index, window), [(display_slice(union[:, :, index]), EFFECT_COLOUR)]))
        titles.append(f"finding masks z{index}")
    for change in changes[changes["id"] == record.id].itertuples():
        effect = _volume(dataset / change.effect_mask_path) > 0
        index = _busiest_slice(effect)
        changed = _axial(_volume(dataset / change.path), index, window)
        red = np.broadcast_to(np.array(EFFECT_COLOUR, np.uint8), (*changed.shape, 3))
        tiles.append(overlay(changed, red, display_slice(effect[:, :, index]), alpha=0.35))
        titles.append(f"{change.factor}={change.value} z{index}")
    return tiles, titles


def preview_volumes(dataset: Path, path: Path, *, subjects: int = 4) -> Path:
    """Grid PNG of the first `subjects` subjects of a 3-D cohort folder written by `synthesize`."""
    kind = get_kind(json.loads((dataset / "dataset.json").read_text())["kind"])
    metadata = pd.read_csv(dataset / "metadata.csv").head(subjects)
    masks = pd.read_csv(dataset / "masks.csv")
    changes = pd.read_csv(dataset / "counterfactuals.csv", dtype=str)
    rendered = [_subject_row(dataset, kind, record, masks, changes) for record in metadata.itertuples()]
    size = _volume(dataset / metadata.iloc[0]["path"]).shape[0]
    return save_figure(panel([t for t, _ in rendered], [n for _, n in rendered], tile=max(128, size)), Path(path))
