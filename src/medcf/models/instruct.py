"""InstructPix2Pix models (Brooks et al., CVPR 2023): a U-Net that reads the source image's latent beside the
noisy latent, so an instruction ("remove the pleural effusion") edits that image instead of drawing a new one.

The layout is diffusers' (examples/instruct_pix2pix and StableDiffusionInstructPix2PixPipeline): conv_in takes
2·C channels, [z_t, E(source)], where E(source) is the VAE posterior's mode *without* the scaling factor — the
pipeline prepares image latents that way, so a model trained here samples the same in the vanilla pipeline.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from medcf.models.components import Components
from medcf.models.latents import encode_posterior, is_instruct

__all__ = ["is_instruct", "source_latents", "widen_for_source_image"]


def widen_for_source_image(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """`unet` with conv_in widened from C to 2·C input channels (in place); the new channels' weights start at
    zero (Brooks et al. §3.2), so the widened U-Net predicts exactly what it did before training."""
    channels = unet.config.out_channels
    if unet.config.in_channels != channels:
        raise ValueError(
            f"the U-Net takes {unet.config.in_channels} input channels for {channels} latent channels; "
            "InstructPix2Pix widens a plain text-to-image U-Net (not one already conditioned on masks or images)"
        )
    old = unet.conv_in
    new = nn.Conv2d(2 * channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :channels].copy_(old.weight)
        new.bias.copy_(old.bias)
    unet.conv_in = new.to(old.weight.device, old.weight.dtype)
    unet.register_to_config(in_channels=2 * channels)
    return unet


def source_latents(components: Components, pixels: torch.Tensor) -> torch.Tensor:
    """Source images (B, C, H, W) in [-1, 1] → E(source): the posterior's mode, unscaled (module docstring)."""
    return encode_posterior(components, pixels).mode()
