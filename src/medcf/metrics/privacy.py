"""Memorisation audit: do generated images copy training patients?

Each generated row is matched to its nearest training row (features (N, D), or `pixel_vectors` of the images).
A generated image counts as a near-copy when it lies closer to the training set than almost any real unseen
patient does: the threshold is a low quantile of the held-out rows' nearest-training distances, the
distance-to-closest-record calibration of synthetic-data privacy audits. The ratio d1/d2 of the nearest to the
second-nearest training distance (Lowe's ratio test) adds the relative view of Carlini et al., "Extracting
training data from diffusion models" (USENIX Security 2023): a copy is much closer to one training image than to
any other, so its ratio is near 0, while a typical sample has a ratio near 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

METRICS = ("l2", "cosine")
CHUNK_SIZE = 1024  # rows per block: a 1024 × 1024 float64 distance block is 8 MiB


def _check_features(features: torch.Tensor, name: str, minimum_rows: int = 1) -> torch.Tensor:
    """Float64 copy of (N, D) features, with empty, non-finite or wrongly shaped input refused."""
    if features.dim() != 2 or features.shape[0] < minimum_rows or features.shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(features.shape)}; pass (N, D) features with N ≥ {minimum_rows}")
    features = features.detach().double()
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} holds NaN or inf; check the feature extractor's input range")
    return features


def _unit_rows(features: torch.Tensor, name: str) -> torch.Tensor:
    norms = features.norm(dim=1, keepdim=True)
    if (zero := (norms[:, 0] == 0).nonzero()).numel():
        raise ValueError(f"row {int(zero[0])} of {name} is all zeros; cosine distance is undefined for it")
    return features / norms


def _distance_block(queries: torch.Tensor, references: torch.Tensor, metric: str) -> torch.Tensor:
    """(n, m) distances: Euclidean via |q|² + |r|² − 2 q·r, or 1 − q·r for unit rows (cosine)."""
    products = queries @ references.T
    if metric == "cosine":
        return (1 - products).clamp(0, 2)  # clamp to [0, 2] as scipy's cdist: round-off on (anti)parallel rows
    squared = queries.square().sum(dim=1, keepdim=True) + references.square().sum(dim=1) - 2 * products
    return squared.clamp(min=0).sqrt()  # clamp: round-off can make an exact copy's d² slightly negative


def _nearest(
    queries: torch.Tensor,
    references: torch.Tensor,
    metric: str,
    k: int,
    chunk_size: int,
    names: tuple[str, str] = ("queries", "references"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest references of every query, ascending: distances (Nq, k) float64 and indices (Nq, k) int64.

    Works on chunk_size × chunk_size blocks, keeping a running top-k, so memory stays O(chunk_size²).
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}; pass one of {METRICS}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size}; pass a positive number of rows per block")
    queries, references = _check_features(queries, names[0]), _check_features(references, names[1], k)
    if queries.shape[1] != references.shape[1]:
        raise ValueError(
            f"feature sizes differ: {queries.shape[1]} vs {references.shape[1]}; use one extractor for all sets"
        )
    if metric == "cosine":
        queries, references = _unit_rows(queries, names[0]), _unit_rows(references, names[1])
    all_distances, all_indices = [], []
    for query_block in queries.split(chunk_size):
        best = torch.full((len(query_block), 0), 0.0, dtype=torch.float64, device=queries.device)
        best_indices = torch.zeros_like(best, dtype=torch.int64)
        for start in range(0, len(references), chunk_size):
            block = _distance_block(query_block, references[start : start + chunk_size], metric)
            candidates = torch.cat([best, block], dim=1)
            offsets = torch.arange(start, start + block.shape[1], device=queries.device).expand(len(block), -1)
            candidate_indices = torch.cat([best_indices, offsets], dim=1)
            best, order = candidates.topk(min(k, candidates.shape[1]), dim=1, largest=False, sorted=True)
            best_indices = candidate_indices.gather(1, order)
        all_distances.append(best)
        all_indices.append(best_indices)
    return torch.cat(all_distances), torch.cat(all_indices)


def nearest_neighbours(
    queries: torch.Tensor, references: torch.Tensor, *, metric: str = "l2", chunk_size: int = CHUNK_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest reference of each query row: distances (Nq,) float64 and indices (Nq,) int64.

    queries (Nq, D), references (Nr, D). metric "l2" is Euclidean distance, "cosine" is 1 − cos(q, r) (as
    scipy's cdist). Computed in float64 on the inputs' device, in blocks of chunk_size × chunk_size rows.
    """
    distances, indices = _nearest(queries, references, metric, 1, chunk_size)
    return distances[:, 0], indices[:, 0]


def pixel_vectors(images: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Images (B, C, H, W) → (B, C·size·size) float64 vectors for pixel-space matching.

    Area downsampling (box filter; exact average pooling when H and W are multiples of size), then each image is
    shifted to zero mean and scaled to unit norm, so ||u − v||² = 2 (1 − Pearson r): a correlation distance,
    blind to global brightness and contrast (any input range works).
    """
    if images.dim() != 4:
        raise ValueError(f"images have shape {tuple(images.shape)}; pass (B, C, H, W) tensors")
    if min(images.shape[-2:]) < size:
        raise ValueError(f"images of {tuple(images.shape[-2:])} px are smaller than size={size}; pass a smaller size")
    small = F.interpolate(images.detach().double(), size=(size, size), mode="area")
    vectors = small.flatten(1)
    vectors = vectors - vectors.mean(dim=1, keepdim=True)
    norms = vectors.norm(dim=1, keepdim=True)
    if (flat := (norms[:, 0] == 0).nonzero()).numel():
        raise ValueError(f"image {int(flat[0])} is constant after downsampling; it has no pattern to match")
    return vectors / norms


@dataclass(frozen=True)
class MemorizationAudit:
    """Per generated row: nearest training distance and index, d1/d2 ratio, near-copy flag; plus the reference."""

    distances: torch.Tensor  # (Ng,) float64, nearest training distance
    indices: torch.Tensor  # (Ng,) int64, index of that training row
    ratios: torch.Tensor  # (Ng,) float64, d1/d2 in [0, 1]; 0 where two training rows both lie at distance 0
    flags: torch.Tensor  # (Ng,) bool, distance < threshold
    held_out_distances: torch.Tensor  # (Nh,) float64, nearest training distance of each held-out real row
    threshold: float  # `quantile` of held_out_distances
    quantile: float
    metric: str
    n_training: int

    def summary(self) -> dict[str, float | int | str]:
        return {
            "n_generated": len(self.distances),
            "n_training": self.n_training,
            "n_flagged": int(self.flags.sum()),
            "fraction_flagged": float(self.flags.double().mean()),
            "threshold": self.threshold,
            "median_generated_distance": float(self.distances.median()),
            "median_held_out_distance": float(self.held_out_distances.median()),
            "quantile": self.quantile,
            "metric": self.metric,
        }


def memorization_audit(
    generated: torch.Tensor,
    training: torch.Tensor,
    held_out: torch.Tensor,
    *,
    quantile: float = 0.01,
    metric: str = "l2",
) -> MemorizationAudit:
    """Flag generated rows closer to a training row than the `quantile` of held-out rows' nearest distances.

    All three are (N, D) features of one extractor (or `pixel_vectors`); held_out must be real images of patients
    absent from training. With quantile 0.01, about 1% of independent new images are flagged by chance.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile={quantile}; pass a fraction in (0, 1), e.g. 0.01")
    distances, indices = _nearest(generated, training, metric, 2, CHUNK_SIZE, ("generated", "training"))
    held_out_distances = _nearest(held_out, training, metric, 1, CHUNK_SIZE, ("held_out", "training"))[0][:, 0]
    threshold = float(torch.quantile(held_out_distances, quantile))
    nearest, second = distances[:, 0], distances[:, 1]
    ratios = torch.where(second > 0, nearest / second, 0.0)
    return MemorizationAudit(
        distances=nearest,
        indices=indices[:, 0],
        ratios=ratios,
        flags=nearest < threshold,
        held_out_distances=held_out_distances,
        threshold=threshold,
        quantile=quantile,
        metric=metric,
        n_training=len(training),
    )
