"""The generators by name: what the writer and the preview grid need to know about each kind of dataset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medcf.data.io import write_png
from medcf.data.synthetic.brain import render_brain
from medcf.data.synthetic.brain3d import render_brain3d
from medcf.data.synthetic.brain_subject import BRAIN_FACTORS, brain_row, sample_brain_subject
from medcf.data.synthetic.ct import CT_EFFECT_THRESHOLD_HU, render_ct
from medcf.data.synthetic.ct_subject import CT_FACTORS, ct_row, sample_ct_subject
from medcf.data.synthetic.cxr import render_cxr
from medcf.data.synthetic.cxr_subject import CXR_FACTORS, cxr_row, sample_cxr_subject
from medcf.data.synthetic.factors import EFFECT_THRESHOLD, Factor, Render
from medcf.data.synthetic.volume_writer import (
    brain3d_description,
    ct_description,
    write_brain_mask,
    write_brain_volume,
    write_ct_mask,
    write_ct_volume,
)

FIRST_UNSEEN = 100_000  # cohort index of the first held-out patient: datasets are written from index 0


def _write_image_png(path: Path, image: np.ndarray) -> None:
    write_png(path, image, bit_depth=16)


def _write_mask_png(path: Path, mask: np.ndarray) -> None:
    write_png(path, mask.astype(np.float32), bit_depth=8)


@dataclass(frozen=True)
class ImageFiles:
    """How a kind's renders are stored: folder and suffix of the images, the two writers, dataset.json extras."""

    folder: str  # "images" (2-D PNG) or "volumes" (3-D NIfTI)
    suffix: str
    write_image: Callable[[Path, np.ndarray], None]
    write_mask: Callable[[Path, np.ndarray], None]  # bool mask → 0/1 (NIfTI) or 0/255 (PNG) file
    describe: Callable[[int], dict[str, object]]  # size → extra dataset.json fields


def _no_extras(size: int) -> dict[str, object]:
    return {}


PNG_FILES = ImageFiles("images", ".png", _write_image_png, _write_mask_png, _no_extras)
NIFTI_FILES = ImageFiles("volumes", ".nii.gz", write_ct_volume, write_ct_mask, ct_description)
BRAIN_NIFTI_FILES = ImageFiles("volumes", ".nii.gz", write_brain_volume, write_brain_mask, brain3d_description)


@dataclass(frozen=True)
class Kind:
    """One generator: subject sampler, renderer, causal factors, clinical row, always-present masks."""

    name: str
    modality: str  # wording used in prompts, e.g. "chest X-ray"
    sample: Callable[[int, int], Any]  # (seed, index) -> subject
    render: Callable[..., Render]  # (subject, size, **factor_overrides) -> Render
    factors: tuple[Factor, ...]
    row: Callable[[Any], dict[str, object]]
    anatomy_masks: tuple[str, ...]  # the first one is the cohort's conditioning mask (mask_path)
    effect_threshold: float = EFFECT_THRESHOLD  # in the image's units: display units (2-D, brain3d), HU (CT)
    files: ImageFiles = PNG_FILES
    default_size: int = 128  # pixels (2-D), in-plane voxels (3-D)
    size_range: tuple[int, int] = (32, 1024)
    dims: int = 2
    display_window: tuple[float, float] = (0.5, 1.0)  # (centre, width) the preview shows: [0, 1]; CT: lung window


KINDS = {
    "cxr": Kind("cxr", "chest X-ray", sample_cxr_subject, render_cxr, CXR_FACTORS, cxr_row, ("lungs", "heart")),
    "brain": Kind(
        "brain",
        "brain MRI",
        sample_brain_subject,
        render_brain,
        BRAIN_FACTORS,
        brain_row,
        ("brain", "ventricles"),
    ),
    "ct": Kind(
        "ct",
        "chest CT",
        sample_ct_subject,
        render_ct,
        CT_FACTORS,
        ct_row,
        ("lungs", "heart", "airways", "bone"),
        effect_threshold=CT_EFFECT_THRESHOLD_HU,
        files=NIFTI_FILES,
        default_size=64,  # 64x64x32: DGM-VLC's 3-D patch size
        size_range=(32, 256),  # a 256x256x128 volume is 8 M voxels; beyond it one subject takes minutes
        dims=3,
        display_window=(-600.0, 1500.0),  # the standard lung window (HU)
    ),
    "brain3d": Kind(
        "brain3d",
        "brain MRI",  # the 2-D cohort's subjects, rows and prompts, rendered as volumes
        sample_brain_subject,
        render_brain3d,
        BRAIN_FACTORS,
        brain_row,
        ("brain", "ventricles"),
        files=BRAIN_NIFTI_FILES,
        default_size=64,  # 64x64x48 voxels of 3.75 mm
        size_range=(32, 256),  # 256x256x192 (0.94 mm) is 12.6 M voxels, finer than the 1 mm template
        dims=3,
    ),
}


def get_kind(name: str) -> Kind:
    """The generator called `name`; unknown names raise ValueError listing the choices."""
    if name not in KINDS:
        raise ValueError(f"unknown synthetic dataset kind {name!r}; choose from {sorted(KINDS)}")
    return KINDS[name]


def unseen_patients(kind: str, n: int, *, seed: int, size: int) -> list[tuple[Any, Render, dict[str, object]]]:
    """(subject, render, clinical row) of the first `n` patients of cohort `seed` that no written dataset holds."""
    generator = get_kind(kind)
    subjects = [generator.sample(seed, FIRST_UNSEEN + index) for index in range(n)]
    return [(subject, generator.render(subject, size), generator.row(subject)) for subject in subjects]
