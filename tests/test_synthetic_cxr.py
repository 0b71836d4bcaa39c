"""Semi-synthetic chest X-rays: realism checks on masks, effect direction, locality and determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from medcf.data.synthetic import (
    CXR_FACTORS,
    EFFECT_THRESHOLD,
    counterfactual_values,
    effect_mask,
    render_cxr,
    sample_cxr_subject,
)
from medcf.data.synthetic.cxr_subject import cxr_row

SIZE = 64
SUBJECTS = [sample_cxr_subject(0, index) for index in range(4)]
FINDINGS = ("nodule", "consolidation", "pleural_effusion")


def lung_mean(subject, **factors) -> float:
    render = render_cxr(subject, SIZE, **factors)
    return float(render.image[render.masks["lungs"]].mean())


def test_render_is_a_float_image_in_unit_range_with_anatomy_masks():
    render = render_cxr(SUBJECTS[0], SIZE)
    assert render.image.shape == (SIZE, SIZE) and render.image.dtype == np.float32
    assert render.image.min() >= 0.0 and render.image.max() <= 1.0
    lungs, heart = render.masks["lungs"], render.masks["heart"]
    assert lungs.dtype == bool and 0.2 < lungs.mean() < 0.6 and 0.05 < heart.mean() < 0.25
    assert render.image[lungs].mean() < render.image[heart].mean()  # aerated lung is darker than the heart


def test_factual_equals_render_with_every_factor_at_its_sampled_value():
    subject = SUBJECTS[1]
    sampled = {factor.name: getattr(subject, factor.name) for factor in CXR_FACTORS}
    assert np.array_equal(render_cxr(subject, SIZE).image, render_cxr(subject, SIZE, **sampled).image)


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_finding_masks_lie_inside_the_lungs(subject):
    render = render_cxr(subject, SIZE, **dict.fromkeys(FINDINGS, 1))
    for finding in FINDINGS:
        mask = render.masks[finding]
        assert mask.any(), finding
        assert not (mask & ~render.masks["lungs"]).any(), finding


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_lung_density_rises_never_former_current(subject):
    means = [lung_mean(subject, smoking=level) for level in ("never", "former", "current")]
    assert means[0] < means[1] < means[2]


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_bone_brightness_falls_with_age(subject):
    upper_chest = slice(0, SIZE // 4)  # ribs and clavicles, away from the heart's warp
    means = [render_cxr(subject, SIZE, age=age).image[upper_chest].mean() for age in (20, 45, 70, 95)]
    assert all(earlier > later for earlier, later in zip(means, means[1:], strict=False))


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_heart_grows_with_age_and_with_cardiomegaly(subject):
    areas = [render_cxr(subject, SIZE, age=age, cardiomegaly=0).masks["heart"].sum() for age in (20, 60, 95)]
    assert areas[0] <= areas[1] <= areas[2] and areas[0] < areas[2]
    enlarged = render_cxr(subject, SIZE, cardiomegaly=1)
    assert enlarged.masks["heart"].sum() > 1.1 * render_cxr(subject, SIZE, cardiomegaly=0).masks["heart"].sum()
    assert enlarged.masks["cardiomegaly"].any()


def _zero_region(factual, changed, factor: str) -> np.ndarray:
    """Where the factor's mechanism cannot reach: the pair must be identical there, bit for bit."""
    lungs = ndimage.binary_dilation(factual.masks["lungs"] | changed.masks["lungs"], iterations=3)  # soft edge
    if factor in ("smoking", "consolidation", "pleural_effusion"):
        return ~lungs
    if factor == "nodule":
        lesion = factual.masks.get("nodule", changed.masks.get("nodule"))
        return ~ndimage.binary_dilation(lesion, iterations=2)
    if factor == "cardiomegaly":
        region = np.zeros((SIZE, SIZE), bool)
        region[: SIZE // 5] = True  # the heart warp fades out well below the lung apices
        return region
    return np.zeros((SIZE, SIZE), bool)  # age and sex act on the whole chest


@pytest.mark.parametrize("subject", SUBJECTS[:2], ids=lambda subject: subject.id)
def test_counterfactuals_change_the_image_only_where_their_factor_acts(subject):
    factual = render_cxr(subject, SIZE)
    for factor, value in counterfactual_values(subject, CXR_FACTORS):
        changed = render_cxr(subject, SIZE, **{factor: value})
        difference = np.abs(changed.image - factual.image)
        mask = effect_mask(factual, changed, factor)
        assert mask.any(), (factor, value)
        assert difference[~mask].max(initial=0.0) <= EFFECT_THRESHOLD, (factor, value)
        assert difference[_zero_region(factual, changed, factor)].max(initial=0.0) == 0.0, (factor, value)


def test_effect_mask_contains_the_finding_mask():
    subject = dataclasses.replace(SUBJECTS[0], nodule=0)
    factual, changed = render_cxr(subject, SIZE), render_cxr(subject, SIZE, nodule=1)
    assert not (changed.masks["nodule"] & ~effect_mask(factual, changed, "nodule")).any()


def test_renders_are_deterministic_and_subjects_differ():
    again = sample_cxr_subject(0, 2)
    assert again == SUBJECTS[2]
    assert np.array_equal(render_cxr(again, SIZE).image, render_cxr(SUBJECTS[2], SIZE).image)
    assert sample_cxr_subject(1, 2) != SUBJECTS[2]
    first, second = render_cxr(SUBJECTS[0], SIZE).image, render_cxr(SUBJECTS[1], SIZE).image
    assert np.abs(first - second).mean() > 0.02


def test_counterfactual_values_cover_every_factor_once_per_other_level():
    subject = dataclasses.replace(SUBJECTS[0], age=50.0, smoking="former", nodule=0)
    changes = counterfactual_values(subject, CXR_FACTORS)
    assert ("age", 30.0) in changes and ("age", 70.0) in changes
    assert {value for factor, value in changes if factor == "smoking"} == {"never", "current"}
    assert ("nodule", 1) in changes and ("sex", "M" if subject.sex == "F" else "F") in changes


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"smoking": "sometimes"}, "smoking='sometimes' is not a level"),
        ({"height": 180}, "unknown factor 'height'"),
        ({"age": 140}, "age=140 is outside"),
    ],
)
def test_bad_factor_overrides_are_refused_with_the_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        render_cxr(SUBJECTS[0], SIZE, **overrides)


def test_causal_graph_smoking_raises_nodule_prevalence_and_rows_are_canonical():
    cohort = [sample_cxr_subject(3, index) for index in range(1500)]
    rate = {level: np.mean([s.nodule for s in cohort if s.smoking == level]) for level in ("never", "current")}
    assert rate["current"] > rate["never"]
    row = cxr_row(cohort[0])
    assert set(row) >= {
        "age",
        "sex",
        "smoking",
        "nodule",
        "consolidation",
        "pleural_effusion",
        "cardiomegaly",
        "no_finding",
    }
    assert row["no_finding"] == int(
        not any(row[key] for key in ("nodule", "consolidation", "pleural_effusion", "cardiomegaly"))
    )
