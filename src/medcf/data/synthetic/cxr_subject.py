"""Chest X-ray subjects: the structural causal model that samples factors, anatomy and finding geometry.

Causal graph (every arrow is a term of a logistic prevalence model below; log-odds per unit):

    age ──► smoking ◄── sex          ever-smoking more likely in men and older people; older ever-smokers quit
    age ──► cardiomegaly ◄── smoking   (+0.05 per year, +0.4 if ever smoked)
    age ──► nodule ◄── smoking         (+0.03 per year, +0.8 former, +1.5 current)
    age ──► consolidation ◄── smoking  (+0.02 per year, +0.5 current)
    age ──► pleural_effusion ◄── cardiomegaly   (+0.04 per year, +1.5 with cardiomegaly: heart failure)

At age 60 a never-smoker has about 9 % prevalence of each finding; about half the cohort has none.
Finding *geometry* (where the nodule is, which lobe consolidates, which side has the effusion) is
sampled for every subject whether or not the finding is present, so adding it in a counterfactual
is well defined. Subject i depends only on (seed, i), never on how many subjects are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from medcf.data.synthetic.cxr_anatomy import LEFT_LUNG, RIGHT_LUNG
from medcf.data.synthetic.factors import AGE_RANGE, Factor, logistic
from medcf.data.synthetic.warp import rasterize_polygon

STREAM = 1  # random-stream tag of chest subjects, so chest and brain subject i never share draws
SMOKING = ("never", "former", "current")
CXR_FACTORS = (
    Factor("age", None),
    Factor("sex", ("F", "M")),
    Factor("smoking", SMOKING),
    Factor("nodule", (0, 1)),
    Factor("consolidation", (0, 1)),
    Factor("pleural_effusion", (0, 1)),
    Factor("cardiomegaly", (0, 1)),
)
# Lobar regions a consolidation is centred in: (x, y, radius x, radius y) fractions of the atlas.
LOBES = (
    (0.22, 0.25, 0.08, 0.07),  # right upper lobe
    (0.27, 0.55, 0.07, 0.07),  # right middle lobe
    (0.18, 0.65, 0.09, 0.07),  # right lower lobe
    (0.74, 0.27, 0.08, 0.07),  # left upper lobe
    (0.84, 0.65, 0.06, 0.08),  # left lower lobe
)


@dataclass(frozen=True)
class CxrAnatomy:
    """Per-subject appearance that no factor changes: pose, shape, exposure, noise."""

    seed: int  # elastic field, textures and noise realisation
    rotation: float  # degrees
    scale: float  # thorax size relative to the atlas
    aspect: float  # thorax height / width relative to the atlas
    shift: tuple[float, float]  # (rows, cols), fraction of the image
    heart_scale: float  # heart size relative to the atlas heart
    contrast: float
    brightness: float
    gamma: float  # detector / processing response
    noise: float  # standard deviation of quantum noise, display units


@dataclass(frozen=True)
class CxrGeometry:
    """Where each finding would be, in atlas (x, y) fractions; used when the finding is present."""

    nodule_center: tuple[float, float]
    nodule_radius: float
    nodule_density: float
    consolidation_center: tuple[float, float]
    consolidation_radii: tuple[float, float]
    consolidation_density: float  # fraction of the way to water density at the patch centre
    effusion_side: str  # "right" | "left" | "both" (patient's side)
    effusion_height: float  # fluid height above the costophrenic angle, fraction of the image
    cardiomegaly_magnification: float  # heart enlargement factor when cardiomegaly is present


@dataclass(frozen=True)
class CxrSubject:
    """One chest X-ray subject: factor values + anatomy + finding geometry."""

    id: str
    age: float
    sex: str  # "F" | "M"
    smoking: str  # "never" | "former" | "current"
    nodule: int
    consolidation: int
    pleural_effusion: int
    cardiomegaly: int
    anatomy: CxrAnatomy
    geometry: CxrGeometry


def _factors(rng: np.random.Generator) -> dict[str, object]:
    """Sample the factors along the causal graph of the module docstring."""
    age = float(np.clip(round(rng.normal(58, 17)), *AGE_RANGE))
    sex = "M" if rng.random() < 0.5 else "F"
    ever = rng.random() < logistic(-0.4 + 0.4 * (sex == "M") + 0.01 * (age - 50))
    former = rng.random() < logistic((age - 45) / 10)
    smoking = "never" if not ever else "former" if former else "current"
    cardiomegaly = int(rng.random() < logistic(-2.3 + 0.05 * (age - 60) + 0.4 * ever))
    nodule = int(
        rng.random() < logistic(-2.4 + 0.03 * (age - 60) + 0.8 * (smoking == "former") + 1.5 * (smoking == "current"))
    )
    consolidation = int(rng.random() < logistic(-2.3 + 0.02 * (age - 60) + 0.5 * (smoking == "current")))
    effusion = int(rng.random() < logistic(-2.6 + 0.04 * (age - 60) + 1.5 * cardiomegaly))
    return {
        "age": age,
        "sex": sex,
        "smoking": smoking,
        "nodule": nodule,
        "consolidation": consolidation,
        "pleural_effusion": effusion,
        "cardiomegaly": cardiomegaly,
    }


def _anatomy(rng: np.random.Generator) -> CxrAnatomy:
    return CxrAnatomy(
        seed=int(rng.integers(2**31)),
        rotation=float(np.clip(rng.normal(0, 2.0), -5, 5)),
        scale=float(rng.uniform(0.99, 1.07)),
        aspect=float(rng.uniform(0.95, 1.05)),
        shift=(float(rng.normal(0, 0.015)), float(rng.normal(0, 0.015))),
        heart_scale=float(rng.uniform(0.94, 1.06)),
        contrast=float(rng.uniform(0.85, 1.15)),
        brightness=float(rng.uniform(-0.04, 0.04)),
        gamma=float(rng.uniform(0.85, 1.2)),
        noise=float(rng.uniform(0.006, 0.018)),
    )


@lru_cache(maxsize=8)
def _lung_interior(margin: float) -> np.ndarray:
    """Atlas pixels (128 px) at least `margin` (fraction) inside either lung outline."""
    size = 128
    lungs = np.maximum(rasterize_polygon(RIGHT_LUNG, size), rasterize_polygon(LEFT_LUNG, size)) > 0.5
    return ndimage.binary_erosion(lungs, iterations=max(1, round(margin * size)))


def _geometry(rng: np.random.Generator) -> CxrGeometry:
    radius = float(rng.uniform(0.015, 0.035))
    candidates = np.argwhere(_lung_interior(round(radius + 0.015, 2)))
    row, col = (candidates[rng.integers(len(candidates))] + rng.random(2)) / 128
    lobe = LOBES[rng.integers(len(LOBES))]
    jitter = rng.uniform(-0.02, 0.02, 2)
    return CxrGeometry(
        nodule_center=(float(col), float(row)),
        nodule_radius=radius,
        nodule_density=float(rng.uniform(0.14, 0.24)),
        consolidation_center=(lobe[0] + float(jitter[0]), lobe[1] + float(jitter[1])),
        consolidation_radii=(lobe[2] * float(rng.uniform(1.0, 1.4)), lobe[3] * float(rng.uniform(1.0, 1.4))),
        consolidation_density=float(rng.uniform(0.45, 0.8)),
        effusion_side=str(rng.choice(["right", "left", "both"], p=[0.45, 0.25, 0.30])),
        effusion_height=float(rng.uniform(0.08, 0.18)),
        cardiomegaly_magnification=float(rng.uniform(1.18, 1.32)),
    )


def sample_cxr_subject(seed: int, index: int) -> CxrSubject:
    """Subject `index` of the cohort drawn with `seed` (deterministic in (seed, index) only)."""
    rng = np.random.default_rng((seed, STREAM, index))
    factors = _factors(rng)
    return CxrSubject(id=f"cxr{index:05d}", anatomy=_anatomy(rng), geometry=_geometry(rng), **factors)


def cxr_row(subject: CxrSubject) -> dict[str, object]:
    """The canonical clinical row of a subject (findings as 1/0; no_finding when none is present)."""
    findings = {
        name: getattr(subject, name) for name in ("nodule", "consolidation", "pleural_effusion", "cardiomegaly")
    }
    return {
        "id": subject.id,
        "patient_id": subject.id,
        "age": subject.age,
        "sex": subject.sex,
        "smoking": subject.smoking,
        "view": "PA",
        **findings,
        "no_finding": int(not any(findings.values())),
    }
