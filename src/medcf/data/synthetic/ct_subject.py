"""Chest CT subjects: the structural causal model that samples factors, body habitus and finding geometry.

Causal graph (every arrow is a term of a logistic prevalence model below; log-odds per unit):

    age ──► smoking ◄── sex            ever-smoking more likely in men and older people; older ever-smokers quit
    age ──► nodule ◄── smoking          (+0.03 per year, +0.8 former, +1.5 current)
    age ──► consolidation ◄── smoking   (+0.02 per year, +0.5 current)
    age ──► pleural_effusion ◄── consolidation   (+0.04 per year, +1.2 with consolidation: parapneumonic)

Emphysema is not a factor: it is smoking's mechanism in the lung (see `ct`), so it changes with smoking.
Finding *geometry* (where the nodule is, which lobe consolidates, which side has the effusion) is sampled
for every subject whether or not the finding is present, in coordinates relative to the subject's own
lung, so adding a finding in a counterfactual is well defined and survives a change of body size (sex).
Subject i depends only on (seed, i), never on how many subjects are generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcf.data.synthetic.factors import AGE_RANGE, Factor, logistic

STREAM = 3  # random-stream tag of chest CT subjects (chest X-ray is 1): subject i never shares draws
SMOKING = ("never", "former", "current")
CT_FACTORS = (
    Factor("age", None),
    Factor("sex", ("F", "M")),
    Factor("smoking", SMOKING),
    Factor("nodule", (0, 1)),
    Factor("consolidation", (0, 1)),
    Factor("pleural_effusion", (0, 1)),
)
# Lobe centres in lung coordinates (lateral, anterior, superior; the lung ellipsoid is the unit ball).
LOBES = (
    ("right", (0.0, 0.05, 0.55)),  # right upper lobe
    ("right", (0.1, 0.5, -0.1)),  # right middle lobe (anterior)
    ("right", (0.0, -0.35, -0.35)),  # right lower lobe (posterior, basal)
    ("left", (0.1, 0.1, 0.5)),  # left upper lobe
    ("left", (0.0, -0.35, -0.35)),  # left lower lobe
)


@dataclass(frozen=True)
class CtAnatomy:
    """Per-subject habitus and scanner realisation that no factor changes."""

    seed: int  # textures (vessels, emphysema field, lobar margins) and the noise realisation
    body_scale: float  # body width relative to a 300 mm-wide male thorax
    aspect: float  # antero-posterior / lateral diameter relative to the phantom's 0.7
    fat_mm: float  # subcutaneous fat thickness
    lung_scale: float  # lung size relative to the body
    heart_scale: float
    shift_mm: tuple[float, float, float]  # patient position in the field of view (x, y, z)
    parenchyma_hu: float  # healthy young lung attenuation: depth of inspiration varies it
    noise_hu: float  # standard deviation of the (smoothed) quantum noise


@dataclass(frozen=True)
class CtGeometry:
    """Where each finding would be; used when the finding is present."""

    nodule_side: str  # "right" | "left" (patient's side)
    nodule_center: tuple[float, float, float]  # lung coordinates (lateral, anterior, superior)
    nodule_radius_mm: float
    nodule_hu: float
    consolidation_lobe: int  # index into LOBES
    consolidation_radii: tuple[float, float, float]  # lung coordinates
    consolidation_hu: float  # attenuation of the filled airspaces
    effusion_side: str  # "right" | "left" | "both"
    effusion_depth_mm: float  # fluid thickness at the posterior lung base
    effusion_hu: float


@dataclass(frozen=True)
class CtSubject:
    """One chest CT subject: factor values + anatomy + finding geometry."""

    id: str
    age: float
    sex: str  # "F" | "M"
    smoking: str  # "never" | "former" | "current"
    nodule: int
    consolidation: int
    pleural_effusion: int
    anatomy: CtAnatomy
    geometry: CtGeometry


def _factors(rng: np.random.Generator) -> dict[str, object]:
    """Sample the factors along the causal graph of the module docstring."""
    age = float(np.clip(round(rng.normal(58, 17)), *AGE_RANGE))
    sex = "M" if rng.random() < 0.5 else "F"
    ever = rng.random() < logistic(-0.4 + 0.4 * (sex == "M") + 0.01 * (age - 50))
    former = rng.random() < logistic((age - 45) / 10)
    smoking = "never" if not ever else "former" if former else "current"
    nodule = int(
        rng.random() < logistic(-2.4 + 0.03 * (age - 60) + 0.8 * (smoking == "former") + 1.5 * (smoking == "current"))
    )
    consolidation = int(rng.random() < logistic(-2.3 + 0.02 * (age - 60) + 0.5 * (smoking == "current")))
    effusion = int(rng.random() < logistic(-2.6 + 0.04 * (age - 60) + 1.2 * consolidation))
    return {
        "age": age,
        "sex": sex,
        "smoking": smoking,
        "nodule": nodule,
        "consolidation": consolidation,
        "pleural_effusion": effusion,
    }


def _anatomy(rng: np.random.Generator) -> CtAnatomy:
    return CtAnatomy(
        seed=int(rng.integers(2**31)),
        body_scale=float(rng.uniform(0.94, 1.06)),
        aspect=float(rng.uniform(0.93, 1.07)),
        fat_mm=float(rng.uniform(8.0, 25.0)),
        lung_scale=float(rng.uniform(0.92, 1.05)),
        heart_scale=float(rng.uniform(0.9, 1.12)),
        shift_mm=tuple(float(value) for value in rng.uniform(-6.0, 6.0, 3)),
        parenchyma_hu=float(rng.uniform(-885.0, -855.0)),
        noise_hu=float(rng.uniform(15.0, 25.0)),
    )


def _geometry(rng: np.random.Generator) -> CtGeometry:
    # Nodules sit in the lateral, mid-to-upper lung: always inside the lung whatever the heart or dome.
    lateral, anterior, superior = rng.uniform(0.15, 0.45), rng.uniform(-0.35, 0.35), rng.uniform(-0.05, 0.45)
    return CtGeometry(
        nodule_side=str(rng.choice(["right", "left"])),
        nodule_center=(float(lateral), float(anterior), float(superior)),
        nodule_radius_mm=float(rng.uniform(6.0, 14.0)),  # 12-28 mm diameter: solid nodules below mass size (30 mm)
        nodule_hu=float(rng.uniform(20.0, 60.0)),
        consolidation_lobe=int(rng.integers(len(LOBES))),
        consolidation_radii=tuple(float(value) for value in rng.uniform(0.45, 0.65, 3)),
        consolidation_hu=float(rng.uniform(0.0, 40.0)),
        effusion_side=str(rng.choice(["right", "left", "both"], p=[0.45, 0.25, 0.30])),
        effusion_depth_mm=float(rng.uniform(15.0, 40.0)),
        effusion_hu=float(rng.uniform(5.0, 15.0)),  # transudate; exudates run higher
    )


def sample_ct_subject(seed: int, index: int) -> CtSubject:
    """Subject `index` of the cohort drawn with `seed` (deterministic in (seed, index) only)."""
    rng = np.random.default_rng((seed, STREAM, index))
    factors = _factors(rng)
    return CtSubject(id=f"ct{index:05d}", anatomy=_anatomy(rng), geometry=_geometry(rng), **factors)


def ct_row(subject: CtSubject) -> dict[str, object]:
    """The canonical clinical row of a subject (findings as 1/0), the columns of the chest X-ray cohort."""
    return {
        "id": subject.id,
        "patient_id": subject.id,
        "age": subject.age,
        "sex": subject.sex,
        "smoking": subject.smoking,
        "nodule": subject.nodule,
        "consolidation": subject.consolidation,
        "pleural_effusion": subject.pleural_effusion,
    }
