"""Brain MRI subjects: the structural causal model that samples factors, anatomy and lesion geometry.

Causal graph (terms of logistic prevalence models; log-odds per unit):

    age ──► alzheimers_disease ◄── sex   (+0.09 per year; +0.2 for women, who carry more AD risk)
    age ──► lesion                       (+0.01 per year; tumours and other focal lesions, ~12 %)

Age also acts directly on the image (ventricles, cortex, white-matter signal; see `brain`). Lesion
geometry is sampled for every subject so a counterfactual can add the lesion. Subject i depends
only on (seed, i).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from medcf.data.synthetic.brain_anatomy import SLICES, brain_atlas
from medcf.data.synthetic.factors import AGE_RANGE, Factor, logistic

STREAM = 2  # random-stream tag of brain subjects, so chest and brain subject i never share draws
BRAIN_FACTORS = (
    Factor("age", None),
    Factor("sex", ("F", "M")),
    Factor("lesion", (0, 1)),
    Factor("alzheimers_disease", (0, 1)),
)


@dataclass(frozen=True)
class BrainAnatomy:
    """Per-subject appearance that no factor changes: slice, pose, shape, scanner response, noise."""

    seed: int  # elastic field, bias field, lesion texture and noise realisation
    slice: int  # MNI152 axial voxel index (one of SLICES)
    rotation: float  # degrees
    scale: float  # head size relative to the atlas
    aspect: float  # head length / width relative to the atlas
    shift: tuple[float, float]  # (rows, cols), fraction of the image
    contrast: float
    brightness: float
    gamma: float
    bias: float  # amplitude of the smooth multiplicative bias field (coil sensitivity)
    noise: float  # standard deviation of the complex Gaussian noise (Rician magnitude)


@dataclass(frozen=True)
class BrainGeometry:
    """Where the lesion would be, in atlas (x, y) fractions, and how it looks."""

    lesion_center: tuple[float, float]
    lesion_radius: float
    lesion_signal: float  # T1 signal of the necrotic core
    mass_effect: float  # magnification of the lesion region (tissue pushed aside)


@dataclass(frozen=True)
class BrainSubject:
    """One brain MRI subject: factor values + anatomy + lesion geometry."""

    id: str
    age: float
    sex: str  # "F" | "M"
    lesion: int
    alzheimers_disease: int
    anatomy: BrainAnatomy
    geometry: BrainGeometry


def _factors(rng: np.random.Generator) -> dict[str, object]:
    age = float(np.clip(round(rng.normal(62, 16)), *AGE_RANGE))
    sex = "M" if rng.random() < 0.5 else "F"
    alzheimers = int(rng.random() < logistic(-2.2 + 0.09 * (age - 70) + 0.2 * (sex == "F")))
    lesion = int(rng.random() < logistic(-2.0 + 0.01 * (age - 60)))
    return {"age": age, "sex": sex, "lesion": lesion, "alzheimers_disease": alzheimers}


def _anatomy(rng: np.random.Generator) -> BrainAnatomy:
    return BrainAnatomy(
        seed=int(rng.integers(2**31)),
        slice=int(rng.choice(SLICES)),
        rotation=float(np.clip(rng.normal(0, 4.0), -10, 10)),
        scale=float(rng.uniform(1.0, 1.12)),
        aspect=float(rng.uniform(0.96, 1.04)),
        shift=(float(rng.normal(0, 0.02)), float(rng.normal(0, 0.02))),
        contrast=float(rng.uniform(0.9, 1.1)),
        brightness=float(rng.uniform(-0.03, 0.03)),
        gamma=float(rng.uniform(0.85, 1.15)),
        bias=float(rng.uniform(0.0, 0.12)),
        noise=float(rng.uniform(0.01, 0.03)),
    )


@lru_cache(maxsize=len(SLICES))
def _deep_white_matter(index: int) -> np.ndarray:
    """Atlas pixels (128 px) of a slice deep inside the brain and off the ventricles: where lesions sit."""
    atlas = brain_atlas(index, 128)
    inside = ndimage.binary_erosion(atlas.brain > 0.5, iterations=12)
    return inside & ~ndimage.binary_dilation(atlas.ventricles > 0.5, iterations=4)


def _geometry(rng: np.random.Generator, index: int) -> BrainGeometry:
    candidates = np.argwhere(_deep_white_matter(index))
    row, col = (candidates[rng.integers(len(candidates))] + rng.random(2)) / 128
    return BrainGeometry(
        lesion_center=(float(col), float(row)),
        lesion_radius=float(rng.uniform(0.035, 0.075)),
        lesion_signal=float(rng.uniform(0.15, 0.3)),
        mass_effect=float(rng.uniform(1.1, 1.3)),
    )


def sample_brain_subject(seed: int, index: int) -> BrainSubject:
    """Subject `index` of the cohort drawn with `seed` (deterministic in (seed, index) only)."""
    rng = np.random.default_rng((seed, STREAM, index))
    factors = _factors(rng)
    anatomy = _anatomy(rng)
    return BrainSubject(id=f"brain{index:05d}", anatomy=anatomy, geometry=_geometry(rng, anatomy.slice), **factors)


def brain_row(subject: BrainSubject) -> dict[str, object]:
    """The canonical clinical row of a subject (diagnosis AD / CN follows alzheimers_disease)."""
    return {
        "id": subject.id,
        "patient_id": subject.id,
        "age": subject.age,
        "sex": subject.sex,
        "diagnosis": "AD" if subject.alzheimers_disease else "CN",
        "lesion": subject.lesion,
        "alzheimers_disease": subject.alzheimers_disease,
    }
