"""Semi-synthetic 3-D chest CT volumes in Hounsfield units with exact counterfactuals, on an analytic phantom.

``render_ct(subject, size, **factor_overrides)`` is a pure function: the same subject and factor values
give the same volume bit for bit, and a counterfactual is the same call with one factor changed (same
anatomy, same textures, same noise). The anatomy is the analytic phantom of `ct_anatomy` (no real chest
CT ships with the install). Volume formation: tissues blended by partial-volume occupancy (air −1000,
subcutaneous fat −100, soft tissue and heart 40, bone 700, CSF 10) → the lung field (parenchyma +
vessel texture, then every factor's lung effect) blended into its lung occupancy → correlated Gaussian
noise (15-25 HU) → rounded to whole HU, clipped to [−1024, 3071] (the int16 range scanners store).

Effects (HU; the effect threshold CT_EFFECT_THRESHOLD_HU = 10 HU):

    factor            effect                                          magnitude
    age               lung attenuation falls (loss of elastic recoil,  −1 HU per year over 40
                      "senile" hyperinflation)
    age               bone attenuation falls (osteoporosis; the L1      −2 HU per year over 30
                      trabecular HU of opportunistic CT screening)
    sex = F           smaller body, lungs and heart                    width x0.92, height x0.96
    smoking           diffuse lung attenuation shift (air trapping;    0 / −12 / −24 HU never / former / current
                      DGM-VLC: smoking shifts lung intensity)
    smoking           centrilobular emphysema: clusters of −985 HU,    0 / 2-5 / 6-13 % of lung (LAA−950, COPDGene's
                      upper-lobe predominant, nested former ⊂ current   emphysema index), never < former < current
    nodule            solid sphere in the lateral lung                 radius 6-14 mm, 20-60 HU
    consolidation     lobar airspace filling, ill-defined margin,      0-40 HU, air bronchograms spared
                      air bronchograms (pneumonia)
    pleural_effusion  dependent fluid along the posterior chest wall,  5-15 HU, 15-40 mm deep at the base,
                      deepest at the base (supine: gravity posterior)  none in the upper third

Masks (bool): ``lungs`` (the lung field, findings included: the conditioning mask), ``heart``,
``airways`` (trachea and main bronchi lumen), ``bone`` always; ``nodule``, ``consolidation``,
``pleural_effusion`` where present; ``emphysema`` for former and current smokers.
"""

from __future__ import annotations

import numpy as np

from medcf.data.synthetic.ct_anatomy import LungFrame, Thorax, ct_shape, occupancy, textures, thorax
from medcf.data.synthetic.ct_subject import CT_FACTORS, LOBES, CtSubject
from medcf.data.synthetic.factors import Render, with_factors

CT_EFFECT_THRESHOLD_HU = 10.0  # below a CT's noise (15-25 HU): smaller differences are not an effect
HU_RANGE = (-1024.0, 3071.0)  # what a 12-bit scanner stores
AIR_HU, FAT_HU, SOFT_TISSUE_HU, HEART_HU, CSF_HU = -1000.0, -100.0, 40.0, 40.0, 10.0
BONE_HU = 700.0  # young adult cortical/trabecular mix
VESSEL_HU = 350.0  # peak of the vessel texture over parenchyma (partial volume keeps vessels below blood's 40 HU)
SMOKING_SHIFT_HU = {"never": 0.0, "former": -12.0, "current": -24.0}
EMPHYSEMA_THRESHOLD = {"never": np.inf, "former": 2.0, "current": 1.5}  # emphysema-field level (unit s.d.)
EMPHYSEMA_HU = -985.0  # destroyed alveolar walls: nearly air
UPPER_LOBE_BIAS = 0.9  # emphysema-field lift at the apex (per lung half-height): centrilobular is apical


def _lung_coordinates(body: Thorax, frame: LungFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lateral, anterior, superior) of every voxel relative to one lung ellipsoid (unit ball = the lung)."""
    (cx, cy, cz), (ax, ay, az) = frame.center, frame.semi_axes
    return frame.lateral_sign * (body.x - cx) / ax, (body.y - cy) / ay, (body.z - cz) / az


def _blend(values: np.ndarray, target: np.ndarray | float, weight: np.ndarray) -> np.ndarray:
    """Partial-volume mix: a fraction `weight` of each voxel is `target`."""
    return values + weight * (target - values)


def _parenchyma(subject: CtSubject, body: Thorax, fields: dict[str, np.ndarray], masks: dict) -> np.ndarray:
    """Aerated lung attenuation: the subject's baseline, age and smoking, vessels, emphysema."""
    age_shift = -1.0 * max(subject.age - 40.0, 0.0)
    lung = subject.anatomy.parenchyma_hu + age_shift + SMOKING_SHIFT_HU[subject.smoking]
    lung = lung + VESSEL_HU * fields["vessels"]
    superior = _lung_coordinates(body, body.frames["right"])[2]
    level = fields["emphysema"] + UPPER_LOBE_BIAS * superior
    emphysema = np.clip((level - EMPHYSEMA_THRESHOLD[subject.smoking]) / 0.15, 0.0, 1.0)
    if subject.smoking != "never":
        aerated = np.maximum(body.lungs["right"], body.lungs["left"]) > 0.9  # not the pleural partial volume
        masks["emphysema"] = (emphysema > 0.5) & aerated
    return _blend(lung, EMPHYSEMA_HU, emphysema)


def _nodule(subject: CtSubject, body: Thorax, masks: dict) -> np.ndarray:
    """Occupancy of the nodule sphere; fills masks["nodule"] (at least the voxel at its centre)."""
    geometry = subject.geometry
    frame = body.frames[geometry.nodule_side]
    signs = (frame.lateral_sign, 1.0, 1.0)  # lung coordinates → patient mm
    center = [
        c + s * a * u for c, s, a, u in zip(frame.center, signs, frame.semi_axes, geometry.nodule_center, strict=True)
    ]
    distance = np.sqrt((body.x - center[0]) ** 2 + (body.y - center[1]) ** 2 + (body.z - center[2]) ** 2)
    sphere = occupancy(distance - geometry.nodule_radius_mm, float(body.x[1, 0, 0] - body.x[0, 0, 0]))
    mask = sphere > 0.5
    mask[np.unravel_index(np.argmin(distance), distance.shape)] = True  # a sub-voxel nodule still has a voxel
    masks["nodule"] = mask & masks["lungs"]
    return sphere


def _consolidation(subject: CtSubject, body: Thorax, fields: dict[str, np.ndarray], masks: dict) -> np.ndarray:
    """Fill fraction of a lobar consolidation (ill-defined margin, air bronchograms left aerated)."""
    side, center = LOBES[subject.geometry.consolidation_lobe]
    coordinates = _lung_coordinates(body, body.frames[side])
    radii = subject.geometry.consolidation_radii
    radius = np.sqrt(sum(((p - c) / r) ** 2 for p, c, r in zip(coordinates, center, radii, strict=True)))
    region = np.clip(0.5 - (radius - 1.0 + 0.15 * fields["margin"]) / 0.15, 0.0, 1.0)
    masks["consolidation"] = (region > 0.5) & (body.lungs[side] > 0.5)
    return region * (1.0 - fields["bronchogram"])


def _effusion(subject: CtSubject, body: Thorax, masks: dict) -> np.ndarray:
    """Dependent pleural fluid: a layer along the posterior chest wall, deepest at the lung base."""
    sides = ("right", "left") if subject.geometry.effusion_side == "both" else (subject.geometry.effusion_side,)
    edge = float(body.x[1, 0, 0] - body.x[0, 0, 0])
    fluid = np.zeros(np.broadcast_shapes(body.x.shape, body.y.shape, body.z.shape), np.float32)
    for side in sides:
        frame = body.frames[side]
        lateral, _, superior = _lung_coordinates(body, frame)
        posterior_wall = frame.center[1] - frame.semi_axes[1] * np.sqrt(np.clip(1 - lateral**2 - superior**2, 0, 1))
        depth = subject.geometry.effusion_depth_mm * np.clip(0.3 - superior, 0.0, 1.0)  # gravity: supine → posterior
        layer = occupancy(body.y - posterior_wall - depth, edge) * (depth > 0)
        fluid = np.maximum(fluid, layer * (body.lungs[side] > 0))
    masks["pleural_effusion"] = (fluid > 0.5) & masks["lungs"]
    return fluid


def _lung_field(subject: CtSubject, body: Thorax, fields: dict[str, np.ndarray], masks: dict) -> np.ndarray:
    """Lung attenuation with every factor's effect; fills the finding masks of the findings present."""
    lung = _parenchyma(subject, body, fields, masks)
    if subject.consolidation:
        lung = _blend(lung, subject.geometry.consolidation_hu, _consolidation(subject, body, fields, masks))
    if subject.nodule:
        lung = _blend(lung, subject.geometry.nodule_hu, _nodule(subject, body, masks))
    if subject.pleural_effusion:
        lung = _blend(lung, subject.geometry.effusion_hu, _effusion(subject, body, masks))
    return lung


def render_ct(subject: CtSubject, size: int, **factor_overrides: object) -> Render:
    """Volume (size, size, size // 2) float32 in whole HU, RAS+ voxel order, and masks of `subject`."""
    subject = with_factors(subject, CT_FACTORS, factor_overrides)
    shape = ct_shape(size)
    body = thorax(subject.anatomy, shape, subject.sex)
    fields = textures(subject.anatomy.seed, shape)
    lungs = np.maximum(body.lungs["right"], body.lungs["left"])
    anatomy = {"lungs": lungs, "heart": body.heart, "airways": body.airway_lumen, "bone": body.bone}
    masks = {name: fraction > 0.5 for name, fraction in anatomy.items()}  # lungs first: the conditioning mask
    bone_hu = BONE_HU - 2.0 * max(subject.age - 30.0, 0.0)
    hu = _blend(np.full(shape, AIR_HU, np.float32), FAT_HU, body.body)
    hu = _blend(hu, SOFT_TISSUE_HU, body.soft_tissue)
    hu = _blend(hu, HEART_HU, body.heart)
    hu = _blend(hu, _lung_field(subject, body, fields, masks), lungs)
    hu = _blend(hu, AIR_HU, body.airway_lumen)
    hu = _blend(hu, bone_hu, body.bone)
    hu = _blend(hu, CSF_HU, body.spinal_canal)
    hu = hu + subject.anatomy.noise_hu * fields["noise"]
    return Render(image=np.clip(np.round(hu), *HU_RANGE).astype(np.float32), masks=masks)
