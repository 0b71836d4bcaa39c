"""Counterfactual volumes: DDIM-invert under the source prompt, regenerate under the target prompt (as the 2-D
"inversion" engine of medcf.editing.counterfactual; Mokady et al. 2023), e.g. "this CT without the pleural effusion".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from medcf.generate import denoise, mask_condition, sampling_scheduler
from medcf.inversion import inversion_steps
from medcf.models import Components, decode_latents, encode_images, encode_prompts, latent_channels, vae_scale_factor
from medcf.prompts import NULL_PROMPT
from medcf.volumes.inversion import volume_inversion_trajectory
from medcf.volumes.sampling import volume_drift


@torch.no_grad()
def counterfactual_volumes(
    components: Components,
    volumes: torch.Tensor,
    source_prompts: list[str],
    target_prompts: list[str],
    *,
    strength: float = 0.8,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
    latent_drift: float | Sequence[float] = 0.0,
    residual: bool = False,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Volumes (B, 1, X, Y, Z) in [-1, 1] → counterfactual volumes of the same shape in [-1, 1].

    `strength` ∈ (0, 1] is the fraction of the sampler's steps re-run. `residual` returns x + D(ẑ_target) −
    D(ẑ_source): voxels the two prompts agree on stay as they were. Sides that are not multiples of the model's
    downsampling are padded by edge replication for the model and cropped back. A mask-conditioned model takes the
    volumes' masks (B, 1, X, Y, Z) in {0, 1}, the same in inversion and regeneration.
    """
    if not len(volumes) == len(source_prompts) == len(target_prompts):
        raise ValueError(
            f"{len(volumes)} volumes, {len(source_prompts)} source, {len(target_prompts)} target prompts: one each"
        )
    size = volumes.shape[-3:]
    multiple = vae_scale_factor(components) * 2 ** (len(components.unet.config.block_out_channels) - 1)
    padding = [pad for side in reversed(size) for pad in (0, -side % multiple)]  # F.pad: last axis first
    padded = F.pad(volumes.float(), padding, mode="replicate")
    if mask is not None:
        mask = F.pad(mask.float(), padding, mode="replicate").to(padded.device)

    # 1. Encode: the posterior mean, as the 2-D engines do
    latents = encode_images(components, padded, sample=False)

    # 2. DDIM-invert k = strength·steps steps under the source prompts (guidance 1: the most faithful inversion)
    options = {"num_inference_steps": num_inference_steps, "latent_drift": latent_drift, "mask": mask}
    trajectory = volume_inversion_trajectory(components, latents, source_prompts, strength=strength, **options)

    # 3. Regenerate the last k steps under the target prompts, with classifier-free guidance and δ
    options = {"strength": strength, "guidance_scale": guidance_scale, "latent_drift": latent_drift, "mask": mask}
    edited = _regenerate(components, trajectory[-1], target_prompts, num_inference_steps, **options)

    # 4. Residual edit: add only what the target prompt changes against the source prompt's reconstruction, so the
    #    VAE's and the sampler's reconstruction error cancel (medcf.editing.counterfactual, residual=True)
    if residual:
        reconstruction = _regenerate(components, trajectory[-1], source_prompts, num_inference_steps, **options)
        edited = padded + (edited - reconstruction)

    # 5. Crop the padding away
    return edited.clamp(-1, 1)[..., : size[0], : size[1], : size[2]]


def _regenerate(
    components: Components,
    start: torch.Tensor,
    prompts: list[str],
    num_inference_steps: int,
    *,
    strength: float,
    guidance_scale: float,
    latent_drift: float | Sequence[float],
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """The last strength·steps DDIM steps from the inverted state `start` under `prompts`, decoded to volumes."""
    unet = components.unet
    sampler = sampling_scheduler(components, "ddim")
    sampler.set_timesteps(num_inference_steps, device=unet.device)
    steps = inversion_steps(num_inference_steps, strength)
    uncond, cond = encode_prompts(components, [NULL_PROMPT] * len(prompts) + list(prompts)).chunk(2)
    drift = volume_drift(latent_drift, latent_channels(components)).to(unet.device, unet.dtype)
    factor = vae_scale_factor(components)
    condition = mask_condition(components, mask, tuple(start.shape), tuple(side * factor for side in start.shape[2:]))
    latents = denoise(
        components,
        start,
        cond,
        uncond,
        sampler,
        sampler.timesteps[-steps:],
        guidance_scale=guidance_scale,
        drift=drift,
        condition=condition,
    )
    return decode_latents(components, latents)
