"""medcf.data.intensity: DICOM VOI windows, percentile windows, window fitting, model range."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

from medcf.data.intensity import (
    fit_window,
    from_model_range,
    normalize_percentile,
    percentile_window,
    to_model_range,
    window_level,
)


def _pydicom_windowing(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """pydicom's apply_windowing on 12-bit unsigned data, rescaled from its output range to [0, 1]."""
    dataset = Dataset()
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsStored, dataset.PixelRepresentation = 12, 0
    dataset.WindowCenter, dataset.WindowWidth, dataset.VOILUTFunction = center, width, function
    return apply_windowing(values.copy(), dataset) / 4095.0


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize(("center", "width"), [(2048.0, 4096.0), (600.0, 1600.0), (100.0, 1.0), (1000.5, 37.0)])
def test_window_level_matches_pydicom(function: str, center: float, width: float) -> None:
    values = np.arange(0, 4096, dtype=np.float64)
    ours = window_level(values, center, width, function=function)
    assert ours.dtype == np.float32 and ours.min() >= 0 and ours.max() <= 1
    np.testing.assert_allclose(ours, _pydicom_windowing(values, center, width, function), atol=1e-6)


def test_window_level_linear_exact_maps_window_edges_to_0_and_1() -> None:
    pixels = window_level(np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0]), 40, 400, function="LINEAR_EXACT")
    np.testing.assert_allclose(pixels, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_window_level_default_is_dicom_linear() -> None:
    # PS3.3 C.11.2.1.2.1: x <= c − 0.5 − (w − 1)/2 → 0; x > c − 0.5 + (w − 1)/2 → 1
    center, width = 40.0, 400.0
    assert window_level(np.array([center - 0.5 - (width - 1) / 2]), center, width)[0] == 0.0
    assert window_level(np.array([center - 0.5 + (width - 1) / 2]), center, width)[0] == pytest.approx(1.0)
    assert window_level(np.array([center - 0.5]), center, width)[0] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("width", "function", "match"),
    [(0.5, "LINEAR", "needs width >= 1"), (0.0, "LINEAR_EXACT", "needs width > 0"),
     (-3.0, "SIGMOID", "needs width > 0"), (10.0, "GAMMA", "unknown; use one of LINEAR")],
)  # fmt: skip
def test_window_level_refuses_invalid_windows(width: float, function: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        window_level(np.zeros(3), 0.0, width, function=function)


def test_window_level_refuses_non_finite_window() -> None:
    with pytest.raises(ValueError, match="not finite"):
        window_level(np.zeros(3), float("nan"), 10.0)


def test_normalize_percentile_spans_the_robust_range() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(100.0, 20.0, size=(200, 100))
    values[0, 0], values[0, 1] = 1e6, -1e6  # outliers must not compress the contrast
    pixels = normalize_percentile(values)
    low, high = np.percentile(values, [0.5, 99.5])
    assert pixels.dtype == np.float32 and pixels.min() == 0.0 and pixels.max() == 1.0
    inside = (values > low) & (values < high)
    np.testing.assert_allclose(pixels[inside], ((values - low) / (high - low))[inside], atol=1e-6)
    assert 0.45 < np.median(pixels) < 0.55


def test_percentile_window_of_sparse_mask_uses_min_max_and_constant_maps_to_zero() -> None:
    mask = np.zeros((100, 100))
    mask[50, 50] = 1.0
    assert percentile_window(mask) == (0.5, 1.0)
    assert normalize_percentile(mask)[50, 50] == 1.0 and normalize_percentile(mask).sum() == 1.0
    assert not normalize_percentile(np.full((4, 4), 7.0)).any()
    with pytest.raises(ValueError, match="percentiles"):
        percentile_window(mask, 60, 40)


@pytest.mark.parametrize(("center", "width"), [(40.0, 400.0), (-600.0, 1500.0), (0.3, 0.05)])
def test_fit_window_recovers_linear_windows(center: float, width: float) -> None:
    values = np.linspace(center - width, center + width, 1001)
    pixels = window_level(values, center, width, function="LINEAR_EXACT")
    assert fit_window(values, pixels) == pytest.approx((center, width), rel=1e-6, abs=1e-9)
    assert fit_window(values, 1 - pixels) == pytest.approx((center, -width), rel=1e-6, abs=1e-9)
    linear = window_level(values * 100, center * 100, width * 100)  # DICOM LINEAR: effective (c − ½, w − 1)
    assert fit_window(values * 100, linear) == pytest.approx((center * 100 - 0.5, width * 100 - 1), rel=1e-6)


def test_fit_window_without_unsaturated_pixels_spans_the_values() -> None:
    assert fit_window(np.array([0.0, 10.0, 10.0]), np.array([0.0, 1.0, 1.0])) == (5.0, 10.0)


def test_model_range_numpy_and_torch() -> None:
    pixels = np.array([0.0, 0.25, 1.0], dtype=np.float32)
    np.testing.assert_allclose(to_model_range(pixels), [-1.0, -0.5, 1.0])
    tensor = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0])
    restored = from_model_range(tensor)
    assert isinstance(restored, torch.Tensor)
    assert torch.equal(restored, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    assert isinstance(to_model_range(torch.zeros(2)), torch.Tensor)
    np.testing.assert_allclose(from_model_range(np.array([-3.0, 0.0, 3.0])), [0.0, 0.5, 1.0])


@given(arrays(np.float32, st.integers(1, 50), elements=st.floats(0, 1, width=32)))
def test_model_range_round_trip(pixels: np.ndarray) -> None:
    model = to_model_range(pixels)
    assert model.min() >= -1 and model.max() <= 1
    np.testing.assert_allclose(from_model_range(model), pixels, atol=1e-7)
