"""Pixels ↔ VAE latents. The VAE scaling factor is applied here and nowhere else.

Memory rule (diffusers' VAE slicing and tiling, `vae_passes` below): a batch too large for one VAE pass goes one
image at a time, and an image side past `untiled_side_limit` (1024 px for SD's VAE, 2048 for medcf's) is tiled.

Scaling rule (Rombach et al. 2022, LDM §4.3): latents are multiplied by `vae.config.scaling_factor` so they
have roughly unit variance (SD: 0.18215); a from-scratch VAE carries 1.0 until its training measures
1/std(latents). Grey rule for RGB VAEs (Stable Diffusion, in_channels 3): a grey image is replicated to three
identical channels on encode, and a decoded RGB image is averaged back to one channel when `channels=1`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from medcf.models.components import Components


def encode_images(
    components: Components,
    pixel_values: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    sample: bool = True,
    tiling: bool | None = None,
    slicing: bool | None = None,
) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] → scaled latents (B, 4, H/f, W/f); `sample=False` takes the posterior mean.
    Volumes (B, C, X, Y, Z) of a 3-D model (models/volume.py) → (B, C_z, X/f, Y/f, Z/f) likewise."""
    posterior = encode_posterior(components, pixel_values, tiling=tiling, slicing=slicing)
    return scaled_latents(components, posterior, generator=generator, sample=sample)


def encode_posterior(
    components: Components, pixel_values: torch.Tensor, *, tiling: bool | None = None, slicing: bool | None = None
) -> DiagonalGaussianDistribution:
    """Images (B, C, H, W) in [-1, 1] → the VAE encoder's posterior q(z|x) (unscaled; its `.parameters` are
    the mean and log-variance stacked on the channel axis). `tiling` / `slicing`: None decides by size (`vae_passes`).
    """
    vae_channels = components.vae.config.in_channels
    channels = pixel_values.shape[1]
    if channels == 1 and vae_channels == 3:
        pixel_values = pixel_values.repeat(1, 3, 1, 1)  # grey → RGB: three identical channels
    elif channels != vae_channels:
        raise ValueError(f"pixel_values has {channels} channels; this VAE takes {vae_channels} (or 1 for an RGB VAE)")
    pixel_values = pixel_values.to(components.vae.device, components.vae.dtype)
    with full_precision(components.vae.device), _passes(components.vae, pixel_values.shape, 1, tiling, slicing):
        return components.vae.encode(pixel_values).latent_dist


def scaled_latents(
    components: Components,
    posterior: DiagonalGaussianDistribution,
    *,
    generator: torch.Generator | None = None,
    sample: bool = True,
) -> torch.Tensor:
    """A draw from (or, `sample=False`, the mean of) the posterior, times the VAE scaling factor."""
    latents = posterior.sample(generator=generator) if sample else posterior.mode()
    return latents * components.vae.config.scaling_factor


def decode_latents(
    components: Components,
    latents: torch.Tensor,
    *,
    channels: int | None = None,
    tiling: bool | None = None,
    slicing: bool | None = None,
) -> torch.Tensor:
    """Scaled latents (B, 4, h, w) → images (B, C, f·h, f·w) in [-1, 1]; `channels=1` averages an RGB VAE to grey.
    `tiling` / `slicing`: None decides by the image size (`vae_passes`)."""
    latents = latents.to(components.vae.device, components.vae.dtype)
    passes = _passes(components.vae, latents.shape, vae_scale_factor(components), tiling, slicing)
    with full_precision(components.vae.device), passes:
        images = components.vae.decode(latents / components.vae.config.scaling_factor).sample.clamp(-1, 1)
    vae_channels = components.vae.config.out_channels
    if channels == 1 and vae_channels == 3:
        images = images.mean(dim=1, keepdim=True)  # RGB → grey: mean of the three channels
    elif channels not in (None, vae_channels):
        raise ValueError(f"channels={channels}: this VAE decodes {vae_channels} channels; pass None or 1")
    return images


def full_precision(device: torch.device) -> torch.autocast:
    """Autocast off: the VAE runs at its own dtype under any mixed precision (RadEdit: a half-precision SD VAE
    decodes black images)."""
    return torch.autocast(device.type, enabled=False)


# One VAE pass keeps a few (batch, C0, H, W) feature maps at full resolution (C0 = block_out_channels[0]): its
# memory grows with B·H·W·C0. 2^27 values is 512 MB per fp32 map: an SD VAE (C0 = 128) takes 1024² whole, medcf's
# VAEs (C0 = 32) take 2048², so a 2000 × 2000 radiograph goes through them in one pass.
MAX_PASS_VALUES = 2**27


def untiled_side_limit(vae: AutoencoderKL) -> int:
    """The largest image side one VAE pass takes whole; a larger image goes in tiles of this side.

    Tiles cost fidelity (each one normalises and attends over its own region), so they are as large as the memory
    allows rather than diffusers' default, the VAE's trained side `config.sample_size`: the shipped cxr64 VAE
    (trained at 64 px) reconstructs a 512 px radiograph with L1 0.087 whole, 0.19 in 256 px tiles and 0.32 in
    64 px tiles. Rounded down to 4 latent cells, so diffusers' 25% tile overlap falls on whole cells.
    """
    cells = 4 * 2 ** (len(vae.config.block_out_channels) - 1)
    return math.isqrt(MAX_PASS_VALUES // vae.config.block_out_channels[0]) // cells * cells


def _passes(
    vae: AutoencoderKL, shape: torch.Size, factor: int, tiling: bool | None, slicing: bool | None
) -> AbstractContextManager:
    """`vae_passes` for a batch (B, C, h, w) at `factor` pixels per cell; volumes (B, C, x, y, z) pass whole (the 3-D
    VAE has no tiling: train and edit volumes or patches that fit)."""
    if len(shape) == 5:
        return nullcontext()
    return vae_passes(vae, shape[0], factor * shape[2], factor * shape[3], tiling, slicing)


@contextmanager
def vae_passes(
    vae: AutoencoderKL, batch: int, height: int, width: int, tiling: bool | None, slicing: bool | None
) -> Iterator[None]:
    """Within the block, diffusers' VAE slicing (one image per pass) and tiling (overlapping tiles, blended;
    `AutoencoderKL.tiled_decode`) are on or off as asked, None deciding by size; restored afterwards."""
    side = untiled_side_limit(vae)
    values = height * width * vae.config.block_out_channels[0]
    tiling = max(height, width) > side if tiling is None else tiling
    slicing = batch > 1 and batch * values > MAX_PASS_VALUES if slicing is None else slicing
    names = ("use_tiling", "use_slicing", "tile_sample_min_size", "tile_latent_min_size")
    before = {name: getattr(vae, name) for name in names}
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    changed = dict(zip(names, (tiling, slicing, side, side // factor), strict=True))
    try:
        for name, value in changed.items():
            setattr(vae, name, value)
        yield
    finally:
        for name, value in before.items():
            setattr(vae, name, value)


def vae_scale_factor(components: Components) -> int:
    """Pixels per latent cell along each side: 2 per VAE downsampling block (diffusers' vae_scale_factor)."""
    return 2 ** (len(components.vae.config.block_out_channels) - 1)


def latent_channels(components: Components) -> int:
    """Channels of the latents z_t: the U-Net's output, which a mask-conditioned U-Net's input exceeds by one."""
    return components.unet.config.out_channels


def has_mask_condition(components: Components) -> bool:
    """True when the U-Net takes a mask channel beside the latents (DGM-VLC's hybrid condition); an InstructPix2Pix
    U-Net takes a whole source latent instead (models/instruct.py)."""
    return components.unet.config.in_channels == components.unet.config.out_channels + 1


def is_instruct(components: Components) -> bool:
    """True for an InstructPix2Pix U-Net, which reads a source image latent beside z_t (in = 2 · out channels)."""
    return components.unet.config.in_channels == 2 * components.unet.config.out_channels


def mask_latents(mask: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Masks (B, 1, H, W) — or (B, 1, X, Y, Z) for volumes — in {0, 1} → (B, 1, *size) in [0, 1]: the fraction of
    each latent cell inside the mask.

    Area averaging rather than nearest sampling, so a lesion smaller than one latent cell (×4 or ×8 smaller
    than the image) still reaches the U-Net, weighted by how much of the cell it covers, and a boundary cell
    says how much of it is inside instead of flipping to 0 or 1 with the sampling grid.
    """
    if mask.dim() not in (4, 5) or mask.shape[1] != 1 or mask.dim() - 2 != len(size):
        raise ValueError(f"mask shape {tuple(mask.shape)} for latents of {tuple(size)}: expected (B, 1, *spatial)")
    mask = mask.float()
    if mask.min() < 0 or mask.max() > 1:
        raise ValueError(f"mask values in [{mask.min():g}, {mask.max():g}]: expected {{0, 1}}; use (mask > 0).float()")
    return F.interpolate(mask, size=tuple(size), mode="area")
