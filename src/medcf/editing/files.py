"""One image file in, a folder of results out: what `medcf counterfactual` and `medcf inpaint` run.

The model sees the image centre-cropped and resized to its resolution (as in training). Results are PNGs at
that resolution; where the input was DICOM or NIfTI, the edit is also written back at the source geometry as
source + the upsampled model-resolution change, so unchanged regions keep their full resolution.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from medcf.data import IMAGE_SUFFIXES, read_image, write_image
from medcf.data.dataset import resize_square
from medcf.data.dicom import clinical_fields
from medcf.data.image import MedicalImage
from medcf.figures import panel, save_figure, signed_heatmap, with_colour_bar
from medcf.models import Components, vae_scale_factor
from medcf.report import Section, write_report
from medcf.training.record import environment

SOURCE_FORMATS = {"dicom": "dcm", "nifti": "nii.gz"}
REDACTED = "<redacted>"  # a patient file's name often carries the patient's name or MRN (DOE_JOHN_12345.dcm)


@dataclass(frozen=True)
class ModelInput:
    """A source image and the (1, 1, R, R) model-range tensor the model sees."""

    image: MedicalImage
    pixels: torch.Tensor

    @property
    def display(self) -> np.ndarray:
        return ((self.pixels[0, 0] + 1) / 2).clamp(0, 1).numpy()


def model_resolution(components: Components) -> int:
    return components.unet.config.sample_size * vae_scale_factor(components)


def load_model_input(path: str | Path, resolution: int, *, index: int | None = None) -> ModelInput:
    """Read a PNG/DICOM/NIfTI slice (frame / slice `index` of a multi-frame DICOM or a volume) and crop/resize
    it as training did."""
    try:
        image = read_image(path, index=index)
    except ValueError as error:  # the data layer names read_image's argument; editing commands take --index
        raise ValueError(str(error).replace("; pass index=", "; pass --index ")) from None
    if image.provenance.colour:
        raise ValueError(
            f"{path}: a colour image, not a greyscale scan; pass the scan itself (a grey PNG, DICOM or NIfTI), "
            "or convert it to grey first if it is one"
        )
    square = resize_square(torch.from_numpy(image.pixels), resolution)
    return ModelInput(image, (square * 2 - 1)[None, None])


def load_mask(path: str | Path, resolution: int, *, like: tuple[int, int] | None = None) -> torch.Tensor:
    """A binary mask image (1, 1, R, R), cropped/resized like the images; empty masks are refused.

    `like` is the image's (H, W): the mask must have its size or its shape (then it is resized with it), or
    be square (drawn on the model's square centre-crop view, as the panels and the app show it).
    """
    image = read_image(path)
    if image.provenance.colour:
        raise ValueError(f"{path}: a colour mask; save it as greyscale, the region white on black")
    if like is not None and not _aligned(image.shape, like):
        (height, width), (image_height, image_width) = image.shape, like
        raise ValueError(
            f"{path}: mask is {width}×{height} px but the image is {image_width}×{image_height}; draw the mask on "
            "the image itself (same size) or on its square centre crop"
        )
    mask = resize_square(torch.from_numpy(image.pixels), resolution, nearest=True) > 0.5
    if not mask.any():
        raise ValueError(f"{path}: the mask is empty; paint the region white (> 0.5) on black")
    return mask.float()[None, None]


def _aligned(mask: tuple[int, int], image: tuple[int, int]) -> bool:
    """Same aspect ratio to within one pixel, or square: the centre crop maps the mask onto the image."""
    (height, width), (image_height, image_width) = mask, image
    return height == width or abs(height * image_width / image_height - width) <= 1


def clinical_row(image: MedicalImage, fields: Sequence[str]) -> dict[str, object]:
    """The row describing the image: what a DICOM header states, then `field=value` overrides."""
    row = clinical_fields(image.header) if image.provenance.format == "dicom" else {}
    return {**row, **row_fields(fields)}


def row_fields(fields: Sequence[str]) -> dict[str, object]:
    """`field=value` strings (--row) as a row."""
    row: dict[str, object] = {}
    for field in fields:
        key, separator, value = field.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"--row '{field}': write field=value, e.g. age=63 or nodule=1")
        row[key.strip()] = value.strip()
    return row


def source_geometry(source: ModelInput, result: torch.Tensor) -> np.ndarray:
    """Display pixels (H, W) at the source size: source + the change upsampled into the centre crop."""
    pixels = source.image.pixels.copy()
    height, width = pixels.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    change = (result - source.pixels).mean(dim=1, keepdim=True) / 2
    change = F.interpolate(change.float(), size=(side, side), mode="bilinear", align_corners=False)[0, 0].numpy()
    pixels[top : top + side, left : left + side] += change
    return np.clip(pixels, 0, 1)


def write_edit(
    staging: Path,
    source: ModelInput,
    result: torch.Tensor,
    *,
    title: str,
    name: str,
    settings: Mapping[str, object],
    extra_tiles: Sequence[tuple[np.ndarray, str]] = (),
) -> Path:
    """original.png, <name>.png, difference.png, panel.png, settings.json, report; <name>.dcm/.nii.gz too."""
    edited = ((result[0].mean(dim=0) + 1) / 2).clamp(0, 1).numpy()
    write_image(staging / "original.png", source.display)
    write_image(staging / f"{name}.png", edited)
    if (suffix := SOURCE_FORMATS.get(source.image.provenance.format)) is not None:
        write_image(staging / f"{name}.{suffix}", source_geometry(source, result), like=source.image)
    difference = edited - source.display
    limit = max(float(np.abs(difference).max()), 1e-6)
    save_figure(Image.fromarray(signed_heatmap(difference, limit=limit)), staging / "difference.png")
    tiles = [
        (source.display, "original"),
        *extra_tiles,
        (edited, name),
        (signed_heatmap(difference, limit=limit), "edit − original"),
    ]
    figure = panel([[tile for tile, _ in tiles]], [[caption for _, caption in tiles]], tile=192)
    save_figure(with_colour_bar(figure, limit, label="change, display units"), staging / "panel.png")
    record = {**settings, "environment": environment()}  # the software, to redo a figure
    (staging / "settings.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    summary = {"mean |change|": float(np.abs(difference).mean()), "max |change|": limit}
    sections = [
        Section("Result", figures=[("panel.png", "original, result and the signed change (red brighter)")]),
        Section("Settings", table=[{"setting": k, "value": v} for k, v in settings.items()]),
        Section("Change", table=[summary]),
    ]
    return write_report(staging, title, sections)


def patient_files(paths: Mapping[str, str | Path | None], *, show_names: bool) -> dict[str, str]:
    """Settings entries for the patient's files: each by a redacted name (its path when `show_names`) and its
    SHA-256, which pins the exact input for a rerun without naming the patient."""
    record = {}
    for key, path in paths.items():
        if path is None:
            record[key] = ""
            continue
        name = Path(path).name.lower()
        suffix = next((known for known in IMAGE_SUFFIXES if name.endswith(known)), "")  # a known suffix names no one
        record[key] = str(path) if show_names else REDACTED + suffix
        record[f"{key} sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return record
