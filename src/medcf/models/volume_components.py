"""3-D latent diffusion models built from scratch or at toy size: the volume twins of components.py's builders.

The text side is the 2-D models' (MiniLM tokenizer and encoder, D = 384; a BERT toy for tests), the noise schedule
Stable Diffusion's (diffusers schedulers are shape-agnostic: they step 5-D latents as they step 4-D ones).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from medcf.models.components import MAX_PROMPT_TOKENS, Components, training_scheduler
from medcf.models.scratch import tiny_components
from medcf.models.shared_text_encoder import minilm_path
from medcf.models.volume import VolumeAutoencoderKL, VolumeUNet


def tiny_volume_components(
    *,
    in_channels: int = 1,
    latent_channels: int = 3,
    sample_size: tuple[int, int, int] = (16, 16, 8),
    cross_attention_dim: int = 32,
    text_modulation: bool = False,
    mask_conditioning: bool = False,
    seed: int = 0,
) -> Components:
    """Toy-size 3-D model (VAE ×2, U-Net ×2) with tiny_components' toy text encoder, seeded."""
    components = tiny_components(cross_attention_dim=cross_attention_dim, seed=seed)  # text encoder, tokenizer
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        parts = tiny_volume_modules(
            in_channels=in_channels, latent_channels=latent_channels, sample_size=sample_size,
            cross_attention_dim=cross_attention_dim, text_modulation=text_modulation,
            mask_conditioning=mask_conditioning,
        )  # fmt: skip
    components.vae, components.unet = parts
    return components


def scratch_volume_components(
    sample_size: tuple[int, int, int] = (64, 64, 32),
    *,
    in_channels: int = 1,
    text_encoder_path: str | Path | None = None,
    vae: VolumeAutoencoderKL | None = None,
    text_modulation: bool = False,
    mask_conditioning: bool = False,
) -> Components:
    """Untrained 3-D VAE (×4) (or `vae`) + 3-D U-Net + pretrained MiniLM text encoder, for volumes or patches of
    `sample_size` voxels (DGM-VLC trains on 64×64×32 patches)."""
    folder = Path(text_encoder_path) if text_encoder_path is not None else minilm_path()
    text_encoder = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer.model_max_length = min(tokenizer.model_max_length, MAX_PROMPT_TOKENS)
    vae = vae or scratch_volume_vae(sample_size, in_channels=in_channels)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    unet = scratch_volume_unet(
        tuple(side // factor for side in sample_size),
        latent_channels=vae.config.latent_channels,
        cross_attention_dim=text_encoder.config.hidden_size,
        text_modulation=text_modulation,
        mask_conditioning=mask_conditioning,
    )
    return Components(vae, unet, text_encoder, tokenizer, training_scheduler())


def tiny_volume_modules(
    *, in_channels: int = 1, latent_channels: int = 3, sample_size: tuple[int, int, int] = (16, 16, 8),
    cross_attention_dim: int = 32, text_modulation: bool = False, mask_conditioning: bool = False,
) -> tuple[VolumeAutoencoderKL, VolumeUNet]:  # fmt: skip
    """Toy-size 3-D VAE (×2) and U-Net (×2, cross-attention at both levels) for tests and smoke runs."""
    vae = VolumeAutoencoderKL(
        in_channels=in_channels,
        out_channels=in_channels,
        latent_channels=latent_channels,
        block_out_channels=(8, 16),
        norm_num_groups=8,
        sample_size=tuple(sample_size),
    )
    unet = VolumeUNet(
        in_channels=latent_channels + (1 if mask_conditioning else 0),  # the mask at latent resolution
        out_channels=latent_channels,
        block_out_channels=(16, 32),
        attention_levels=(True, True),
        num_head_channels=8,
        norm_num_groups=8,
        cross_attention_dim=cross_attention_dim,
        sample_size=tuple(side // 2 for side in sample_size),
        text_modulation=text_modulation,
        text_heads=2,
    )
    # MONAI zero-initialises the U-Net's output, residual and attention projections (as LDM does), so an untrained
    # U-Net predicts 0 whatever the latents and prompt; a toy model draws them (the modulation's too), so tests
    # see both.
    with torch.no_grad():
        for weight in unet.parameters():
            if weight.dim() > 1 and not weight.any():
                weight.normal_(0, 0.1)
    return vae.eval(), unet.eval()


def scratch_volume_vae(
    sample_size: tuple[int, int, int] = (64, 64, 32),
    *,
    in_channels: int = 1,
    latent_channels: int = 4,
    block_out_channels: tuple[int, ...] = (32, 64, 128),
) -> VolumeAutoencoderKL:
    """An untrained 3-D KL autoencoder; three blocks downsample ×4 (a 64×64×32 patch → a 16×16×8 latent)."""
    return VolumeAutoencoderKL(
        in_channels=in_channels,
        out_channels=in_channels,
        latent_channels=latent_channels,
        block_out_channels=tuple(block_out_channels),
        norm_num_groups=min(32, *block_out_channels),  # GroupNorm needs channels divisible by the groups
        sample_size=tuple(sample_size),
    ).eval()


def scratch_volume_unet(
    latent_size: tuple[int, int, int],
    *,
    latent_channels: int,
    cross_attention_dim: int,
    text_modulation: bool = False,
    mask_conditioning: bool = False,
) -> VolumeUNet:
    """An untrained 3-D U-Net: three levels (×4), cross-attention to the prompt at the two deeper ones (DGM-VLC), with
    `text_modulation` the prompt's γ·h + β on every ResNet block (8 pooling heads: MiniLM's 384 = 8 × 48), and with
    `mask_conditioning` one more input channel, the mask at latent resolution (DGM-VLC's hybrid condition)."""
    return VolumeUNet(
        in_channels=latent_channels + (1 if mask_conditioning else 0),
        out_channels=latent_channels,
        block_out_channels=(64, 128, 256),
        attention_levels=(False, True, True),
        num_head_channels=32,
        cross_attention_dim=cross_attention_dim,
        sample_size=tuple(latent_size),
        text_modulation=text_modulation,
    ).eval()


def unet_factor(unet: VolumeUNet) -> int:
    """Latent voxels per U-Net bottleneck voxel along each side: latent sides must be multiples of it."""
    return 2 ** (len(unet.config.block_out_channels) - 1)
