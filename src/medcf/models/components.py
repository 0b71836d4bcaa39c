"""The five parts of a latent diffusion model, loaded and saved in the Stable Diffusion folder layout.

This is the only module that loads weights, always through `from_pretrained` (diffusers models.md).
A saved folder (vae/, unet/, text_encoder/, tokenizer/, scheduler/, model_index.json) loads unchanged in
vanilla `diffusers.StableDiffusionPipeline.from_pretrained(path, safety_checker=None,
requires_safety_checker=False)`, text modulation included. A mask-conditioned U-Net (in_channels = latent
channels + 1) loads in vanilla `UNet2DConditionModel.from_pretrained(path, subfolder="unet")`, but the vanilla
pipeline cannot sample it: it draws `unet.config.in_channels` noise channels and has no mask input
(pipeline_stable_diffusion.py, `num_channels_latents`); sample it with `medcf.generate.generate(mask=...)`.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from medcf.atomic import atomic_folder
from medcf.models.device import resolve_device
from medcf.models.model_folder import check_model_folder, check_text_conditioning, load_part
from medcf.models.shared_text_encoder import REFERENCE_FILE, load_referenced
from medcf.models.volume import VolumeAutoencoderKL, VolumeUNet, is_volume_folder, is_volume_model, save_volume_folder

# CLIP's 77-token context in Stable Diffusion; BERT-style encoders (MiniLM: 512) are capped to it so that
# every text encoder yields (B, 77, D) and vanilla pipelines, which pad to tokenizer.model_max_length, agree.
MAX_PROMPT_TOKENS = 77
VAE_AND_UNET = (AutoencoderKL, UNet2DConditionModel)  # the classes of a 2-D (Stable Diffusion) folder


@dataclass
class Components:
    """A latent diffusion model: VAE, conditional U-Net, text encoder + tokenizer, training noise scheduler."""

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    text_encoder: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    scheduler: DDPMScheduler  # the training (forward) noise schedule; samplers are built from its config
    # The scheduler_config.json of the folder these were loaded from (e.g. SD's DDIM or PNDM): saved back as it was,
    # so a vanilla pipeline samples a fine-tuned model as it sampled the original. None: built here (DDPM saved).
    sampler_config: dict | None = None


def training_scheduler() -> DDPMScheduler:
    """Stable Diffusion's training noise schedule (scaled-linear betas 0.00085→0.012, 1000 steps)."""
    # clip_sample=False: latents are not bounded to [-1, 1]; steps_offset=1 as in the SD v1 release.
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
    )


def load_components(
    path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Components:
    """Load a diffusers Stable-Diffusion-format folder from disk only (no downloads) onto `device` (`resolve_device`:
    "auto", "cpu", "cuda", "cuda:N", "mps")."""
    path, device = Path(path), resolve_device(device)
    check_model_folder(path)
    local = {"local_files_only": True, "torch_dtype": dtype}
    # model_index.json says which: a 3-D folder names medcf's volume classes (models/volume.py)
    vae_class, unet_class = (VolumeAutoencoderKL, VolumeUNet) if is_volume_folder(path) else VAE_AND_UNET
    vae = load_part(lambda: vae_class.from_pretrained(path, subfolder="vae", **local), path / "vae")
    unet = load_part(lambda: unet_class.from_pretrained(path, subfolder="unet", **local), path / "unet")
    text = path / "text_encoder"
    if (text / REFERENCE_FILE).is_file():  # a slim export: the package's stock encoder (its own checks)
        text_encoder = load_referenced(text, dtype)
    else:
        text_encoder = load_part(lambda: AutoModel.from_pretrained(text, dtype=dtype, local_files_only=True), text)
    check_text_conditioning(path, unet.config.cross_attention_dim, text_encoder.config.hidden_size)
    words = path / "tokenizer"
    tokenizer = load_part(lambda: AutoTokenizer.from_pretrained(words, local_files_only=True), words)
    scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler", local_files_only=True)
    sampler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    components = Components(vae, unet, text_encoder, tokenizer, scheduler, sampler_config)
    saved_scheduler(components)  # now, not at the end of a training run: a class medcf can save back
    for module in (vae, unet, text_encoder):
        module.to(device).eval()
    return components


def saved_scheduler(components: Components) -> SchedulerMixin:
    """The scheduler a saved folder names: the loaded folder's own class and settings with the training schedule's
    prediction type (a v-prediction fine-tune of an ε model must say so), or DDPM for a model built here."""
    config = components.scheduler.config
    if components.sampler_config is None:
        return DDPMScheduler.from_config(config)  # a copy: the pipeline rewrites legacy configs in place
    name = components.sampler_config.get("_class_name")
    classes = {cls.__name__: cls for cls in DDPMScheduler().compatibles}  # diffusers' own list, not a free import
    if name not in classes:
        raise ValueError(
            f"scheduler/scheduler_config.json names {name!r}, not one of diffusers' DDPM-compatible schedulers "
            f"({', '.join(sorted(classes))}); medcf trains DDPM-style models only"
        )
    trained = {"prediction_type": config.prediction_type}
    if config.get("rescale_betas_zero_snr"):  # trained on a zero-terminal-SNR schedule: sample it from t = T
        if "rescale_betas_zero_snr" not in inspect.signature(classes[name]).parameters:
            raise ValueError(f"{name} has no zero-terminal-SNR schedule; drop train.zero_terminal_snr for this model")
        trained |= {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
    return classes[name].from_config({**components.sampler_config, **trained})


def load_vae(path: str | Path, *, dtype: torch.dtype = torch.float32) -> AutoencoderKL | VolumeAutoencoderKL:
    """An AutoencoderKL folder (`medcf train-vae` writes RUN/vae), or a model folder with a vae/ subfolder; a 3-D
    one (config.json's _class_name) loads as VolumeAutoencoderKL."""
    path = Path(path)
    folder = path / "vae" if (path / "vae" / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no VAE config.json here or in vae/; pass the folder medcf train-vae wrote")
    volume = json.loads((folder / "config.json").read_text()).get("_class_name") == VolumeAutoencoderKL.__name__
    vae_class = VolumeAutoencoderKL if volume else AutoencoderKL
    return vae_class.from_pretrained(folder, torch_dtype=dtype, local_files_only=True).eval()


def save_components(components: Components, path: str | Path) -> Path:
    """Write the Stable Diffusion folder layout (safetensors) atomically; returns `path`."""
    # The vanilla pipeline writes model_index.json with each part's real class (e.g. ["transformers",
    # "BertModel"]), so diffusers and transformers both reload it without custom code.
    if is_volume_model(components.unet):  # 3-D: no vanilla pipeline holds it; each part saves itself
        with atomic_folder(path) as staging:
            save_volume_folder(components, saved_scheduler(components), staging)
        return Path(path)
    unet = components.unet.config  # an InstructPix2Pix U-Net names its own pipeline (latents.is_instruct's test:
    instruct = unet.in_channels == 2 * unet.out_channels  # latents.py imports this module)
    pipeline = (StableDiffusionInstructPix2PixPipeline if instruct else StableDiffusionPipeline)(
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=components.tokenizer,
        unet=components.unet,
        scheduler=saved_scheduler(components),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    with atomic_folder(path) as staging:
        pipeline.save_pretrained(staging, safe_serialization=True)
        index = json.loads((staging / "model_index.json").read_text())
        if index["text_encoder"][1] is None:
            raise ValueError(f"{type(components.text_encoder).__name__}: text encoder class unknown to transformers")
    return Path(path)


def save_vae(vae: AutoencoderKL, path: str | Path) -> Path:
    """Write one AutoencoderKL folder (config.json + safetensors) atomically; `load_vae` reads it back."""
    with atomic_folder(path) as staging:
        vae.save_pretrained(staging, safe_serialization=True)
    return Path(path)
