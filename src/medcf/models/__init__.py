"""Latent diffusion components: loading/saving, prompt encoding, pixel ↔ latent conversion."""

from medcf.models.components import (
    Components,
    load_components,
    minilm_path,
    save_components,
    scratch_components,
    tiny_components,
)
from medcf.models.latents import decode_latents, encode_images
from medcf.models.text import encode_prompts

__all__ = [
    "Components",
    "decode_latents",
    "encode_images",
    "encode_prompts",
    "load_components",
    "minilm_path",
    "save_components",
    "scratch_components",
    "tiny_components",
]
