"""3-D latent diffusion: MONAI's AutoencoderKL and DiffusionModelUNet (spatial_dims=3) behind diffusers' interface.

Each class is a diffusers `ModelMixin, ConfigMixin` holding the MONAI network as `network`, so `save_pretrained` /
`from_pretrained` (config.json + safetensors) work as for diffusers' own models, and the rest of medcf calls them as
it calls `AutoencoderKL` and `UNet2DConditionModel`: `vae.encode(x).latent_dist`, `vae.decode(z).sample`,
`unet(sample, timestep, encoder_hidden_states=...).sample`, config names in diffusers' vocabulary.

DGM-VLC (Xing et al. 2024, arXiv:2410.13823) conditions its 3-D generator on the text by cross-attention (MONAI's
SpatialTransformer blocks attend to the prompt tokens) and by text-visual modulation, h·(1 + γ) + β
(`text_modulation=True`: models/volume_modulation.py).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKLOutput
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_3d_condition import UNet3DConditionOutput
from monai.networks.nets import AutoencoderKL as MonaiAutoencoderKL
from monai.networks.nets import DiffusionModelUNet
from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock

from medcf.models.volume_modulation import TextModulation

SPATIAL_DIMS = 3
VOLUME_PIPELINE = "MedcfVolumeLatentDiffusion"  # model_index.json's _class_name of a 3-D model folder


class VolumeAutoencoderKL(ModelMixin, ConfigMixin):
    """KL autoencoder of volumes (B, C, X, Y, Z) in [-1, 1]; each block after the first halves every side."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        latent_channels: int = 4,
        block_out_channels: tuple[int, ...] = (32, 64, 128),
        layers_per_block: int = 1,
        attention_levels: tuple[bool, ...] | None = None,
        norm_num_groups: int = 32,
        sample_size: tuple[int, int, int] = (64, 64, 32),
        scaling_factor: float = 1.0,  # 1/std(latents), measured by `medcf train-vae` (LDM §4.3)
        value_range: tuple[float, float] | None = None,  # stored values mapped onto [-1, 1], e.g. [-1024, 1024] HU
        spacing_mm: tuple[float, float, float] | None = None,  # voxel size (RAS+) of the volumes it was trained on
    ) -> None:
        super().__init__()
        self.network = MonaiAutoencoderKL(
            spatial_dims=SPATIAL_DIMS,
            in_channels=in_channels,
            out_channels=out_channels,
            num_res_blocks=layers_per_block,
            channels=tuple(block_out_channels),
            attention_levels=tuple(attention_levels or (False,) * len(block_out_channels)),
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            # Full-volume self-attention at the deepest level costs (X·Y·Z/f³)² memory: off, as in MONAI's 3-D LDM
            # tutorial autoencoder; attention_levels turns it on per level.
            with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
        )

    @property
    def encoder(self) -> torch.nn.Module:
        return self.network.encoder

    @property
    def decoder(self) -> torch.nn.Module:
        return self.network.decoder

    @property
    def quant_conv(self) -> torch.nn.Module:
        return self.network.quant_conv_mu

    @property
    def post_quant_conv(self) -> torch.nn.Module:
        return self.network.post_quant_conv

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        """Volumes (B, C, X, Y, Z) → q(z|x) as diffusers' DiagonalGaussianDistribution over (B, C_z, X/f, Y/f, Z/f)."""
        mean, std = self.network.encode(x)  # MONAI returns σ = exp(log σ² / 2), log σ² clamped to [-30, 20]
        posterior = DiagonalGaussianDistribution(torch.cat([mean, 2 * torch.log(std)], dim=1))
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        """Unscaled latents (B, C_z, x, y, z) → volumes (B, C, f·x, f·y, f·z)."""
        sample = self.network.decode(z)
        return DecoderOutput(sample=sample) if return_dict else (sample,)

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False, generator=None) -> DecoderOutput:
        posterior = self.encode(sample).latent_dist
        latents = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(latents)


class VolumeUNet(ModelMixin, ConfigMixin):
    """3-D U-Net: noisy latents (B, C, x, y, z), timesteps, prompt states (B, L, D) → ε̂ (B, C, x, y, z)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 4,
        block_out_channels: tuple[int, ...] = (64, 128, 256),
        layers_per_block: int = 1,
        attention_levels: tuple[bool, ...] = (False, True, True),
        num_head_channels: int = 32,
        norm_num_groups: int = 32,
        cross_attention_dim: int = 384,
        sample_size: tuple[int, int, int] = (16, 16, 8),  # latent (x, y, z) sampled by default
        text_modulation: bool = False,  # DGM-VLC's γ·h + β on every ResNet block (volume_modulation.py)
        text_heads: int = 8,  # attention-pooling heads of the modulation (cross_attention_dim must divide by them)
    ) -> None:
        super().__init__()
        self.network = DiffusionModelUNet(
            spatial_dims=SPATIAL_DIMS,
            in_channels=in_channels,
            out_channels=out_channels,
            num_res_blocks=layers_per_block,
            channels=tuple(block_out_channels),
            attention_levels=tuple(attention_levels),
            norm_num_groups=norm_num_groups,
            num_head_channels=num_head_channels,
            with_conditioning=True,  # cross-attention to the prompt tokens (Rombach et al. 2022, Eq. 3)
            cross_attention_dim=cross_attention_dim,
        )
        self.modulation = None
        if text_modulation:
            norms = [block.norm2 for block in self.network.modules() if isinstance(block, DiffusionUNetResnetBlock)]
            self.modulation = TextModulation(cross_attention_dim, [n.num_channels for n in norms], heads=text_heads)
            self.modulation.attach(norms)

    @property
    def conv_in(self) -> torch.nn.Module:
        return self.network.conv_in.conv

    @property
    def attn_processors(self) -> dict:
        """MONAI's attention blocks are not diffusers attention processors: there are none to name."""
        return {}

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet3DConditionOutput | tuple:
        if encoder_hidden_states is None:
            raise ValueError("VolumeUNet is text-conditioned: pass encoder_hidden_states (B, L, D) (encode_prompts)")
        # One timestep per sample, as MONAI's sinusoidal embedding expects; a scalar t (the samplers') is broadcast.
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(len(sample))
        context = encoder_hidden_states.to(sample.dtype)
        with self.modulation.modulating(context) if self.modulation is not None else nullcontext():
            output = self.network(sample, timesteps, context=context)
        return UNet3DConditionOutput(sample=output) if return_dict else (output,)


def is_volume_model(unet: torch.nn.Module) -> bool:
    """True for a 3-D (volume) U-Net: its latents are (B, C, x, y, z)."""
    return isinstance(unet, VolumeUNet)


def is_volume_folder(path: Path) -> bool:
    """Whether the model folder's model_index.json names medcf's 3-D U-Net (False when it is absent or unreadable:
    `load_components` then says what is wrong with the folder)."""
    try:
        index = json.loads((Path(path) / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and list(index.get("unet") or [None, None])[-1] == VolumeUNet.__name__


def save_volume_folder(components: Any, scheduler: Any, folder: Path) -> None:
    """Write each part of `components` (a models.components.Components) and `scheduler` with its own save_pretrained
    into `folder` (safetensors) and a model_index.json naming their classes, which `load_components` reads.

    A 3-D folder has the Stable Diffusion layout with medcf's classes named (`["medcf.models.volume",
    "VolumeUNet"]`); vanilla diffusers pipelines are 2-D and cannot sample it, but each part loads with its class's
    `from_pretrained(folder, subfolder=...)`.
    """
    parts = {name: getattr(components, name) for name in ("vae", "unet", "text_encoder", "tokenizer")}
    index: dict[str, object] = {"_class_name": VOLUME_PIPELINE, "_diffusers_version": diffusers.__version__}
    for name, part in (parts | {"scheduler": scheduler}).items():
        options = {} if name in ("tokenizer", "scheduler") else {"safe_serialization": True}
        part.save_pretrained(folder / name, **options)
        module = type(part).__module__
        library = module if module.startswith("medcf.") else module.split(".")[0]
        index[name] = [library, type(part).__name__]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
