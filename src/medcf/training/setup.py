"""The model a run starts from: a user's local Stable Diffusion folder, or medcf's from-scratch / tiny models."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from medcf.data.volume import VolumeTextDataset
from medcf.models import (
    Components,
    VolumeAutoencoderKL,
    is_volume_model,
    load_components,
    load_vae,
    scratch_components,
    scratch_volume_components,
    tiny_components,
    tiny_volume_components,
    vae_scale_factor,
)
from medcf.models.components import saved_scheduler
from medcf.training.loss import PREDICTION_TYPES


def build_components(
    *,
    pretrained: str = "",
    vae: str = "",
    text_encoder: str = "",
    tiny: bool = False,
    mask_conditioning: bool = False,
    text_modulation: bool = False,
    backend: str = "diffusion",
    spatial_dims: int = 2,
    resolution: int = 64,
    prediction_type: str = "epsilon",
    zero_terminal_snr: bool = False,
    seed: int = 0,
) -> Components:
    """Components to train: loaded from `pretrained`, else built (seeded) from scratch; `vae` replaces the VAE.
    `zero_terminal_snr` rescales the noise schedule (Lin et al. 2024; `training_noise_schedule`)."""
    if backend != "diffusion":
        raise ValueError(f"model.backend={backend}: GAN models are built by medcf.training.gan_loop.train_gan")
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"train.prediction_type={prediction_type!r}: choose one of {PREDICTION_TYPES}")
    if zero_terminal_snr and prediction_type != "v_prediction":  # at SNR 0 the input is ε itself: nothing to predict
        raise ValueError("train.zero_terminal_snr=true needs train.prediction_type=v_prediction (Lin et al. 2024)")
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
            if spatial_dims == 3:  # volumes (models/volume.py); run.py sets the patch size from the data
                volume_vae = load_vae(vae) if vae else None
                components = _volume_components(tiny, text_encoder, seed, volume_vae, **options)
            elif tiny:
                components = tiny_components(sample_size=resolution, seed=seed, **options)
            else:
                components = scratch_components(
                    resolution=resolution, text_encoder_path=text_encoder or None, **options
                )
    if vae:
        components.vae = load_vae(vae)
        if isinstance(components.vae, VolumeAutoencoderKL) != is_volume_model(components.unet):
            raise ValueError(f"model.vae={vae} and the model differ in dimensions (2-D / 3-D); set model.spatial_dims")
    components.scheduler = training_noise_schedule(components.scheduler, prediction_type, zero_terminal_snr)
    saved_scheduler(components)  # a folder's sampler that cannot carry the schedule is refused now, not at the end
    return components


def training_noise_schedule(scheduler: DDPMScheduler, prediction_type: str, zero_terminal_snr: bool) -> DDPMScheduler:
    """The schedule the U-Net is trained on, saved with its scheduler config: the prediction type and, with
    `zero_terminal_snr`, betas rescaled to ᾱ_T = 0 and samplers starting at t = T (Lin et al. 2024, §3.1–3.3)."""
    schedule = {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"} if zero_terminal_snr else {}
    return DDPMScheduler.from_config(scheduler.config, prediction_type=prediction_type, **schedule)


def _volume_components(
    tiny: bool, text_encoder: str, seed: int, vae: VolumeAutoencoderKL | None, **conditions: bool
) -> Components:
    """A 3-D model to train from scratch, on `vae`'s latents when one is given (its latent channels); `conditions`:
    mask_conditioning, text_modulation."""
    if not tiny:
        return scratch_volume_components(text_encoder_path=text_encoder or None, vae=vae, **conditions)
    channels = {"latent_channels": vae.config.latent_channels} if vae is not None else {}
    return tiny_volume_components(seed=seed, **channels, **conditions)


def fit_to_volumes(components: Components, dataset: VolumeTextDataset) -> None:
    """Record what a 3-D model was trained on in its configs: the volume or patch size (X, Y, Z), generate_volumes'
    default, after checking each side divides into whole latent and U-Net cells; and in the VAE, the value range
    and voxel spacing that turn its volumes back into NIfTI (record_volume_data)."""
    size = dataset.item_shape
    factor = vae_scale_factor(components)
    multiple = factor * 2 ** (len(components.unet.config.block_out_channels) - 1)
    if any(side % multiple for side in size):
        raise ValueError(
            f"volumes or patches of {tuple(size)} voxels: each side must be a multiple of {multiple} (VAE and U-Net "
            "downsampling); set data.patch, e.g. [64, 64, 32]"
        )
    components.unet.register_to_config(sample_size=[side // factor for side in size])
    record_volume_data(components.vae, dataset)


def record_volume_data(vae: VolumeAutoencoderKL, dataset: VolumeTextDataset) -> None:
    """The intensity range and spacing of `dataset` in `vae`'s config; a VAE trained on another range is refused."""
    value_range = list(dataset.value_range)
    if vae.config.value_range is not None and list(vae.config.value_range) != value_range:
        raise ValueError(
            f"the VAE maps values {list(vae.config.value_range)} onto [-1, 1] but the data's dataset.json says "
            f"{value_range}; train the VAE on this data's range (medcf train-vae)"
        )
    vae.register_to_config(value_range=value_range, spacing_mm=list(dataset.spacing_mm))
    vae.register_to_config(sample_size=list(dataset.item_shape))
