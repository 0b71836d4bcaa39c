"""Semi-synthetic axial T1-weighted brain MRI with exact counterfactuals, built on nilearn's MNI152 template.

``render_brain(subject, size, **factor_overrides)`` is pure, like ``render_cxr``: a counterfactual is
the same call with one factor changed (same slice, deformation, bias field and noise). Image
formation: atlas slice sampled through the subject's deformation (ventricles and lesion warped in
place) → tissue effects → lesion signal → bias field and scanner response → Rician noise.

Effects (T1 signal in display units; age fraction a = clip((age - 20) / 70, 0, 1)):

    factor              effect                                        magnitude
    age                 lateral ventricles enlarged in place          x(1 + 0.004 (age - 20)) per axis
                        (ex-vacuo ventriculomegaly of ageing)
    age                 cortex at sulcal CSF darkened towards CSF     45 % a of the way (cortical thinning,
                                                                      sulcal widening)
    age                 white-matter signal lowered                   -0.06 a (grey/white contrast falls)
    sex = F             whole head smaller                            scale x0.95 (intracranial volume)
    lesion              T1-hypointense core, bright rim, oedema,      core signal 0.15-0.3, radius 3.5-7.5 %
                        mass effect (glioma / metastasis-like)        of the image, tissue pushed x1.1-1.3
    alzheimers_disease  ventricles enlarged further; temporo-         ventricles x1.12; cortex 60 % of the
                        parietal cortex thinned (AD atrophy pattern)  way to CSF at the regions' centres

Masks: ``brain`` and ``ventricles`` always; ``lesion`` (core) and ``alzheimers_disease`` (thinned
cortex + added ventricle area) where present.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from medcf.data.synthetic.brain_anatomy import BrainAtlas, brain_atlas
from medcf.data.synthetic.brain_subject import BRAIN_FACTORS, BrainAnatomy, BrainGeometry, BrainSubject
from medcf.data.synthetic.factors import Render, with_factors
from medcf.data.synthetic.warp import anatomy_coordinates, magnify, sample, smooth_field

FEMALE_SCALE = 0.95
ELASTIC = 0.008
CORTICAL_THINNING = 0.45  # share of the way from grey-matter to CSF signal at 90 years, at the sulci
WHITE_MATTER_LOSS = 0.06
VENTRICLE_GROWTH = 0.004  # linear ventricle enlargement per year after 20 (×1.28 at 90)
AD_VENTRICLES = 1.12
AD_THINNING = 0.6
# Temporo-parietal regions (row, col, radius row, radius col) where AD atrophy concentrates, both hemispheres.
AD_REGIONS = ((0.62, 0.24, 0.16, 0.14), (0.62, 0.76, 0.16, 0.14))
CSF_SIGNAL = 0.1
OEDEMA_SIGNAL = 0.35  # vasogenic oedema around a lesion is T1-hypointense
RIM_BRIGHTENING = 0.25  # signal added at the lesion margin (enhancing-like rim)


@dataclass(frozen=True)
class _Pose:
    points: np.ndarray  # (2, size, size) atlas points of the output pixels
    bias: np.ndarray  # (size, size) multiplicative coil-sensitivity field
    noise: np.ndarray  # (2, size, size) real and imaginary unit Gaussian noise


@lru_cache(maxsize=8)
def _pose(anatomy: BrainAnatomy, size: int, sex: str) -> _Pose:
    """The subject's deformation, bias field and noise at `size`; sex enters only through head size."""
    rng = np.random.default_rng((anatomy.seed, size))
    scale = anatomy.scale * (FEMALE_SCALE if sex == "F" else 1.0)
    points = anatomy_coordinates(
        size,
        rotation=anatomy.rotation,
        scale=(scale * anatomy.aspect, scale),
        shift=anatomy.shift,
        elastic=ELASTIC,
        rng=rng,
    )
    bias = 1.0 + anatomy.bias * smooth_field(rng, 3, size)
    noise = rng.standard_normal((2, size, size)).astype(np.float32)
    for array in (points, bias, noise):
        array.flags.writeable = False  # cached and shared between renders
    return _Pose(points, bias, noise)


def ventricle_magnification(age: float, alzheimers: int) -> float:
    """Linear enlargement of the lateral ventricles for an age (years) and AD status."""
    return (1.0 + VENTRICLE_GROWTH * max(age - 20.0, 0.0)) * (AD_VENTRICLES if alzheimers else 1.0)


def _warped_points(pose: _Pose, atlas: BrainAtlas, subject: BrainSubject, alzheimers: int) -> np.ndarray:
    """Atlas points after the ventricle enlargement (age, AD) and the lesion's mass effect."""
    growth = ventricle_magnification(subject.age, alzheimers)
    points = magnify(pose.points, atlas.ventricle_center, atlas.ventricle_radii, (growth, growth), support=1.6)
    if subject.lesion:
        x, y = subject.geometry.lesion_center
        radius = subject.geometry.lesion_radius
        mass = subject.geometry.mass_effect
        points = magnify(points, (y, x), (radius, radius), (mass, mass), support=2.5)
    return points


def _ad_weight(points: np.ndarray) -> np.ndarray:
    """Weight (0-1) of the temporo-parietal regions where Alzheimer-type cortical atrophy concentrates."""
    weight = np.zeros(points.shape[1:], np.float32)
    for row, col, radius_row, radius_col in AD_REGIONS:
        rho2 = ((points[0] - row) / radius_row) ** 2 + ((points[1] - col) / radius_col) ** 2
        weight = np.maximum(weight, np.exp(-rho2))
    return weight


def _lesion(points: np.ndarray, geometry: BrainGeometry, seed: int) -> tuple[np.ndarray, ...]:
    """Lesion weights over a lobulated outline: (necrotic core, bright rim, oedema, mask)."""
    x, y = geometry.lesion_center
    rho = np.sqrt((points[1] - x) ** 2 + (points[0] - y) ** 2) / geometry.lesion_radius
    angle = np.arctan2(points[0] - y, points[1] - x)
    phases = np.random.default_rng((seed, 11)).uniform(0, 2 * np.pi, 3)
    outline = 1.0 + 0.12 * sum(np.cos((k + 2) * angle + phase) for k, phase in enumerate(phases))
    rho = rho / outline
    core = 1.0 / (1.0 + np.exp(np.clip((rho - 0.8) / 0.05, -50, 50)))
    rim = np.exp(-(((rho - 0.92) / 0.08) ** 2))
    oedema = 0.3 * np.exp(-(((rho - 1.0) / 0.5) ** 2)) * (rho < 2.2)  # compact: nothing beyond 2.2 radii
    return core, rim, oedema, rho < 1.0


def _signal(subject: BrainSubject, atlas: BrainAtlas, points: np.ndarray, masks: dict[str, np.ndarray]) -> np.ndarray:
    """Atlas T1 signal at these points with every factor's tissue effect; fills the finding masks."""
    age_fraction = np.clip((subject.age - 20.0) / 70.0, 0.0, 1.0)
    image = sample(atlas.image, points, mode="constant")
    cortex = sample(atlas.cortex, points, mode="constant")
    thinning = CORTICAL_THINNING * age_fraction * cortex
    if subject.alzheimers_disease:
        regional = AD_THINNING * _ad_weight(points) * cortex
        thinning = np.clip(thinning + regional, 0.0, 0.9)
        masks["alzheimers_disease"] |= (regional > 0.1) & masks["brain"]
    image = image - thinning * (image - CSF_SIGNAL)
    image = image - WHITE_MATTER_LOSS * age_fraction * sample(atlas.white, points, mode="constant")
    if subject.lesion:
        core, rim, oedema, masks["lesion"] = _lesion(points, subject.geometry, subject.anatomy.seed)
        image = image - oedema * (image - OEDEMA_SIGNAL)
        image = image + core * (subject.geometry.lesion_signal - image) + RIM_BRIGHTENING * rim * (1 - core)
    return image


def expose(signal: np.ndarray, anatomy: BrainAnatomy, pose: _Pose) -> np.ndarray:
    """Coil bias and scanner response, then Rician noise (|complex Gaussian|) from the shared realisation; 2-D and
    3-D alike (`pose` holds the bias field and the two noise fields at the output's shape)."""
    linear = np.clip(anatomy.contrast * (signal * pose.bias - 0.5) + 0.5 + anatomy.brightness, 0.0, 1.0)
    response = linear**anatomy.gamma
    magnitude = np.hypot(response + anatomy.noise * pose.noise[0], anatomy.noise * pose.noise[1])
    return np.clip(magnitude, 0.0, 1.0).astype(np.float32)


def render_brain(subject: BrainSubject, size: int, **factor_overrides: object) -> Render:
    """Image (size, size) float32 in [0, 1] and masks of `subject` with some factors overridden."""
    subject = with_factors(subject, BRAIN_FACTORS, factor_overrides)
    atlas = brain_atlas(subject.anatomy.slice, size)
    pose = _pose(subject.anatomy, size, subject.sex)
    points = _warped_points(pose, atlas, subject, subject.alzheimers_disease)
    ventricles = sample(atlas.ventricles, points, mode="constant") > 0.5
    masks = {"brain": sample(atlas.brain, points, mode="constant") > 0.5, "ventricles": ventricles}
    if subject.alzheimers_disease:
        without = sample(atlas.ventricles, _warped_points(pose, atlas, subject, 0), mode="constant") > 0.5
        masks["alzheimers_disease"] = ventricles & ~without
    signal = _signal(subject, atlas, points, masks)
    return Render(image=expose(signal, subject.anatomy, pose), masks=masks)
