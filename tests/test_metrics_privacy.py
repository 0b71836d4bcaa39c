"""medcf.metrics.privacy against scipy's brute-force cdist, planted copies and independent draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import cdist

from medcf.metrics.privacy import memorization_audit, nearest_neighbours, pixel_vectors


def _gaussian(count: int, dimensions: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, dimensions, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize(("metric", "scipy_metric"), [("l2", "euclidean"), ("cosine", "cosine")])
def test_nearest_neighbours_match_brute_force_cdist(metric: str, scipy_metric: str):
    queries, references = _gaussian(60, 24, 0), _gaussian(90, 24, 1) + 0.3
    distances, indices = nearest_neighbours(queries, references, metric=metric, chunk_size=16)
    full = cdist(queries.numpy(), references.numpy(), metric=scipy_metric)
    assert torch.equal(indices, torch.from_numpy(full.argmin(axis=1)))
    np.testing.assert_allclose(distances.numpy(), full.min(axis=1), rtol=0, atol=1e-12)
    assert distances.dtype == torch.float64 and indices.dtype == torch.int64 and distances.shape == (60,)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_chunking_gives_the_same_answer_as_one_block(metric: str):
    queries, references = _gaussian(300, 64, 2).float(), _gaussian(500, 64, 3).float()
    one_block = nearest_neighbours(queries, references, metric=metric, chunk_size=10_000)
    for chunk_size in (7, 128):  # both leave ragged last blocks along each axis
        distances, indices = nearest_neighbours(queries, references, metric=metric, chunk_size=chunk_size)
        assert torch.equal(indices, one_block[1])
        torch.testing.assert_close(distances, one_block[0], rtol=0, atol=1e-12)


def test_nearest_neighbours_refuses_mismatched_or_degenerate_features():
    with pytest.raises(ValueError, match="feature sizes differ: 4 vs 5"):
        nearest_neighbours(_gaussian(3, 4, 0), _gaussian(3, 5, 1))
    with pytest.raises(ValueError, match="metric='manhattan'"):
        nearest_neighbours(_gaussian(3, 4, 0), _gaussian(3, 4, 1), metric="manhattan")
    zero_row = _gaussian(3, 4, 1)
    zero_row[2] = 0
    with pytest.raises(ValueError, match="row 2 of references is all zeros"):
        nearest_neighbours(_gaussian(3, 4, 0), zero_row, metric="cosine")
    with pytest.raises(ValueError, match="queries holds NaN"):
        nearest_neighbours(torch.full((2, 4), float("nan")), _gaussian(3, 4, 1))


def _images(batch: int, size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 2, size, size, generator=generator, dtype=torch.float64) * 2 - 1


def test_pixel_vectors_are_standardised_area_averages():
    images = _images(4, 64, 0)
    vectors = pixel_vectors(images, size=32)
    assert vectors.shape == (4, 2 * 32 * 32)
    torch.testing.assert_close(vectors.mean(dim=1), torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(4, dtype=torch.float64))
    pooled = F.avg_pool2d(images, 2).flatten(1)  # area resampling by an integer factor = average pooling
    pooled = pooled - pooled.mean(dim=1, keepdim=True)
    torch.testing.assert_close(vectors, pooled / pooled.norm(dim=1, keepdim=True))


def test_pixel_distance_is_a_correlation_distance_blind_to_brightness_and_contrast():
    images = _images(2, 32, 1)
    vectors = pixel_vectors(images)
    correlation = np.corrcoef(images[0].flatten().numpy(), images[1].flatten().numpy())[0, 1]
    assert float((vectors[0] - vectors[1]).square().sum()) == pytest.approx(2 * (1 - correlation), rel=1e-12)
    torch.testing.assert_close(pixel_vectors(0.3 * images + 0.5), vectors)  # darker, lower contrast: same vector
    with pytest.raises(ValueError, match="image 1 is constant"):
        pixel_vectors(torch.stack([images[0], torch.full_like(images[1], 0.2)]))
    with pytest.raises(ValueError, match="smaller than size=32"):
        pixel_vectors(_images(1, 16, 2))


def _audit_sets(dimensions: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training, held-out and independently generated rows, all drawn from one Gaussian."""
    return _gaussian(500, dimensions, 10), _gaussian(400, dimensions, 11), _gaussian(400, dimensions, 12)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_audit_flags_copies_of_training_rows_and_finds_their_index(metric: str):
    training, held_out, independent = _audit_sets()
    copies = training[[3, 250, 499]]
    near_copy = training[[77]] + 1e-4 * _gaussian(1, 16, 13)
    generated = torch.cat([independent[:50], copies, near_copy])
    audit = memorization_audit(generated, training, held_out, metric=metric)
    assert audit.flags[50:].all()
    assert audit.indices[50:].tolist() == [3, 250, 499, 77]
    assert (audit.distances[50:53] < 1e-6).all()
    assert (audit.ratios[50:] < 1e-3).all()  # a copy is far closer to its source than to any other training row
    assert ((audit.ratios >= 0) & (audit.ratios <= 1)).all()
    assert audit.threshold == pytest.approx(float(torch.quantile(audit.held_out_distances, 0.01)))


def test_audit_rarely_flags_independent_draws_and_summarises():
    training, held_out, generated = _audit_sets()
    audit = memorization_audit(generated, training, held_out, quantile=0.01)
    held_out_reference, _ = nearest_neighbours(held_out, training)
    torch.testing.assert_close(audit.held_out_distances, held_out_reference)
    summary = audit.summary()
    # Same distribution as held_out, so the flag rate estimates the quantile itself: ~1% of 400 rows.
    assert summary["n_flagged"] <= 12
    assert summary["median_generated_distance"] == pytest.approx(summary["median_held_out_distance"], rel=0.1)
    assert (summary["n_generated"], summary["n_training"], summary["quantile"], summary["metric"]) == (
        400,
        500,
        0.01,
        "l2",
    )
    assert summary["fraction_flagged"] == summary["n_flagged"] / 400
    assert summary["threshold"] == audit.threshold
    # Ratios of independent draws sit near 1: the nearest training row is not special.
    assert float(audit.ratios.median()) > 0.8


def test_audit_refuses_bad_settings():
    training, held_out, generated = _audit_sets()
    with pytest.raises(ValueError, match="quantile=1.5"):
        memorization_audit(generated, training, held_out, quantile=1.5)
    with pytest.raises(ValueError, match=r"training has shape \(1, 16\)"):
        memorization_audit(generated, training[:1], held_out)
    with pytest.raises(ValueError, match="feature sizes differ: 8 vs 16"):
        memorization_audit(generated, training, held_out[:, :8])
