"""medcf.metrics.brain: atrophy read from a T1 slice moves as the renderer's ageing and AD say it must."""

import numpy as np
import pytest

from medcf.data.synthetic.kinds import FIRST_UNSEEN, get_kind
from medcf.metrics.brain import atrophy_change, atrophy_measures


@pytest.mark.parametrize("size", [64, 128])
def test_ageing_and_alzheimers_disease_enlarge_csf_and_thin_the_cortex(size):
    kind = get_kind("brain")
    subjects = [kind.sample(0, FIRST_UNSEEN + index) for index in range(12)]
    young = [s for s in subjects if s.age <= 70 and not s.alzheimers_disease and not s.lesion][:5]
    assert len(young) >= 3
    for subject in young:
        factual = kind.render(subject, size)
        brain = factual.masks["brain"]
        for overrides in ({"age": subject.age + 20}, {"alzheimers_disease": 1}):
            change = atrophy_change(factual.image, kind.render(subject, size, **overrides).image, brain)
            assert change["ventricles"] > 0 and change["sulcal_csf"] > 0 and change["cortical_signal"] < 0, overrides
    # Ventricles read from the image track the renderer's own ventricle masks across subjects (share of the brain;
    # measured here: r 0.62 at 64 px, 0.70 at 128 px; mean 0.041 vs 0.047 and 0.052 vs 0.050).
    renders = [kind.render(kind.sample(0, FIRST_UNSEEN + index), size) for index in range(30)]
    measured = [atrophy_measures(r.image, r.masks["brain"])["ventricles"] for r in renders]
    true = [r.masks["ventricles"].sum() / r.masks["brain"].sum() for r in renders]
    assert np.corrcoef(measured, true)[0, 1] > 0.5 and abs(np.mean(measured) / np.mean(true) - 1) < 0.25
    same = kind.render(young[0], size)
    assert atrophy_change(same.image, same.image, same.masks["brain"]) == {
        "ventricles": 0.0, "sulcal_csf": 0.0, "cortical_signal": 0.0,
    }  # fmt: skip


def test_the_measures_do_not_move_with_scanner_gain():
    subject = get_kind("brain").sample(0, FIRST_UNSEEN)
    render = get_kind("brain").render(subject, 64)
    plain = atrophy_measures(render.image, render.masks["brain"])
    brighter = atrophy_measures(render.image * 0.7, render.masks["brain"])
    assert plain["ventricles"] == brighter["ventricles"] and plain["sulcal_csf"] == brighter["sulcal_csf"]


def test_bad_inputs_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"image \(8, 8\) and brain mask \(4, 4\) must be one 2-D shape"):
        atrophy_measures(np.zeros((8, 8)), np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="the brain mask holds 0 pixels; pass the brain's mask"):
        atrophy_measures(np.zeros((8, 8)), np.zeros((8, 8), bool))
