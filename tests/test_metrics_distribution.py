"""medcf.metrics.distribution against torchmetrics fed the same features, and analytic Gaussian cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from medcf.metrics import (
    EfficientNetLite0Features,
    extract_features,
    fid_kid,
    frechet_distance,
    kernel_inception_distance,
)


class _Precomputed(torch.nn.Module):
    """Feature 'extractor' for torchmetrics that passes precomputed (N, D) features through.

    torchmetrics probes a custom extractor once with a dummy image batch to learn D; answer that with zeros.
    """

    def __init__(self, dimensions: int) -> None:
        super().__init__()
        self.dimensions = dimensions

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() == 2:
            return inputs
        return torch.zeros(inputs.shape[0], self.dimensions, dtype=torch.float64)


def _gaussian(count: int, dimensions: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, dimensions, generator=generator, dtype=torch.float64) * scale + shift


def test_frechet_distance_matches_torchmetrics_on_the_same_features():
    real, fake = _gaussian(300, 32, 0), _gaussian(200, 32, 1, scale=1.4, shift=0.3)
    metric = FrechetInceptionDistance(feature=_Precomputed(32))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    expected = float(metric.compute())
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-3)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = _gaussian(100, 64, 2)  # N > D: full-rank covariance
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    rank_deficient = _gaussian(20, 64, 3)  # N < D: singular covariance, the usual case with 1280-d features
    assert frechet_distance(rank_deficient, rank_deficient) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_grows_as_the_squared_mean_shift_for_equal_covariances():
    base = _gaussian(400, 8, 4)
    for shift in (0.5, 1.0, 2.0):
        delta = torch.full((8,), shift, dtype=torch.float64)
        # Same samples shifted: covariances are identical, so d² = ||Δμ||² exactly (Heusel et al. 2017, Eq. 6).
        assert frechet_distance(base, base + delta) == pytest.approx(float(delta.square().sum()), rel=1e-9)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kernel_inception_distance_matches_torchmetrics_on_full_subsets():
    # With subset_size equal to the set size every draw is a permutation, which leaves the unbiased MMD² unchanged,
    # so both implementations must agree regardless of their random generators.
    real, fake = _gaussian(120, 16, 5), _gaussian(120, 16, 6, scale=1.2, shift=0.2)
    metric = KernelInceptionDistance(feature=_Precomputed(16), subsets=3, subset_size=120)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    expected_mean, _ = metric.compute()
    mean, std = kernel_inception_distance(real, fake, subsets=3, subset_size=120)
    assert mean == pytest.approx(float(expected_mean), rel=1e-3)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kernel_inception_distance_is_seeded_and_separates_distributions():
    real, same, shifted = _gaussian(200, 16, 7), _gaussian(200, 16, 8), _gaussian(200, 16, 9, shift=0.5)
    first = kernel_inception_distance(real, same, subsets=20, subset_size=50, seed=1)
    assert first == kernel_inception_distance(real, same, subsets=20, subset_size=50, seed=1)
    assert abs(first[0]) < 3 * first[1] + 1e-3  # same distribution: unbiased estimate centred on 0
    assert kernel_inception_distance(real, shifted, subsets=20, subset_size=50)[0] > 10 * abs(first[0])


def test_bad_feature_inputs_are_refused():
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(_gaussian(10, 4, 0), _gaussian(10, 5, 1))
    with pytest.raises(ValueError, match=r"features_a has shape \(1, 4\)"):
        frechet_distance(_gaussian(1, 4, 0), _gaussian(10, 4, 1))
    with pytest.raises(ValueError, match="subset_size=50 but the sets hold 20 and 30"):
        kernel_inception_distance(_gaussian(20, 4, 0), _gaussian(30, 4, 1), subsets=2, subset_size=50)


@pytest.fixture(scope="module")
def extractor() -> EfficientNetLite0Features:
    return EfficientNetLite0Features()


def _textures(count: int, seed: int) -> torch.Tensor:
    """Grey (N, 1, 64, 64) blob textures in [0, 1]: upsampled noise, one distribution for every seed."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 1, 8, 8, generator=generator)
    return F.interpolate(coarse, size=(64, 64), mode="bicubic", align_corners=False).clamp(0, 1) * 0.6 + 0.2


def test_efficientnet_features_shape_and_determinism(extractor: EfficientNetLite0Features):
    images = _textures(4, 0)
    features = extractor(images)
    assert features.shape == (4, 1280)
    assert torch.equal(features, extractor(images))
    assert torch.allclose(extractor(images[:2]), features[:2], atol=1e-5)  # no batch coupling (eval-mode BN)
    assert torch.allclose(extractor(images.repeat(1, 3, 1, 1)), features, atol=1e-6)  # grey = repeated RGB
    with pytest.raises(ValueError, match=r"pass \(B, 1, H, W\) or \(B, 3, H, W\)"):
        extractor(torch.rand(2, 2, 64, 64))


def test_fid_kid_ranks_a_brightness_shift_above_an_independent_draw(extractor: EfficientNetLite0Features):
    real, independent = _textures(8, 1), _textures(8, 2)
    shifted = (real + 0.2).clamp(0, 1)
    real_features = extract_features(real, extractor, batch_size=8)
    same = frechet_distance(real_features, extract_features(independent, extractor, batch_size=8))
    brighter = frechet_distance(real_features, extract_features(shifted, extractor, batch_size=8))
    assert brighter > same


def test_fid_kid_reports_numbers_with_their_settings(extractor: EfficientNetLite0Features):
    real, fake = _textures(4, 3), _textures(5, 4)
    report = fid_kid(real, fake, extractor, batch_size=3, kid_subsets=5, kid_subset_size=1000)
    expected = frechet_distance(extractor(real), extractor(fake))
    assert report["fid_effnet"] == pytest.approx(expected, rel=1e-6)
    assert report["kid_effnet_std"] >= 0 and "kid_effnet_mean" in report
    assert (report["n_real"], report["n_fake"], report["kid_subsets"], report["kid_subset_size"]) == (4, 5, 5, 4)
    assert (report["extractor"], report["resize"]) == ("effnet", "224 bilinear")
