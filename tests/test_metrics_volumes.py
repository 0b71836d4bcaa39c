"""Volume distances: CT features (HU histogram, LAA−950, Perc15), their Fréchet distance, slice-wise planes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medcf.data.synthetic.kinds import get_kind
from medcf.metrics.volumes import CT_FEATURES, axial_slices, ct_features, volume_frechet_distance
from medcf.volumes.sampling import mid_axial_slices

CT = get_kind("ct")


def volumes(indices: range, **factors: object) -> np.ndarray:
    return np.stack([CT.render(CT.sample(0, index), 32, **factors).image for index in indices])


@pytest.fixture(scope="module")
def never() -> np.ndarray:
    return volumes(range(8), smoking="never")


def test_smoking_raises_the_emphysema_index_and_lowers_lung_attenuation(never: np.ndarray) -> None:
    current = volumes(range(8), smoking="current")
    before, after = (np.stack([ct_features(volume) for volume in group]) for group in (never, current))
    assert before.shape == (8, len(CT_FEATURES))
    laa, perc15, mean = (
        CT_FEATURES.index(name) for name in ("LAA-950 of lung", "Perc15 of lung (HU)", "mean lung HU")
    )
    assert (after[:, laa] > before[:, laa]).all()  # emphysema clusters at −985 HU appear with smoking
    assert (after[:, mean] < before[:, mean]).all() and (after[:, perc15] <= before[:, perc15]).all()
    assert before[:, : CT_FEATURES.index("lung fraction")].sum(axis=1) == pytest.approx(1.0)  # histogram fractions


def test_the_volume_distance_sees_the_smoking_shift_beyond_sampling_noise(never: np.ndarray) -> None:
    assert volume_frechet_distance(never, never) == pytest.approx(0.0, abs=1e-9)
    other_never = volumes(range(8, 16), smoking="never")
    current = volumes(range(8, 16), smoking="current")
    assert volume_frechet_distance(never, current) > 5 * volume_frechet_distance(never, other_never)  # measured 9.4×


def test_axial_slices_are_the_central_planes_in_display_orientation() -> None:
    batch = torch.arange(2 * 4 * 5 * 6, dtype=torch.float32).reshape(2, 1, 4, 5, 6)
    assert torch.equal(axial_slices(batch, 1), mid_axial_slices(batch))
    planes = axial_slices(batch, 4)
    assert planes.shape == (8, 1, 5, 4)
    for k, z in enumerate(range(1, 5)):  # the central four of six slices, volume 0 first
        assert torch.equal(planes[k, 0], batch[0, 0, :, :, z].T.flip(0, 1))
    with pytest.raises(ValueError, match="1 ≤ slices ≤ Z"):
        axial_slices(batch, 7)


def test_ct_features_refuse_non_finite_values() -> None:
    with pytest.raises(ValueError, match="NaN/inf"):
        ct_features(np.array([[[np.nan]]]))
