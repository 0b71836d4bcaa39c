"""3-D volumes with their prompts: NIfTI in Hounsfield units ↔ model tensors (1, X, Y, Z) in [-1, 1].

Volumes are read in RAS+ voxel order (nibabel's closest canonical), so every volume of a cohort has its axes in
the same anatomical order, and written back in the source file's own orientation and affine. Intensities map
linearly from the cohort's value range (dataset.json "value_range", e.g. [-1024, 1024] HU for `medcf synth ct`),
clipped, to [-1, 1]. Training items are whole volumes or random patches (DGM-VLC, Xing et al. 2024, trains on
64×64×32 CT patches).
"""

from __future__ import annotations

import json
import zlib
from functools import cached_property
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from torch.utils.data import Dataset

from medcf.data.cohort import EXAMPLES_SHOWN, Cohort
from medcf.data.dataset import _plain_row
from medcf.data.nifti import SYNTHETIC, save_nifti
from medcf.prompts import PromptTemplate

RAS = nib.orientations.axcodes2ornt(("R", "A", "S"))


def read_volume(path: str | Path) -> np.ndarray:
    """The stored values (X, Y, Z) float32 of a 3-D NIfTI (HU for CT, slope/intercept applied) in RAS+ order."""
    try:
        image = nib.as_closest_canonical(nib.load(path))
        values = image.get_fdata(dtype=np.float32)
    except Exception as error:  # nibabel raises many kinds for damaged files
        raise ValueError(
            f"{path}: not a readable NIfTI volume ({type(error).__name__}: {error}); re-export it"
        ) from None
    if values.ndim != 3:
        raise ValueError(f"{path}: {values.ndim}-D data {values.shape}; a 3-D model reads 3-D volumes (X, Y, Z)")
    return values


def dataset_value_range(root: str | Path) -> tuple[float, float]:
    """The intensity range (low, high) of a cohort folder, from its dataset.json "value_range"."""
    path = Path(root) / "dataset.json"
    value_range = json.loads(path.read_text()).get("value_range") if path.is_file() else None
    if not value_range or len(value_range) != 2 or not value_range[0] < value_range[1]:
        raise ValueError(f'{path}: no "value_range": [low, high] (e.g. [-1024, 1024] HU); add it to dataset.json')
    return float(value_range[0]), float(value_range[1])


def to_unit_range(values: np.ndarray | torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Stored values (e.g. HU), clipped to `value_range`, mapped linearly onto [-1, 1]."""
    low, high = value_range
    values = torch.as_tensor(values, dtype=torch.float32).clamp(low, high)
    return (values - low) / (high - low) * 2 - 1


def from_unit_range(volume: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Model outputs in [-1, 1] (clipped) → stored values in `value_range` (the inverse of `to_unit_range`)."""
    low, high = value_range
    return (volume.float().clamp(-1, 1) + 1) / 2 * (high - low) + low


def write_volume(path: str | Path, values: np.ndarray, like: str | Path) -> Path:
    """Write RAS+ values (X, Y, Z) (e.g. HU, rounded to int16) with the geometry of the NIfTI `like`: its voxel
    order, affine and units, so the result overlays the source in any viewer."""
    source = nib.load(like)
    back = nib.orientations.ornt_transform(RAS, nib.orientations.io_orientation(source.affine))
    data = nib.orientations.apply_orientation(np.asarray(values), back)  # RAS+ → the source's voxel order
    if data.shape != source.shape[:3]:
        raise ValueError(
            f"{path}: volume {data.shape} ≠ the source {like} {source.shape[:3]}; write same-size volumes"
        )
    codes = (int(source.header["sform_code"]) or 2, int(source.header["qform_code"]) or 1)
    return _save(path, data, source.affine, codes, source.header.get_xyzt_units())


def write_new_volume(path: str | Path, values: np.ndarray, spacing_mm: tuple[float, float, float]) -> Path:
    """Write RAS+ values (X, Y, Z) (e.g. HU, rounded to int16) of a generated volume: affine diag(spacing), as
    `medcf synth ct` writes its volumes (sform and qform "scanner", units mm)."""
    affine = np.diag([*spacing_mm, 1.0])
    return _save(path, np.asarray(values), affine, (1, 1), ("mm", "sec"))


def _save(path: str | Path, data: np.ndarray, affine: np.ndarray, codes: tuple[int, int], units: tuple) -> Path:
    """int16 NIfTI (slope 1, intercept 0) written atomically; `codes` are the (sform, qform) codes."""
    image = nib.Nifti1Image(np.rint(data).astype(np.int16), affine)
    image.set_sform(affine, codes[0])
    image.set_qform(affine, codes[1])
    image.header.set_xyzt_units(*units)
    image.header.set_slope_inter(1, 0)
    image.header["descrip"] = SYNTHETIC.encode()
    return save_nifti(image, path)


class VolumeTextDataset(Dataset):
    """Items {"pixel_values": (1, X, Y, Z) in [-1, 1], "prompt", "row", "id"} and, with `masks` (a mask-conditioned
    model), "mask": (1, X, Y, Z) in {0, 1} from the mask_path column: whole volumes, or a random patch of `patch`
    voxels (the mask cropped alike) each time an item is read (drawn from torch's global generator, as
    torchvision's RandomCrop)."""

    def __init__(
        self,
        cohort: Cohort,
        template: PromptTemplate,
        *,
        value_range: tuple[float, float],
        patch: tuple[int, int, int] | None = None,
        seed: int = 0,
        masks: bool = False,
    ) -> None:
        if patch is not None and (len(patch) != 3 or min(patch) < 1):
            raise ValueError(f"patch={patch}: give three positive sides (X, Y, Z) in voxels, e.g. [64, 64, 32]")
        if masks and not cohort.has_masks:
            raise ValueError(f"{cohort.root}: model.mask_conditioning needs a mask_path column, each volume's mask")
        self.masks = masks
        self.cohort, self.template, self.seed = cohort, template, seed
        self.value_range = value_range
        self.patch = None if patch is None else tuple(int(side) for side in patch)
        self._rows = [_plain_row(row) for row in cohort.records.to_dict("records")]

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"VolumeTextDataset({self.cohort!r}, {self.template!r}, patch={self.patch})"

    @cached_property
    def item_shape(self) -> tuple[int, int, int]:
        """(X, Y, Z) of every item: the patch, or the first volume's shape (whole volumes must all share it)."""
        if self.patch is not None:
            return self.patch
        header = nib.load(self._rows[0]["path"])
        order = nib.orientations.io_orientation(header.affine)[:, 0].astype(int)  # RAS+ axis of each stored axis
        shape = [0, 0, 0]
        for stored, axis in enumerate(order):
            shape[axis] = header.shape[stored]
        return tuple(shape)

    @cached_property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size (X, Y, Z) in mm of the first volume, in RAS+ order (the cohort's, for a `medcf synth ct` one)."""
        zooms = nib.as_closest_canonical(nib.load(self._rows[0]["path"])).header.get_zooms()[:3]
        return tuple(float(zoom) for zoom in zooms)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self._rows[index]
        values = read_volume(row["path"])
        if self.masks:
            values = np.stack([values, self._mask(row, values.shape)])
        if self.patch is not None:
            values = random_patch(values, self.patch, row["path"])
        elif values.shape[-3:] != self.item_shape:
            raise ValueError(
                f"{row['path']}: volume {values.shape[-3:]} ≠ {self.item_shape} of the others; train on patches "
                "(--set data.patch=[64,64,32]) or resample the volumes to one shape"
            )
        item = {"prompt": self.prompt(index), "row": dict(row), "id": row["id"]}
        if self.masks:
            values, mask = values
            item["mask"] = torch.from_numpy(mask.astype(np.float32))[None]
        return {"pixel_values": to_unit_range(values, self.value_range)[None], **item}

    def _mask(self, row: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
        """The row's mask volume (RAS+) as {0, 1}, any non-zero stored value inside, at its volume's shape."""
        mask = read_volume(row["mask_path"])
        if mask.shape != shape:
            raise ValueError(
                f"{row['mask_path']}: mask {mask.shape} ≠ its volume {row['path']} {shape} (RAS+ voxels); give each "
                "volume a mask on its own grid"
            )
        return (mask > 0).astype(np.float32)

    def prompt(self, index: int) -> str:
        """The prompt of item `index` without reading its volume (the same per id in every run, as for 2-D)."""
        row = self._rows[index]
        try:
            return self.template.render(row, seed=self.seed + zlib.crc32(row["id"].encode()))
        except ValueError as error:
            raise ValueError(f"volume {row['id']} ({row['path']}): {error}") from None


def random_patch(values: np.ndarray, patch: tuple[int, int, int], path: str = "") -> np.ndarray:
    """A random (X, Y, Z) = `patch` crop of the last three axes of `values` (a volume, or a volume and its mask
    stacked), uniform over its positions."""
    shape = values.shape[-3:]
    if any(side > full for side, full in zip(patch, shape, strict=True)):
        raise ValueError(f"{path}: volume {shape} is smaller than the patch {patch}; lower data.patch")
    starts = [int(torch.randint(0, full - side + 1, ())) for side, full in zip(patch, shape, strict=True)]
    return values[(..., *(slice(start, start + side) for start, side in zip(starts, patch, strict=True)))]


def readable_volumes(cohort: Cohort, policy: str) -> Cohort:
    """`cohort` after reading every volume (data.bad_files: error | skip | unchecked), as verify.py does for 2-D."""
    if policy == "unchecked":
        return cohort
    bad = {}
    for path in cohort.records["path"]:
        try:
            read_volume(path)
        except ValueError as error:
            bad[path] = str(error)
    if not bad:
        return cohort
    shown = "; ".join(list(bad.values())[:EXAMPLES_SHOWN])
    keep = ~cohort.records["path"].isin(bad)
    if policy == "error" or not keep.any():
        raise ValueError(
            f"{cohort.root}: {len(bad)} unreadable volume(s): {shown}; replace them or --set data.bad_files=skip"
        )
    return cohort.select(keep)
