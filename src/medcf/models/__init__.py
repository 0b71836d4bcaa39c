"""Latent diffusion components: loading/saving, prompt encoding, pixel ↔ latent conversion."""

from medcf.models.components import (
    Components,
    conditioning_options,
    load_components,
    load_vae,
    minilm_path,
    save_components,
    save_vae,
    scratch_components,
    scratch_vae,
    tiny_components,
)
from medcf.models.export import export_model, folder_megabytes
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
from medcf.models.text import check_edit_survives_truncation, check_prompt_lengths, encode_prompts

__all__ = [
    "Components",
    "conditioning_options",
    "decode_latents",
    "encode_images",
    "encode_posterior",
    "check_edit_survives_truncation",
    "check_prompt_lengths",
    "encode_prompts",
    "export_model",
    "folder_megabytes",
    "has_mask_condition",
    "latent_channels",
    "load_components",
    "load_vae",
    "mask_latents",
    "scaled_latents",
    "minilm_path",
    "save_components",
    "save_vae",
    "scratch_components",
    "scratch_vae",
    "tiny_components",
    "vae_scale_factor",
]
