"""Semi-synthetic 3-D T1-weighted brain MRI volumes with exact counterfactuals, built on nilearn's MNI152 template.

The volume twin of `brain`: the same subjects (`brain_subject`), factors, rows and effect sizes, with
every effect made in three dimensions. ``render_brain3d(subject, size, **factor_overrides)`` is pure: a
counterfactual is the same call with one factor changed (same pose, deformation, bias field and noise).
Volume formation: atlas (`brain3d_anatomy`) sampled through the subject's pose (`brain3d_pose`) with
the ventricles and the lesion warped in place → tissue effects → lesion signal → bias field and scanner
response → Rician noise. Output: (size, size, 3 size / 4) float32 in display units [0, 1], RAS+ voxel
order, 3.75 mm isotropic voxels at the default size 64.

Effects (T1 signal in display units; age fraction a = clip((age - 20) / 70, 0, 1)):

    factor              effect                                        magnitude
    age                 lateral ventricles enlarged in place, in 3-D  x(1 + 0.004 (age - 20)) per axis
                        (ex-vacuo ventriculomegaly of ageing)
    age                 cortex at sulcal CSF darkened towards CSF     45 % a of the way (cortical thinning)
    age                 white-matter signal lowered                   -0.06 a
    sex = F             whole head smaller                            scale x0.95 (intracranial volume)
    lesion              lobulated sphere: T1-hypointense core,        core signal 0.15-0.3, radius 8-17 mm,
                        bright rim, oedema, 3-D mass effect           tissue pushed x1.1-1.3; where the 2-D
                                                                      cohort puts it (deep white matter)
    alzheimers_disease  ventricles enlarged further; temporo-         ventricles x1.12; cortex 60 % of the
                        parietal cortex thinned, both hemispheres     way to CSF at the regions' centres

Masks: ``brain`` and ``ventricles`` always; ``lesion`` (core) and ``alzheimers_disease`` (thinned
cortex + added ventricle volume) where present.
"""

from __future__ import annotations

import numpy as np

from medcf.data.synthetic.brain import (
    AD_THINNING,
    CORTICAL_THINNING,
    CSF_SIGNAL,
    OEDEMA_SIGNAL,
    RIM_BRIGHTENING,
    WHITE_MATTER_LOSS,
    expose,
    ventricle_magnification,
)
from medcf.data.synthetic.brain3d_anatomy import (
    SLICE_SIDE_MM,
    Brain3dAtlas,
    brain3d_atlas,
    lesion_center_mm,
)
from medcf.data.synthetic.brain3d_pose import Pose, magnify, sample, subject_pose
from medcf.data.synthetic.brain_subject import BRAIN_FACTORS, BrainSubject
from medcf.data.synthetic.factors import Render, with_factors

# Temporo-parietal regions (centre, semi-axes; MNI mm) where AD atrophy concentrates: the 2-D cohort's
# regions (slice rows 0.62, columns 0.24 / 0.76) extended from the inferior temporal gyrus to the parietal lobe.
AD_REGIONS_MM = (((60.0, -46.0, 10.0), (33.0, 37.0, 35.0)), ((-60.0, -46.0, 10.0), (33.0, 37.0, 35.0)))
LOBULATION = 0.12  # amplitude of each of the lesion outline's three Chebyshev lobes (as the 2-D outline)


def _warped_points(pose: Pose, atlas: Brain3dAtlas, subject: BrainSubject, alzheimers: int) -> np.ndarray:
    """Atlas points after the ventricle enlargement (age, AD) and the lesion's mass effect."""
    growth = ventricle_magnification(subject.age, alzheimers)
    points = magnify(pose.points, atlas.ventricle_center, atlas.ventricle_radii, growth, support=1.6)
    if subject.lesion:
        radius = subject.geometry.lesion_radius * SLICE_SIDE_MM
        center = lesion_center_mm(subject.geometry, subject.anatomy.slice)
        points = magnify(points, center, (radius,) * 3, subject.geometry.mass_effect, support=2.5)
    return points


def _ad_weight(points: np.ndarray) -> np.ndarray:
    """Weight (0-1) of the temporo-parietal regions where Alzheimer-type cortical atrophy concentrates."""
    weight = np.zeros(points.shape[1:], np.float32)
    for center, radii in AD_REGIONS_MM:
        rho2 = sum(((points[axis] - center[axis]) / radii[axis]) ** 2 for axis in range(3))
        weight = np.maximum(weight, np.exp(-rho2))
    return weight


def _lesion(points: np.ndarray, subject: BrainSubject) -> tuple[np.ndarray, ...]:
    """Lesion weights over a lobulated sphere: (necrotic core, bright rim, oedema, mask)."""
    center = np.asarray(lesion_center_mm(subject.geometry, subject.anatomy.slice), np.float32)
    offset = points - center[:, None, None, None]
    distance = np.sqrt((offset**2).sum(axis=0))
    direction = offset / np.maximum(distance, 1e-6)
    axes = np.random.default_rng((subject.anatomy.seed, 11)).standard_normal((3, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    # Lobes cos(n arccos t) = T_n(t), Chebyshev polynomials of the angle to three random axes: smooth everywhere.
    cosines = np.clip(np.einsum("kj,j...->k...", axes.astype(np.float32), direction), -1.0, 1.0)
    outline = 1.0 + LOBULATION * sum(np.cos((k + 2) * np.arccos(cosines[k])) for k in range(3))
    rho = distance / (subject.geometry.lesion_radius * SLICE_SIDE_MM) / outline
    core = 1.0 / (1.0 + np.exp(np.clip((rho - 0.8) / 0.05, -50, 50)))
    rim = np.exp(-(((rho - 0.92) / 0.08) ** 2))
    oedema = 0.3 * np.exp(-(((rho - 1.0) / 0.5) ** 2)) * (rho < 2.2)  # compact: nothing beyond 2.2 radii
    mask = rho < 1.0
    mask[np.unravel_index(np.argmin(distance), distance.shape)] = True  # a sub-voxel lesion still has a voxel
    return core, rim, oedema, mask


def _signal(subject: BrainSubject, atlas: Brain3dAtlas, points: np.ndarray, masks: dict) -> np.ndarray:
    """Atlas T1 signal at these points with every factor's tissue effect; fills the finding masks."""
    index = atlas.index(points)
    age_fraction = np.clip((subject.age - 20.0) / 70.0, 0.0, 1.0)
    image, cortex = sample(atlas.image, index), sample(atlas.cortex, index)
    thinning = CORTICAL_THINNING * age_fraction * cortex
    if subject.alzheimers_disease:
        regional = AD_THINNING * _ad_weight(points) * cortex
        thinning = np.clip(thinning + regional, 0.0, 0.9)
        masks["alzheimers_disease"] |= (regional > 0.1) & masks["brain"]
    image = image - thinning * (image - CSF_SIGNAL)
    image = image - WHITE_MATTER_LOSS * age_fraction * sample(atlas.white, index)
    if subject.lesion:
        core, rim, oedema, masks["lesion"] = _lesion(points, subject)
        image = image - oedema * (image - OEDEMA_SIGNAL)
        image = image + core * (subject.geometry.lesion_signal - image) + RIM_BRIGHTENING * rim * (1 - core)
    return image


def render_brain3d(subject: BrainSubject, size: int, **factor_overrides: object) -> Render:
    """Volume (size, size, 3 size // 4) float32 in [0, 1], RAS+ voxel order, and masks of `subject`."""
    subject = with_factors(subject, BRAIN_FACTORS, factor_overrides)
    atlas = brain3d_atlas(size)
    pose = subject_pose(subject.anatomy, size, subject.sex)
    points = _warped_points(pose, atlas, subject, subject.alzheimers_disease)
    ventricles = sample(atlas.ventricles, atlas.index(points)) > 0.5
    masks = {"brain": sample(atlas.brain, atlas.index(points)) > 0.5, "ventricles": ventricles}
    if subject.alzheimers_disease:
        without = _warped_points(pose, atlas, subject, 0)
        masks["alzheimers_disease"] = ventricles & ~(sample(atlas.ventricles, atlas.index(without)) > 0.5)
    signal = _signal(subject, atlas, points, masks)
    return Render(image=expose(signal, subject.anatomy, pose), masks=masks)
