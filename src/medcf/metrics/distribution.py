"""Distances between two sets of features (N, D): Fréchet distance (FID) and kernel distance (KID)."""

from __future__ import annotations

import numpy as np
import torch


def _as_float64(features: torch.Tensor, name: str) -> np.ndarray:
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"{name} has shape {tuple(features.shape)}; pass (N, D) features with N ≥ 2")
    return features.detach().cpu().double().numpy()


def _psd_eigenvalues(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with round-off (|λ| < 1e-10 λ_max, e.g. the null space when N < D) set to 0.

    Without this, √(1e-15)-sized terms from each null direction add up to ~1e-6 in FID of a set with itself.
    """
    return np.where(eigenvalues > 1e-10 * max(eigenvalues.max(), 0.0), eigenvalues, 0.0)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(_psd_eigenvalues(eigenvalues))) @ eigenvectors.T


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, Eq. 6).

    d² = ||μ_a − μ_b||² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½), in float64. Tr (Σ_a Σ_b)^½ is computed as
    Tr (Σ_a^½ Σ_b Σ_a^½)^½, which has the same eigenvalues but stays symmetric, so no complex parts arise.
    """
    a, b = _as_float64(features_a, "features_a"), _as_float64(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}; use one extractor for both sets")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # unbiased (N − 1), as torchmetrics
    root_a = _sqrt_psd(cov_a)
    cross = root_a @ cov_b @ root_a
    cross_trace = np.sqrt(_psd_eigenvalues(np.linalg.eigvalsh((cross + cross.T) / 2))).sum()
    distance = np.square(mean_a - mean_b).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross_trace
    return float(distance)


def _polynomial_mmd(x: np.ndarray, y: np.ndarray, degree: int) -> float:
    """Unbiased MMD² with kernel k(x, y) = (xᵀy / D + 1)^degree (Bińkowski et al. 2018, Eq. 2 and Sec. 3)."""
    m, dimensions = x.shape
    k_xx = (x @ x.T / dimensions + 1) ** degree
    k_yy = (y @ y.T / dimensions + 1) ** degree
    k_xy = (x @ y.T / dimensions + 1) ** degree
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / m**2)


def kernel_inception_distance(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): mean and std of the polynomial-kernel MMD² over random subsets.

    Each of `subsets` draws takes `subset_size` rows without replacement from each set (seeded by `seed`);
    the std is the population std over draws, as torchmetrics reports it.
    """
    a, b = _as_float64(features_a, "features_a"), _as_float64(features_b, "features_b")
    if subset_size < 2 or subset_size > min(len(a), len(b)):
        raise ValueError(
            f"subset_size={subset_size} but the sets hold {len(a)} and {len(b)} samples; "
            f"pass 2 ≤ subset_size ≤ {min(len(a), len(b))}"
        )
    rng = np.random.default_rng(seed)
    scores = [
        _polynomial_mmd(
            a[rng.choice(len(a), subset_size, replace=False)],
            b[rng.choice(len(b), subset_size, replace=False)],
            degree,
        )
        for _ in range(subsets)
    ]
    return float(np.mean(scores)), float(np.std(scores))
