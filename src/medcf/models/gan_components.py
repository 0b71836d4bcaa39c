"""A GAN model folder: generator, discriminator, text encoder + tokenizer, saved like medcf's diffusion folders.

    model/
      model_index.json   {"_class_name": "MedcfGAN", "backend": "gan", "generator": [...], ...}
      generator/         config.json + diffusion_pytorch_model.safetensors (diffusers ModelMixin)
      discriminator/     the same: kept so a run can be fine-tuned or its realism scores inspected
      text_encoder/      transformers folder, or a slim reference to the shipped MiniLM (shared_text_encoder.py)
      tokenizer/

Every weight loads through `from_pretrained` from local files only (safetensors, no pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import diffusers
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedModel, PreTrainedTokenizerBase

from medcf.atomic import atomic_folder
from medcf.models.components import MAX_PROMPT_TOKENS
from medcf.models.device import resolve_device
from medcf.models.gan import ProjectionPatchDiscriminator, TextConditionalGenerator
from medcf.models.model_folder import load_part
from medcf.models.shared_text_encoder import (
    REFERENCE_FILE,
    load_referenced,
    minilm_path,
    stock_digest,
    weights_digest,
    write_reference,
)
from medcf.models.text import encode_prompts

BACKEND = "gan"
PIPELINE_NAME = "MedcfGAN"
BLOCK_OUT_CHANNELS = (256, 128, 64, 32)  # generator widths of `scratch_gan`; each block after the first doubles sides
DISCRIMINATOR_LAYERS = 3  # stride-2 layers of `scratch_gan`'s patch discriminator
TINY_BLOCK_OUT_CHANNELS, TINY_DISCRIMINATOR_LAYERS = (32, 16, 8), 2  # those of `tiny_gan`


@dataclass
class GanComponents:
    """A text-conditioned GAN: generator, discriminator, frozen text encoder + tokenizer (`encode_prompts` reads
    the last two, as for diffusion `Components`)."""

    generator: TextConditionalGenerator
    discriminator: ProjectionPatchDiscriminator
    text_encoder: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def mask_conditioning(self) -> bool:
        return bool(self.generator.config.mask_conditioning)


def build_gan(
    text_encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    spatial_dims: int = 2,
    sample_size: int | tuple[int, ...] = 64,
    latent_dim: int = 128,
    block_out_channels: tuple[int, ...] = BLOCK_OUT_CHANNELS,
    discriminator_channels: int = 64,
    discriminator_layers: int = DISCRIMINATOR_LAYERS,
    mask_conditioning: bool = False,
    text_heads: int = 8,
) -> GanComponents:
    """Untrained generator and discriminator around a (frozen) text encoder; `sample_size` an int is a cube/square."""
    size = (sample_size,) * spatial_dims if isinstance(sample_size, int) else tuple(sample_size)
    text_dim = text_encoder.config.hidden_size  # 384 for MiniLM
    common = {"spatial_dims": spatial_dims, "text_dim": text_dim, "text_heads": text_heads}
    generator = TextConditionalGenerator(
        **common,
        sample_size=size,
        latent_dim=latent_dim,
        embed_dim=block_out_channels[0],
        block_out_channels=block_out_channels,
        mask_conditioning=mask_conditioning,
    )
    discriminator = ProjectionPatchDiscriminator(
        **common,
        channels=discriminator_channels,
        num_layers_d=discriminator_layers,
        mask_conditioning=mask_conditioning,
    )
    text_encoder.requires_grad_(False)
    return GanComponents(generator, discriminator, text_encoder.eval(), tokenizer)


def tiny_gan(
    *, spatial_dims: int = 2, sample_size: int | tuple[int, ...] = 16, mask_conditioning: bool = False, seed: int = 0
) -> GanComponents:
    """Toy-size real classes for tests and smoke runs: a 1-layer BERT (D = 32) with the MiniLM tokenizer."""
    with torch.random.fork_rng():  # seeded weights without touching the caller's global RNG
        torch.manual_seed(seed)
        text_config = BertConfig(
            vocab_size=30522,  # the MiniLM WordPiece vocabulary, so the shipped tokenizer is reused
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=MAX_PROMPT_TOKENS,
        )
        options = {"latent_dim": 16, "block_out_channels": TINY_BLOCK_OUT_CHANNELS, "discriminator_channels": 8}
        return build_gan(
            BertModel(text_config),
            _tokenizer(minilm_path()),
            spatial_dims=spatial_dims,
            sample_size=sample_size,
            discriminator_layers=TINY_DISCRIMINATOR_LAYERS,
            mask_conditioning=mask_conditioning,
            text_heads=2,
            **options,
        )


def scratch_gan(
    *,
    spatial_dims: int = 2,
    sample_size: int | tuple[int, ...] = 64,
    text_encoder_path: str | Path | None = None,
    mask_conditioning: bool = False,
    latent_dim: int = 128,
    block_out_channels: tuple[int, ...] = BLOCK_OUT_CHANNELS,
    discriminator_channels: int = 64,
    seed: int = 0,
) -> GanComponents:
    """An untrained CPU-sized GAN on the pretrained MiniLM text encoder (or `text_encoder_path`'s)."""
    folder = Path(text_encoder_path) if text_encoder_path is not None else minilm_path()
    text_encoder = AutoModel.from_pretrained(folder, local_files_only=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_gan(
            text_encoder,
            _tokenizer(folder),
            spatial_dims=spatial_dims,
            sample_size=sample_size,
            latent_dim=latent_dim,
            block_out_channels=tuple(block_out_channels),
            discriminator_channels=discriminator_channels,
            mask_conditioning=mask_conditioning,
        )


def _tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer.model_max_length = min(tokenizer.model_max_length, MAX_PROMPT_TOKENS)
    return tokenizer


def is_gan_folder(path: str | Path) -> bool:
    """Whether `path` holds a model folder written by `save_gan` (model_index.json names the gan backend); False
    when the index is absent or unreadable, so that `load_components` says what is wrong with the folder."""
    try:
        index = json.loads((Path(path) / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and index.get("backend") == BACKEND


def save_gan(gan: GanComponents, path: str | Path) -> Path:
    """Write the folder atomically (safetensors); a stock MiniLM text encoder is saved as a slim reference."""
    with atomic_folder(path) as staging:
        gan.generator.save_pretrained(staging / "generator", safe_serialization=True)
        gan.discriminator.save_pretrained(staging / "discriminator", safe_serialization=True)
        gan.text_encoder.save_pretrained(staging / "text_encoder", safe_serialization=True)
        stock = gan.text_encoder.config.hidden_size == 384  # MiniLM's width: only then hash (a second) to compare
        if stock and weights_digest(gan.text_encoder) == stock_digest():
            write_reference(staging / "text_encoder", gan.text_encoder)
        gan.tokenizer.save_pretrained(staging / "tokenizer")
        index = {
            "_class_name": PIPELINE_NAME,
            "_diffusers_version": diffusers.__version__,
            "backend": BACKEND,
            "generator": ["medcf.models.gan", type(gan.generator).__name__],
            "discriminator": ["medcf.models.gan", type(gan.discriminator).__name__],
            "text_encoder": ["transformers", type(gan.text_encoder).__name__],
            "tokenizer": ["transformers", type(gan.tokenizer).__name__],
        }
        (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return Path(path)


def load_gan(
    path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> GanComponents:
    """Load a `save_gan` folder from disk only onto `device` (`resolve_device`: auto, cpu, cuda, cuda:N, mps)."""
    path, device = Path(path), resolve_device(device)
    if not is_gan_folder(path):
        raise ValueError(
            f"{path}: not a GAN model folder (model_index.json lacks backend=gan); pass RUN/model of a "
            "model.backend=gan run, or load a diffusion folder with load_components"
        )
    local = {"local_files_only": True, "torch_dtype": dtype}
    generator = load_part(lambda: TextConditionalGenerator.from_pretrained(path / "generator", **local), path)
    discriminator = load_part(
        lambda: ProjectionPatchDiscriminator.from_pretrained(path / "discriminator", **local), path
    )
    text = path / "text_encoder"
    if (text / REFERENCE_FILE).is_file():
        text_encoder = load_referenced(text, dtype)
    else:
        text_encoder = load_part(lambda: AutoModel.from_pretrained(text, dtype=dtype, local_files_only=True), text)
    if text_encoder.config.hidden_size != generator.config.text_dim:
        raise ValueError(
            f"{path}: generator text_dim {generator.config.text_dim} ≠ text encoder hidden size "
            f"{text_encoder.config.hidden_size}; re-copy the model folder whole"
        )
    tokenizer = load_part(lambda: _tokenizer(path / "tokenizer"), path / "tokenizer")
    for module in (generator, discriminator, text_encoder):
        module.to(device).eval()
    text_encoder.requires_grad_(False)
    return GanComponents(generator, discriminator, text_encoder, tokenizer)


def gan_volume_units(gan: GanComponents) -> tuple[tuple[float, float], tuple[float, float, float]]:
    """(value range, voxel spacing in mm) of the volumes a 3-D GAN was trained on, from its generator's config
    (recorded by medcf.training.gan_run, as the 3-D VAE records them): what turns its [-1, 1] volumes into NIfTI."""
    config = gan.generator.config
    if config.spatial_dims != 3:
        raise ValueError("this GAN makes 2-D images, not volumes; it has no value range or voxel spacing")
    if config.get("value_range") is None:
        raise ValueError(
            "this 3-D GAN records no value range; train it with `medcf train`, or set "
            "generator.register_to_config(value_range=[low, high]) (e.g. [-1024, 1024] HU) before saving"
        )
    low, high = config.value_range
    spacing = config.get("spacing_mm") or (1.0, 1.0, 1.0)
    return (float(low), float(high)), tuple(float(side) for side in spacing)


def gan_latents(gan: GanComponents, batch_size: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise z ~ N(0, I) (batch_size, latent_dim) on the generator's device."""
    device = generator.device if generator is not None else torch.device("cpu")
    latents = torch.randn(batch_size, gan.generator.config.latent_dim, generator=generator, device=device)
    return latents.to(gan.generator.device, gan.generator.dtype)


def synthesize(
    gan: GanComponents, latents: torch.Tensor, prompts: list[str], *, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """G(z, text[, mask]) → images (B, C, *spatial) in [-1, 1], with gradients (inversion needs them)."""
    if len(prompts) != latents.shape[0]:
        raise ValueError(f"{len(prompts)} prompts for {latents.shape[0]} noise vectors; pass one prompt per image")
    states = encode_prompts(gan, prompts).to(gan.generator.dtype)  # (B, L, D); encode_prompts reads tokenizer+encoder
    mask = None if mask is None else mask.to(gan.generator.device, gan.generator.dtype)
    return gan.generator(latents, states, mask)


@torch.no_grad()
def gan_generate(
    gan: GanComponents,
    prompts: list[str],
    *,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images (B, C, *spatial) in [-1, 1] for `prompts` (and masks); one generator pass, no sampling loop."""
    latents = gan_latents(gan, len(prompts), generator=generator) if latents is None else latents
    return synthesize(gan, latents.to(gan.generator.device, gan.generator.dtype), prompts, mask=mask)
