"""The model a run starts from: a user's local Stable Diffusion folder, or medcf's from-scratch / tiny models."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from medcf.models import Components, load_components, load_vae, scratch_components, tiny_components
from medcf.training.loss import PREDICTION_TYPES


def build_components(
    *,
    pretrained: str = "",
    vae: str = "",
    text_encoder: str = "",
    tiny: bool = False,
    mask_conditioning: bool = False,
    text_modulation: bool = False,
    resolution: int = 64,
    prediction_type: str = "epsilon",
    seed: int = 0,
) -> Components:
    """Components to train: loaded from `pretrained`, else built (seeded) from scratch; `vae` replaces the VAE."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"train.prediction_type={prediction_type!r}: choose one of {PREDICTION_TYPES}")
    if pretrained:
        if mask_conditioning or text_modulation:
            raise ValueError(
                "model.mask_conditioning / model.text_modulation change the U-Net's shape; they apply to models "
                "built from scratch, not to model.pretrained"
            )
        components = load_components(pretrained)
    else:
        with torch.random.fork_rng():  # the same initial weights in every process and every resumed run
            torch.manual_seed(seed)
            options = {"mask_conditioning": mask_conditioning, "text_modulation": text_modulation}
            if tiny:
                components = tiny_components(sample_size=resolution, seed=seed, **options)
            else:
                components = scratch_components(
                    resolution=resolution, text_encoder_path=text_encoder or None, **options
                )
    if vae:
        components.vae = load_vae(vae)
    # The prediction type is a property of the trained U-Net, saved with its scheduler config.
    components.scheduler = DDPMScheduler.from_config(components.scheduler.config, prediction_type=prediction_type)
    return components
