"""pix2pix-zero's noise regularisation of DDIM inversion (Parmar et al., SIGGRAPH 2023, §3.1 "Noise regularization").

DDIM inversion drifts towards noise maps that are not i.i.d. Gaussian (smooth, correlated), which a later edit
cannot move far from. Before each inverse step the predicted noise ε̂ is nudged by gradient steps on
L_auto = L_pair + λ·L_KL: L_pair sums the squared auto-correlation of each channel at random offsets over a
pyramid of average-pooled copies down to 8×8, and L_KL is the KL divergence of the map's mean and variance
from N(0, 1). Weights and step counts are the authors' (λ_ac = λ_KL = 20, 5 rounds of 5 offsets each).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

AUTO_CORRELATION_WEIGHT = 20.0
KL_WEIGHT = 20.0
ROUNDS = 5
OFFSETS_PER_ROUND = 5


def regularize_noise(
    noise: torch.Tensor,
    *,
    mean: torch.Tensor | float = 0.0,
    generator: torch.Generator | None = None,
    rounds: int = ROUNDS,
) -> torch.Tensor:
    """ε̂ (B, C, h, w) moved towards i.i.d. N(mean, I); `mean` is δ for a Latent Drift model trained on ε + δ."""
    centred = (noise - mean).detach().float()
    with torch.enable_grad():
        for _ in range(rounds):
            for _ in range(OFFSETS_PER_ROUND):
                step = _gradient(partial(auto_correlation_loss, generator=generator), centred)
                centred = centred - AUTO_CORRELATION_WEIGHT / OFFSETS_PER_ROUND * step
            centred = centred - KL_WEIGHT * _gradient(kl_divergence, centred)
    return (centred + mean).to(noise.dtype)


def auto_correlation_loss(noise: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """L_pair: Σ over images, channels and pyramid levels of the squared correlation of each channel with itself
    shifted by a random offset in [1, side/2], along each axis."""
    loss = noise.new_zeros(())
    while True:
        shift = int(torch.randint(1, max(noise.shape[-1] // 2, 1) + 1, (1,), generator=generator))
        for dim in (2, 3):
            loss = loss + (noise * noise.roll(shift, dims=dim)).mean(dim=(2, 3)).pow(2).sum()
        if min(noise.shape[-2:]) <= 8:
            return loss
        noise = F.avg_pool2d(noise, kernel_size=2)


def kl_divergence(noise: torch.Tensor) -> torch.Tensor:
    """L_KL: Σ over images of σ² + μ² − 1 − log σ², the map's mean μ and variance σ² against N(0, 1)."""
    flat = noise.flatten(start_dim=1)
    variance = flat.var(dim=1)
    return (variance + flat.mean(dim=1).pow(2) - 1 - torch.log(variance + 1e-7)).sum()


def _gradient(loss: Callable[[torch.Tensor], torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
    noise = noise.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss(noise), noise)
    return gradient
