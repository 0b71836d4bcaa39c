"""ImageTextDataset: a Cohort as (image, prompt) training items, plus the batch collation for DataLoader.

Images become square by a centre crop to the short side followed by a resize (antialiased bilinear),
so the anatomy keeps its aspect ratio and no padding border enters the model. Masks take the same
crop and a nearest-neighbour resize, so they stay binary.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from medcf.data.cohort import Cohort
from medcf.data.intensity import to_model_range
from medcf.data.io import read_image
from medcf.prompts import PromptTemplate, is_missing

Item = dict[str, Any]


class ImageTextDataset(Dataset):
    """Items {"pixel_values": (1, R, R) in [-1, 1], "prompt", "row", "id"[, "mask": (1, R, R) in {0, 1}]}.

    The prompt of item `i` is `template.render(row, seed=seed + crc32(id))`: the "diverse" style draws
    a different paraphrase for each image, and the same one for that image in every run and process.
    A pair cohort (medcf.data.pairs) adds "source_pixel_values", the source image, and its prompt is the pair's
    instruction: pixel_values is the target the source should become.
    """

    def __init__(self, cohort: Cohort, template: PromptTemplate, *, resolution: int = 128, seed: int = 0) -> None:
        if resolution < 1:
            raise ValueError(f"resolution={resolution}: pass a positive image side in pixels, e.g. 128")
        self.cohort = cohort
        self.template = template
        self.resolution = resolution
        self.seed = seed
        self._rows = [_plain_row(row) for row in cohort.records.to_dict("records")]

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"ImageTextDataset({self.cohort!r}, {self.template!r}, resolution={self.resolution})"

    def __getitem__(self, index: int) -> Item:
        row = self._rows[index]
        image = self._read(row["path"], row["slice_index"])
        item: Item = {
            "pixel_values": self._model_input(image),
            "prompt": self.prompt(index),
            "row": dict(row),
            "id": row["id"],
        }
        if self.cohort.has_masks:
            item["mask"] = self._mask(row, image.shape)[None]
        if "source_path" in row:
            item["source_pixel_values"] = self._model_input(self._read(row["source_path"], row["source_slice_index"]))
        return item

    def prompt(self, index: int) -> str:
        """The prompt of item `index` without reading its image."""
        row = self._rows[index]
        if "instruction" in row:
            return str(row["instruction"])
        try:
            return self.template.render(row, seed=self.seed + zlib.crc32(row["id"].encode()))
        except ValueError as error:
            raise ValueError(f"image {row['id']} ({row['path']}): {error}") from None

    def _model_input(self, pixels: np.ndarray) -> torch.Tensor:
        """Display pixels (H, W) → (1, R, R) in [-1, 1]."""
        return to_model_range(resize_square(torch.from_numpy(pixels), self.resolution))[None]

    def _read(self, path: str, slice_index: int | None) -> np.ndarray:
        """Display pixels (H, W) in [0, 1] of one 2-D image (a slice or frame when slice_index is set)."""
        if slice_index is None:
            return read_image(path).pixels
        return read_image(path, index=slice_index, axis=self.cohort.axis).pixels

    def _mask(self, row: Mapping[str, Any], shape: tuple[int, ...]) -> torch.Tensor:
        """The row's mask as (R, R) float {0, 1}; any non-zero stored value counts as inside."""
        path = row["mask_path"]
        if row["slice_index"] is None:
            values = read_image(path).values
        else:
            values = read_image(path, index=row["slice_index"], axis=self.cohort.axis).values
        mask = torch.from_numpy((values > 0).astype(np.float32))
        if mask.shape != shape:
            if not self.cohort.resize_masks:
                raise ValueError(
                    f"{path}: mask is {mask.shape[1]}×{mask.shape[0]} px but its image {row['path']} is "
                    f"{shape[1]}×{shape[0]} px; give each image a mask of its own size"
                )
            mask = F.interpolate(mask[None, None], size=shape, mode="nearest-exact")[0, 0]
        return resize_square(mask, self.resolution, nearest=True)


def resize_square(pixels: torch.Tensor, resolution: int, *, nearest: bool = False) -> torch.Tensor:
    """(H, W) → (R, R): centre crop to the short side, then resize (antialiased bilinear, or nearest)."""
    height, width = pixels.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = pixels[top : top + side, left : left + side][None, None]
    if nearest:  # "nearest-exact" samples pixel centres; plain "nearest" shifts by half a pixel
        return F.interpolate(square, size=(resolution, resolution), mode="nearest-exact")[0, 0]
    resized = F.interpolate(
        square, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0, 0].clamp(0, 1)  # the filter weights are convex; clamp only float rounding


def collate_items(items: Sequence[Item]) -> dict[str, Any]:
    """Batch items: tensors stacked to (B, 1, R, R); prompts, ids and rows as lists."""
    if not items:
        raise ValueError("collate_items got no items; the DataLoader batch is empty")
    batch: dict[str, Any] = {
        "pixel_values": torch.stack([item["pixel_values"] for item in items]),
        "prompt": [item["prompt"] for item in items],
        "id": [item["id"] for item in items],
        "row": [item["row"] for item in items],
    }
    with_mask = sum("mask" in item for item in items)
    if with_mask not in (0, len(items)):
        raise ValueError(f"{with_mask} of {len(items)} items have a mask; a batch needs all or none")
    if with_mask:
        batch["mask"] = torch.stack([item["mask"] for item in items])
    if "source_pixel_values" in items[0]:
        batch["source_pixel_values"] = torch.stack([item["source_pixel_values"] for item in items])
    return batch


def _plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Missing values as None and numpy/pandas scalars as Python ones, so rows batch and serialise."""
    return {
        str(key): None if is_missing(value) else value.item() if isinstance(value, np.generic) else value
        for key, value in row.items()
    }
