"""medcf.evaluation.atrophy: a brain edit scored against the renderer's true change, per measure with CIs."""

import numpy as np
import pytest

from medcf.evaluation.atrophy import atrophy_cases, atrophy_effect
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
