"""medcf.evaluation.atrophy: a brain edit scored against the renderer's true change, per measure with CIs."""

import numpy as np
import pytest

from medcf.evaluation.atrophy import BRAIN_EDITS, atrophy_cases, atrophy_effect, edit_cases, truth_agreement
from medcf.metrics.brain import MEASURES, atrophy_change
from medcf.models import tiny_components
from medcf.prompts import PromptTemplate


def _older(years: int):
    return lambda subject: {"age": subject.age + years}


def test_cases_are_unseen_cognitively_normal_patients_who_can_age():
    cases = atrophy_cases(6, _older(20), size=32)
    assert len(cases.rows) == 6 and cases.images.shape == cases.truths.shape == cases.brains.shape == (6, 32, 32)
    assert all(row["diagnosis"] == "CN" and row["lesion"] == 0 and row["age"] + 20 <= 95 for row in cases.rows)
    assert all(int(row["id"].removeprefix("brain")) >= 100_000 for row in cases.rows)  # never in a written dataset


def test_the_truth_per_decade_is_measured_and_the_model_scored_beside_it():
    cases = atrophy_cases(4, _older(20), size=32, years=20)
    rows = atrophy_effect(tiny_components(in_channels=1), PromptTemplate("brain MRI", style="simple"), cases,
                          ["age+=20"], per=2.0, batch_size=3, num_inference_steps=2)  # fmt: skip
    assert [row["measure"] for row in rows] == list(MEASURES)
    true = [atrophy_change(i, t, b) for i, t, b in zip(cases.images, cases.truths, cases.brains, strict=True)]
    for row in rows:
        expected = np.mean([change[row["measure"]] for change in true]) / 2.0
        assert row["truth"] == pytest.approx(expected) and row["patients"] == 4 and np.isfinite(row["model"])
        low, high = (float(value) for value in row["truth 95% CI"].split(" to "))
        assert low <= row["truth"] <= high
    ventricles, sulci, cortex = rows
    assert ventricles["truth"] > 0 and sulci["truth"] > 0 and cortex["truth"] < 0  # ageing atrophies the brain


def test_removal_cases_have_alzheimers_disease_and_its_truth_shrinks_the_ventricles():
    edits, truth_of, years, alzheimers, _ = BRAIN_EDITS["Alzheimer's disease removed"]
    cases = atrophy_cases(4, truth_of, size=32, years=years, alzheimers=alzheimers)
    assert all(row["diagnosis"] == "AD" and row["alzheimers_disease"] == 1 for row in cases.rows)
    change = [atrophy_change(i, t, b)["ventricles"] for i, t, b in zip(cases.images, cases.truths, cases.brains,
                                                                       strict=True)]  # fmt: skip
    assert max(change) <= 0 > np.mean(change) and edits == ("alzheimers_disease=absent",)  # 32 px: one may not show it


def test_truth_agreement_scores_the_truth_perfectly_and_half_the_truth_by_half():
    cases = atrophy_cases(4, _older(20), size=32, years=20)
    true = truth_agreement(cases, cases.truths)
    assert true["error"] == 0 and true["correlation with true change"] == pytest.approx(1.0)
    assert true["inside"] > 0.02 >= true["outside"] - 1e-9  # outside the region every true change is sub-threshold
    half = truth_agreement(cases, cases.images + (cases.truths - cases.images) / 2)
    assert half["correlation with true change"] == pytest.approx(1.0)
    assert half["inside"] == pytest.approx(true["inside"] / 2) and half["error"] == pytest.approx(
        true["error of the unedited image"] / 2
    )
    untouched = truth_agreement(cases, cases.images)
    assert untouched["inside"] == untouched["outside"] == 0 and np.isnan(untouched["correlation with true change"])
    assert untouched["error"] == pytest.approx(true["error of the unedited image"])


@pytest.mark.parametrize("engine", ["pix2pix-zero", "instruct"])
def test_every_engine_edits_the_cases_from_their_rows(engine):
    cases = atrophy_cases(3, _older(20), size=32, years=20)
    components = tiny_components(in_channels=1, source_image=engine == "instruct")
    edited = edit_cases(components, PromptTemplate("brain MRI", style="simple"), cases, ["age+=20"], engine=engine,
                        batch_size=2, num_inference_steps=2)  # fmt: skip
    assert edited.shape == cases.images.shape and edited.min() >= 0 and edited.max() <= 1
    assert not np.allclose(edited, cases.images)
