"""Untrained models to train or to test with: toy-size (`tiny_components`, diffusers' `get_dummy_components`) and
CPU-size (`scratch_components`, `scratch_vae`), and the conditioning options of DGM-VLC in a vanilla U-Net."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase

from medcf.models.components import MAX_PROMPT_TOKENS, Components, training_scheduler
from medcf.models.instruct import widen_for_source_image
from medcf.models.shared_text_encoder import minilm_path


def minilm_tokenizer() -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    tokenizer.model_max_length = MAX_PROMPT_TOKENS
    return tokenizer


def tiny_components(
    *,
    in_channels: int = 1,
    latent_channels: int = 4,
    sample_size: int = 32,
    cross_attention_dim: int = 32,
    seed: int = 0,
    mask_conditioning: bool = False,
    text_modulation: bool = False,
    source_image: bool = False,
) -> Components:
    """Toy-size real classes for tests and smoke runs (diffusers `get_dummy_components`); VAE downsamples ×2.
    `source_image`: an InstructPix2Pix model, its U-Net widened for the source latent as `train.method=
    instruct-pix2pix` widens a pretrained one."""
    conditions = {"mask_conditioning": mask_conditioning, "text_modulation": text_modulation, "text_heads": 2}
    options = conditioning_options(latent_channels, cross_attention_dim, **conditions)
    with torch.random.fork_rng():  # seeded weights without touching the caller's global RNG
        torch.manual_seed(seed)
        sizes = (in_channels, latent_channels, sample_size, cross_attention_dim)
        vae, unet, text_encoder = _tiny_modules(*sizes, options)
        if source_image:  # inside: the new conv_in's initialisation draws from the RNG too
            widen_for_source_image(unet)
    return Components(vae, unet, text_encoder, minilm_tokenizer(), training_scheduler())


def conditioning_options(
    latent_channels: int, cross_attention_dim: int, *, mask_conditioning: bool, text_modulation: bool, text_heads: int
) -> dict:
    """UNet2DConditionModel arguments for DGM-VLC's two extra conditions (Xing et al. 2024), in vanilla diffusers.

    Mask conditioning (the hybrid condition): one more input channel, the mask at latent resolution
    (`mask_latents`), concatenated to the noisy latents; the output keeps `latent_channels`.
    Text-visual modulation (γ·h + β), read in diffusers 0.42: `addition_embed_type="text"` builds
    `add_embedding = TextTimeEmbedding(cross_attention_dim, time_embed_dim, num_heads=text_heads)`
    (embeddings.py: LayerNorm → AttentionPooling over the prompt tokens → Linear → LayerNorm), and
    `UNet2DConditionModel.forward` adds it to the time embedding (`emb = emb + aug_emb`, unet_2d_condition.py,
    `get_aug_embed`). `resnet_time_scale_shift="scale_shift"` gives every ResnetBlock2D (down, mid, up) a
    `time_emb_proj` to 2·channels, split into (γ, β) and applied as h ← norm2(h)·(1 + γ) + β (resnet.py,
    `time_embedding_norm == "scale_shift"`): every ResNet's features are scaled and shifted by the prompt.
    """
    options: dict = {"in_channels": latent_channels + (1 if mask_conditioning else 0), "out_channels": latent_channels}
    if text_modulation:
        if cross_attention_dim % text_heads:  # AttentionPooling reshapes D into heads × D/heads
            raise ValueError(
                f"text modulation: text width {cross_attention_dim} is not divisible by {text_heads} pooling heads; "
                "use a text encoder whose hidden size is a multiple of it"
            )
        options |= {
            "addition_embed_type": "text",
            "addition_embed_type_num_heads": text_heads,
            "resnet_time_scale_shift": "scale_shift",
        }
    return options


def _tiny_modules(
    in_channels: int, latent_channels: int, sample_size: int, cross_attention_dim: int, options: dict
) -> tuple[AutoencoderKL, UNet2DConditionModel, BertModel]:
    vae = AutoencoderKL(
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=sample_size,
        scaling_factor=1.0,
    )
    unet = UNet2DConditionModel(
        sample_size=sample_size // 2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=4,
        cross_attention_dim=cross_attention_dim,
        **options,
    )
    text_config = BertConfig(
        vocab_size=30522,  # the MiniLM WordPiece vocabulary, so the shipped tokenizer is reused
        hidden_size=cross_attention_dim,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * cross_attention_dim,
        max_position_embeddings=MAX_PROMPT_TOKENS,
    )
    return vae.eval(), unet.eval(), BertModel(text_config).eval()


def scratch_components(
    *,
    resolution: int = 128,
    in_channels: int = 1,
    text_encoder_path: str | Path | None = None,
    mask_conditioning: bool = False,
    text_modulation: bool = False,
) -> Components:
    """Untrained grey VAE (×4 downsampling) + CPU-sized U-Net + pretrained MiniLM text encoder (D = 384)."""
    if resolution % 32:
        raise ValueError(f"resolution={resolution}: must be a multiple of 32 (VAE ×4 then U-Net ×4 downsampling)")
    folder = Path(text_encoder_path) if text_encoder_path is not None else minilm_path()
    text_encoder = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer.model_max_length = min(tokenizer.model_max_length, MAX_PROMPT_TOKENS)
    vae = scratch_vae(resolution, in_channels=in_channels)
    text_width = text_encoder.config.hidden_size  # 384 for MiniLM
    conditions = {"mask_conditioning": mask_conditioning, "text_modulation": text_modulation, "text_heads": 8}
    unet = UNet2DConditionModel(
        sample_size=resolution // 4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(64, 128, 256),
        layers_per_block=1,
        attention_head_dim=8,
        cross_attention_dim=text_width,
        **conditioning_options(4, text_width, **conditions),  # 8 pooling heads: 384 / 8 = 48 per head
    )
    return Components(vae.eval(), unet.eval(), text_encoder, tokenizer, training_scheduler())


def scratch_vae(
    resolution: int,
    *,
    in_channels: int = 1,
    latent_channels: int = 4,
    block_out_channels: tuple[int, ...] = (32, 64, 128),
) -> AutoencoderKL:
    """An untrained grey KL autoencoder; three blocks downsample ×4 (`medcf train-vae` trains it)."""
    # ×4: a 128 px image becomes a 32×32×4 latent, small enough for CPU training while keeping more spatial
    # detail than SD's ×8 for small medical images.
    return AutoencoderKL(
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
        up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
        block_out_channels=tuple(block_out_channels),
        latent_channels=latent_channels,
        norm_num_groups=32,
        sample_size=resolution,
        # Untrained latents have no known spread: 1.0 until VAE training measures 1/std(latents) (SD: 0.18215).
        scaling_factor=1.0,
    ).eval()
