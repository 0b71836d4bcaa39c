"""Semi-synthetic PA chest X-rays with exact counterfactuals, built on the real radiograph RG1_UNCR.dcm.

``render_cxr(subject, size, **factor_overrides)`` is a pure function: the same subject and factor
values give the same image bit for bit, and a counterfactual is the same call with one factor changed
(same anatomy, same elastic field, same noise). Image formation: atlas density (cleaned radiograph)
sampled through the subject's deformation → factor effects added as densities → pleural fluid blended
in → characteristic curve (sigmoid) and gamma → additive quantum noise.

Effects (densities in display units, 1 = white, added before the characteristic curve):

    factor            effect                                         magnitude
    age               rib/clavicle density lowered (osteopenia)      -35 % of bone contrast, 90 vs 20 years
    age               heart widened (cardiothoracic ratio rises)     x(1 + 0.0015 (age - 50)), 40 % in height
    sex = F           breast shadows over both lower zones           +0.07, sharp curved inferior margin
    sex = F           smaller thorax                                 scale x0.96
    smoking           diffuse lung density: shift + reticulation     (+0.06 + 0.04 texture) x 0 / 0.5 / 1 for
                      (DGM-VLC: smoking shifts lung intensity;       never / former / current, lungs only
                      bronchial wall thickening, "dirty lung")
    nodule            solid round opacity, projected-sphere profile  +0.14-0.24, radius 1.5-3.5 % (< 3 cm)
    consolidation     lobar airspace opacity, ill-defined margin,    45-80 % of the way to water density,
                      mottled, air bronchograms (pneumonia)          lobe-sized, lung only
    pleural_effusion  water density over the hemidiaphragm rising    layer 8-18 % of the image high at the
                      to a lateral meniscus; blunted CP angle        chest wall, 40 % of that medially
    cardiomegaly      cardiac silhouette widened, mostly leftward    x1.18-1.32 width (CTR > 0.5)

Masks: ``lungs`` and ``heart`` always; ``nodule``, ``consolidation``, ``pleural_effusion`` where
present; ``cardiomegaly`` = heart region added by the enlargement. Not modelled: aortic unfolding,
emphysematous hyperinflation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from medcf.data.synthetic import cxr_findings as findings
from medcf.data.synthetic.cxr_anatomy import cxr_atlas
from medcf.data.synthetic.cxr_subject import CXR_FACTORS, SMOKING, CxrAnatomy, CxrSubject
from medcf.data.synthetic.factors import Render, with_factors
from medcf.data.synthetic.warp import anatomy_coordinates, magnify, sample

FEMALE_SCALE = 0.96
OSTEOPENIA = 0.35  # fraction of bone contrast lost between 20 and 90 years
# (row, col) centre of the heart's enlargement, right of its middle: it grows mostly to the patient's left.
HEART_CENTER = (0.64, 0.50)
HEART_RADII = (0.19, 0.32)  # covers the whole atlas heart, so its borders move by the full factor
ELASTIC = 0.012  # displacement amplitude of the elastic field, fraction of the image


@dataclass(frozen=True)
class _Anatomy:
    """Atlas channels sampled through one subject's deformation: shared by renders with the same geometry."""

    points: np.ndarray  # (2, size, size) atlas points of the output pixels, heart warp included
    image: np.ndarray
    bone: np.ndarray
    lungs: dict[str, np.ndarray]  # soft masks of the patient's "right" and "left" lung
    heart: np.ndarray  # bool
    reticulation: np.ndarray  # the subject's smoking texture
    noise: np.ndarray  # unit Gaussian noise realisation


@lru_cache(maxsize=8)
def _pose(anatomy: CxrAnatomy, size: int, sex: str) -> tuple[np.ndarray, np.ndarray]:
    """The subject's deformation (atlas points) and noise at `size`; sex acts only via the thorax scale."""
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
    return points, rng.standard_normal((size, size)).astype(np.float32)


@lru_cache(maxsize=12)  # one subject's renders touch at most ~8 (pose, heart width) pairs
def _anatomy(anatomy: CxrAnatomy, size: int, sex: str, heart_width: float) -> _Anatomy:
    """Sample the atlas for one pose and heart width (cached: most counterfactuals keep both)."""
    atlas = cxr_atlas(size)
    pose_points, noise = _pose(anatomy, size, sex)
    points = magnify(
        pose_points, HEART_CENTER, HEART_RADII, (1.0 + 0.4 * (heart_width - 1.0), heart_width), support=1.35
    )
    sampled = _Anatomy(
        points=points,
        image=sample(atlas.image, points),
        bone=sample(atlas.bone, points),
        lungs={
            side: sample(mask, points, mode="constant")
            for side, mask in (("right", atlas.right_lung), ("left", atlas.left_lung))
        },
        heart=sample(atlas.heart, points, mode="constant") > 0.5,
        reticulation=sample(findings.texture_fields(anatomy.seed)["reticulation"], points),
        noise=noise,
    )
    arrays = [value for value in vars(sampled).values() if isinstance(value, np.ndarray)]
    for array in [*arrays, *sampled.lungs.values()]:
        array.flags.writeable = False  # cached and shared between renders
    return sampled


def _heart_width(subject: CxrSubject, cardiomegaly: int) -> float:
    """Heart width relative to the atlas: the subject's own, age (+0.15 % per year over 50), cardiomegaly."""
    width = subject.anatomy.heart_scale * (1.0 + 0.0015 * (subject.age - 50.0))
    return width * (subject.geometry.cardiomegaly_magnification if cardiomegaly else 1.0)


def _density(subject: CxrSubject, soft_tissue: float, sampled: _Anatomy, masks: dict[str, np.ndarray]) -> np.ndarray:
    """Atlas density plus every factor's effect; fills the finding masks."""
    age_fraction = np.clip((subject.age - 20.0) / 70.0, 0.0, 1.0)
    density = sampled.image - OSTEOPENIA * age_fraction * sampled.bone
    points, lungs = sampled.points, sampled.lungs
    both_lungs = np.maximum(lungs["right"], lungs["left"])
    if subject.sex == "F":
        density = density + findings.breast_density(points)
    level = SMOKING.index(subject.smoking) / 2
    density = density + findings.smoking_density(both_lungs, sampled.reticulation, level)
    if subject.nodule:
        opacity, masks["nodule"] = findings.nodule(points, subject.geometry)
        density = density + opacity
    if subject.consolidation:
        filling, masks["consolidation"] = findings.consolidation(
            points, both_lungs, subject.geometry, subject.anatomy.seed
        )
        density = density + filling * (soft_tissue - density)
    if subject.pleural_effusion:
        fluid = findings.effusion_weight(points, lungs, subject.geometry)
        density = density + fluid * (soft_tissue - density)
        masks["pleural_effusion"] = fluid > 0.5
    return density


def _expose(density: np.ndarray, anatomy: CxrAnatomy, noise: np.ndarray) -> np.ndarray:
    """Film/detector characteristic curve, then quantum noise (the subject's own, shared by all renders).

    The curve is a sigmoid rescaled to map density 0 → 0 and 1 → 1 (an H&D curve's toe and shoulder):
    strictly increasing, so a density change never vanishes in a saturated region.
    """
    steepness = 3.0 * anatomy.contrast
    low, high = _sigmoid(-steepness / 2), _sigmoid(steepness / 2)
    response = (_sigmoid(steepness * (density - 0.5 + anatomy.brightness)) - low) / (high - low)
    noisy = np.clip(response, 0.0, 1.0) ** anatomy.gamma + anatomy.noise * noise
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def _sigmoid(values: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(values, dtype=np.float32)))


def render_cxr(subject: CxrSubject, size: int, **factor_overrides: object) -> Render:
    """Image (size, size) float32 in [0, 1] and masks of `subject` with some factors overridden."""
    subject = with_factors(subject, CXR_FACTORS, factor_overrides)
    sampled = _anatomy(subject.anatomy, size, subject.sex, _heart_width(subject, subject.cardiomegaly))
    lungs = np.maximum(sampled.lungs["right"], sampled.lungs["left"]) > 0.5
    masks = {"lungs": lungs, "heart": sampled.heart.copy()}
    if subject.cardiomegaly:
        normal = _anatomy(subject.anatomy, size, subject.sex, _heart_width(subject, 0))
        masks["cardiomegaly"] = sampled.heart & ~normal.heart
    density = _density(subject, cxr_atlas(size).soft_tissue, sampled, masks)
    return Render(image=_expose(density, subject.anatomy, sampled.noise), masks=masks)
