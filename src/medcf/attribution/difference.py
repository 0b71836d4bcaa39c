"""Visual attribution by healthy counterparts (Siddiqui et al., Sci. Rep. 2025 — VALD-MD, arXiv 2401.01414).

The abnormal image x^a is partially noised and denoised with the prompt of the same patient without
findings; the attribution map is the subtractive difference M = x^a − x^n (their Fig. 1). Here M is in
display units (a difference of 1 is black → white), optionally smoothed by a Gaussian, averaged over several
counterparts drawn with different seeds (each SDEdit draw removes the finding slightly differently; the mean
keeps what they agree on), and restricted to an anatomy mask. Positive M: the image is brighter than its
healthy counterpart there (denser, on a radiograph).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medcf.editing import counterfactual
from medcf.editing.paraphrases import PromptSets
from medcf.models import Components
from medcf.models.precision import inference_precision


@dataclass(frozen=True)
class CounterpartAttribution:
    """Signed maps M = x − x_cf (B, 1, H, W), the counterparts (B, C, H, W, first seed) and the per-seed maps."""

    maps: torch.Tensor
    counterparts: torch.Tensor
    seed_maps: torch.Tensor  # (S, B, 1, H, W), unsmoothed and unmasked

    @property
    def magnitude(self) -> torch.Tensor:
        """|M|: where the finding is, whatever its sign."""
        return self.maps.abs()


def difference_map(
    images: torch.Tensor,
    counterparts: torch.Tensor,
    *,
    sigma: float = 0.0,
    anatomy_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """M = x − x_cf in display units (B, 1, H, W): grey, Gaussian-smoothed (σ in pixels), zero outside the mask."""
    if images.shape != counterparts.shape:
        raise ValueError(f"images {tuple(images.shape)} and counterparts {tuple(counterparts.shape)} differ in shape")
    maps = (images - counterparts).mean(dim=1, keepdim=True) / 2  # [-1, 1] model range → display units
    return refine_map(maps, sigma=sigma, anatomy_mask=anatomy_mask)


def refine_map(maps: torch.Tensor, *, sigma: float = 0.0, anatomy_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Smooth a (B, 1, H, W) map (Gaussian σ in pixels) and zero it outside an anatomy mask."""
    maps = gaussian_blur(maps, sigma)
    if anatomy_mask is not None:
        if anatomy_mask.shape[-2:] != maps.shape[-2:]:
            raise ValueError(
                f"anatomy mask {tuple(anatomy_mask.shape)} is not at the image size {tuple(maps.shape[-2:])}"
            )
        maps = maps * (anatomy_mask > 0.5).to(maps)
    return maps


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of (B, 1, H, W), kernel ±3σ, reflected borders; σ = 0 returns the input."""
    if sigma <= 0:
        return maps
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(maps, (radius, radius, radius, radius), mode="reflect")
    blurred = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(blurred, kernel.view(1, 1, -1, 1))


def counterpart_attribution(
    components: Components,
    images: torch.Tensor,
    source_prompts: list[str],
    healthy_prompts: list[str],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    engine: str = "inversion",
    strength: float = 0.6,
    num_inference_steps: int = 25,  # the fast path: 50 steps score the same maps (benchmarks/attribution_fast_path)
    guidance_scale: float = 3.0,
    latent_drift: float | Sequence[float] = 0.0,
    null_text: bool = False,
    direction_prompts: PromptSets | None = None,
    cross_attention_guidance: float | None = None,
    image_guidance_scale: float | None = None,
    residual: bool = False,
    sigma: float = 1.0,
    anatomy_mask: torch.Tensor | None = None,
    precision: str = "auto",
) -> CounterpartAttribution:
    """Healthy counterparts of `images` for each seed, and the seed-averaged attribution maps.

    The inversion engine (the default: the better maps on the semi-synthetic CXR benchmark, README) is
    deterministic, as are pix2pix-zero and instruct below strength 1, so it runs once whatever `seeds` holds; SDEdit
    draws (and instruct's from pure noise) differ by seed and are averaged. `direction_prompts` and
    `cross_attention_guidance`: pix2pix-zero's; `healthy_prompts` are the instructions and `image_guidance_scale`
    is s_I for the instruct engine (`editing.counterfactual`).
    `residual`: each counterpart is x + D(ẑ_healthy) − D(ẑ_source), so the map is the difference of two decodes
    and the VAE's and the inversion's reconstruction error, common to both, drops out (twice the time).
    `precision` "auto" runs the model under bf16 autocast where the device has native bf16 (models/precision.py);
    maps and counterparts come back in float32 either way.
    """
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. seeds=(0,)")
    random = engine == "sdedit" or (engine == "instruct" and strength == 1)  # the others start from an inversion
    runs = seeds if random else seeds[:1]
    with inference_precision(precision, components.unet.device):
        counterparts = _counterparts(
            components, images, source_prompts, healthy_prompts, runs, engine=engine, strength=strength,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, latent_drift=latent_drift,
            null_text=null_text, direction_prompts=direction_prompts,
            cross_attention_guidance=cross_attention_guidance, image_guidance_scale=image_guidance_scale,
            residual=residual,
        )  # fmt: skip
    seed_maps = torch.stack([difference_map(images, counterpart) for counterpart in counterparts])
    maps = refine_map(seed_maps.mean(dim=0), sigma=sigma, anatomy_mask=anatomy_mask)
    return CounterpartAttribution(maps=maps, counterparts=counterparts[0], seed_maps=seed_maps)


def _counterparts(
    components: Components,
    images: torch.Tensor,
    source_prompts: list[str],
    healthy_prompts: list[str],
    seeds: Sequence[int],
    **options: object,
) -> list[torch.Tensor]:
    """One float32 healthy counterpart batch per seed."""
    return [
        counterfactual(
            components,
            images,
            source_prompts,
            healthy_prompts,
            generator=torch.Generator().manual_seed(seed),
            **options,
        ).float()
        for seed in seeds
    ]
