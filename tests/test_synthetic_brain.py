"""Semi-synthetic brain MRI: realism checks on masks, effect direction, locality and determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from medcf.data.synthetic import (
    BRAIN_FACTORS,
    EFFECT_THRESHOLD,
    counterfactual_values,
    effect_mask,
    render_brain,
    sample_brain_subject,
)
from medcf.data.synthetic.brain_subject import brain_row

SIZE = 64
SUBJECTS = [sample_brain_subject(0, index) for index in range(3)]


def test_render_looks_like_a_t1_slice_with_brain_and_ventricle_masks():
    render = render_brain(SUBJECTS[0], SIZE)
    assert render.image.shape == (SIZE, SIZE) and render.image.dtype == np.float32
    assert render.image.min() >= 0.0 and render.image.max() <= 1.0
    brain, ventricles = render.masks["brain"], render.masks["ventricles"]
    assert 0.25 < brain.mean() < 0.7 and ventricles.any() and not (ventricles & ~brain).any()
    assert render.image[0:3, 0:3].mean() < 0.15  # air outside the head is dark
    assert render.image[ventricles].mean() < render.image[brain & ~ventricles].mean()  # CSF is dark on T1


def test_factual_equals_render_with_every_factor_at_its_sampled_value():
    subject = SUBJECTS[1]
    sampled = {factor.name: getattr(subject, factor.name) for factor in BRAIN_FACTORS}
    assert np.array_equal(render_brain(subject, SIZE).image, render_brain(subject, SIZE, **sampled).image)


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_ventricles_enlarge_with_age_and_with_alzheimers_disease(subject):
    areas = [
        render_brain(subject, SIZE, age=age, alzheimers_disease=0).masks["ventricles"].sum()
        for age in (20, 50, 80, 95)
    ]
    assert all(earlier < later for earlier, later in zip(areas, areas[1:], strict=False))
    with_ad = render_brain(subject, SIZE, age=80, alzheimers_disease=1)
    assert with_ad.masks["ventricles"].sum() > areas[2]
    assert with_ad.masks["alzheimers_disease"].any()
    assert not (with_ad.masks["alzheimers_disease"] & ~with_ad.masks["brain"]).any()


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_cortex_darkens_with_age(subject):
    young, old = render_brain(subject, SIZE, age=20), render_brain(subject, SIZE, age=90)
    brain = young.masks["brain"] & old.masks["brain"] & ~old.masks["ventricles"]
    assert old.image[brain].mean() < young.image[brain].mean()


def test_female_heads_are_smaller():
    subject = SUBJECTS[0]
    assert (
        render_brain(subject, SIZE, sex="F").masks["brain"].sum()
        < render_brain(subject, SIZE, sex="M").masks["brain"].sum()
    )


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_lesion_lies_inside_the_brain_and_changes_only_its_neighbourhood(subject):
    healthy = render_brain(subject, SIZE, lesion=0)
    ill = render_brain(subject, SIZE, lesion=1)
    lesion = ill.masks["lesion"]
    assert lesion.any() and not (lesion & ~ill.masks["brain"]).any()
    assert ill.image[lesion].mean() < healthy.image[lesion].mean()  # T1-hypointense core
    reach = 3.0 * subject.geometry.lesion_radius * SIZE * 1.2  # mass-effect support, pose scale included
    far = ndimage.distance_transform_edt(~lesion) > reach
    assert np.abs(ill.image - healthy.image)[far].max(initial=0.0) == 0.0
    changed = effect_mask(healthy, ill, "lesion")
    assert not (lesion & ~changed).any()
    assert np.abs(ill.image - healthy.image)[~changed].max(initial=0.0) <= EFFECT_THRESHOLD


def test_every_counterfactual_changes_something_and_nothing_outside_its_mask():
    subject = SUBJECTS[2]
    factual = render_brain(subject, SIZE)
    for factor, value in counterfactual_values(subject, BRAIN_FACTORS):
        changed = render_brain(subject, SIZE, **{factor: value})
        mask = effect_mask(factual, changed, factor)
        assert mask.any(), (factor, value)
        assert np.abs(changed.image - factual.image)[~mask].max(initial=0.0) <= EFFECT_THRESHOLD


def test_subjects_are_deterministic_and_differ():
    assert sample_brain_subject(0, 1) == SUBJECTS[1]
    assert np.array_equal(render_brain(sample_brain_subject(0, 1), SIZE).image, render_brain(SUBJECTS[1], SIZE).image)
    assert np.abs(render_brain(SUBJECTS[0], SIZE).image - render_brain(SUBJECTS[1], SIZE).image).mean() > 0.02


def test_bad_overrides_are_refused_and_rows_are_canonical():
    with pytest.raises(ValueError, match="lesion=2 is not a level of lesion"):
        render_brain(SUBJECTS[0], SIZE, lesion=2)
    subject = dataclasses.replace(SUBJECTS[0], alzheimers_disease=1)
    row = brain_row(subject)
    assert row["diagnosis"] == "AD" and row["alzheimers_disease"] == 1 and row["sex"] in ("F", "M")


def test_causal_graph_age_raises_alzheimers_prevalence():
    cohort = [sample_brain_subject(5, index) for index in range(1500)]
    old = [subject.alzheimers_disease for subject in cohort if subject.age >= 75]
    young = [subject.alzheimers_disease for subject in cohort if subject.age < 60]
    assert np.mean(old) > np.mean(young)
