"""Latent diffusion components: loading/saving, prompt encoding, pixel ↔ latent conversion."""

from medcf.models.components import (
    Components,
    load_components,
    load_vae,
    save_components,
    save_vae,
)
from medcf.models.export import export_model, folder_megabytes
from medcf.models.gan_components import (
    GanComponents,
    gan_generate,
    is_gan_folder,
    load_gan,
    save_gan,
    scratch_gan,
    tiny_gan,
)
from medcf.models.latents import (
    decode_latents,
    encode_images,
    encode_posterior,
    has_mask_condition,
    latent_channels,
    mask_latents,
    scaled_latents,
    vae_scale_factor,
)
from medcf.models.scratch import conditioning_options, scratch_components, scratch_vae, tiny_components
from medcf.models.shared_text_encoder import minilm_path
from medcf.models.text import check_edit_survives_truncation, check_prompt_lengths, encode_prompts
from medcf.models.volume import VolumeAutoencoderKL, VolumeUNet, is_volume_folder, is_volume_model
from medcf.models.volume_components import scratch_volume_components, scratch_volume_vae, tiny_volume_components

__all__ = [
    "Components",
    "GanComponents",
    "conditioning_options",
    "decode_latents",
    "encode_images",
    "encode_posterior",
    "check_edit_survives_truncation",
    "check_prompt_lengths",
    "encode_prompts",
    "export_model",
    "folder_megabytes",
    "gan_generate",
    "has_mask_condition",
    "is_gan_folder",
    "is_volume_folder",
    "is_volume_model",
    "latent_channels",
    "load_components",
    "load_gan",
    "load_vae",
    "mask_latents",
    "scaled_latents",
    "minilm_path",
    "save_components",
    "save_gan",
    "save_vae",
    "scratch_components",
    "scratch_gan",
    "scratch_vae",
    "scratch_volume_components",
    "scratch_volume_vae",
    "tiny_components",
    "tiny_gan",
    "tiny_volume_components",
    "vae_scale_factor",
    "VolumeAutoencoderKL",
    "VolumeUNet",
]
