"""Text-to-image sampling: THE loop, with classifier-free guidance and Latent Drift; and its image-to-image twin,
InstructPix2Pix's loop with image and text guidance (`instruct_edit`).

Latent Drift (Yeganeh et al., CVPR 2025, Eq. 4): a signed shift δ moves the prior to z_T ~ N(δ·1, I) and is
added after every reverse step, z_{t-1} = Step(ε̂_θ(z_t, t, c), z_t) + δ·1. δ is a scalar or one value per
latent channel. With δ = 0 the loop is the vanilla Stable Diffusion sampler step for step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from medcf.models import (
    Components,
    decode_latents,
    encode_prompts,
    has_mask_condition,
    latent_channels,
    mask_latents,
    vae_scale_factor,
)
from medcf.models.instruct import is_instruct, source_latents
from medcf.prompts import NULL_PROMPT

SCHEDULERS = ("ddim", "ddpm", "dpm++")
IMAGE_GUIDANCE = 1.5  # InstructPix2Pix's s_I, the paper's and the pipeline's default
TEXT_GUIDANCE = 7.5  # its s_T


def sampling_scheduler(components: Components, name: str) -> SchedulerMixin:
    """A sampler sharing the training noise schedule (betas, prediction type) of `components.scheduler`."""
    config = components.scheduler.config
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")  # Lu et al. 2022
    raise ValueError(f"scheduler={name!r}: unknown; choose one of {SCHEDULERS}")


def drift_tensor(latent_drift: float | Sequence[float], latent_channels: int) -> torch.Tensor:
    """δ as a (1, C, 1, 1) tensor broadcast over latents; a scalar applies to every channel."""
    drift = torch.as_tensor(latent_drift, dtype=torch.float32)
    if drift.dim() == 0:
        drift = drift.repeat(latent_channels)
    if drift.shape != (latent_channels,):
        raise ValueError(
            f"latent_drift={list(drift.tolist())}: give a scalar or {latent_channels} values, one per latent channel"
        )
    return drift.view(1, latent_channels, 1, 1)


@torch.no_grad()
def generate(
    components: Components,
    prompts: list[str],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
    scheduler: str = "ddim",
    generator: torch.Generator | None = None,
    latent_drift: float | Sequence[float] = 0.0,
    drift_prior: bool = True,
    drift_every_step: bool = True,
    height: int | None = None,
    width: int | None = None,
    latents: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Prompts → images (B, C, H, W) in [-1, 1]; `latents` (B, 4, H/f, W/f) fixes the initial noise z_T.

    `mask` (B, 1, H, W) in {0, 1}, at the image size, is required by, and only by, mask-conditioned models
    (DGM-VLC's hybrid condition); vanilla StableDiffusionPipeline cannot pass that extra channel, this loop can.
    """
    if isinstance(prompts, str):
        raise ValueError(f"prompts={prompts!r}: pass a list of strings, e.g. [{prompts!r}]")
    if is_instruct(components):
        raise ValueError("this InstructPix2Pix model edits given images; use `medcf counterfactual --engine instruct`")
    unet, device = components.unet, components.unet.device
    vae_scale = vae_scale_factor(components)
    height = height or unet.config.sample_size * vae_scale
    width = width or unet.config.sample_size * vae_scale
    if height % vae_scale or width % vae_scale:
        raise ValueError(f"height={height}, width={width}: both must be multiples of the VAE factor {vae_scale}")
    channels = latent_channels(components)  # the U-Net's output; a mask-conditioned input has one more
    shape = (len(prompts), channels, height // vae_scale, width // vae_scale)
    drift = drift_tensor(latent_drift, channels).to(device, unet.dtype)
    condition = mask_condition(components, mask, shape, (height, width))
    sampler = sampling_scheduler(components, scheduler)
    sampler.set_timesteps(num_inference_steps, device=device)

    # 1. Encode the null prompt and the prompts in one batch: [unconditional, conditional] (Ho & Salimans 2022)
    embeds = encode_prompts(components, [NULL_PROMPT] * len(prompts) + list(prompts))

    # 2. Prior z_T ~ N(δ·1, I) (Latent Drift), scaled to the sampler's initial noise level
    latents = initial_latents(components, shape, sampler, drift if drift_prior else 0, generator, latents)

    # 3. Denoise, adding δ after every step (Eq. 4)
    step_drift = drift if drift_every_step else torch.zeros_like(drift)
    uncond, cond = embeds.chunk(2)
    latents = denoise(
        components,
        latents,
        cond,
        uncond,
        sampler,
        sampler.timesteps,
        guidance_scale=guidance_scale,
        drift=step_drift,
        condition=condition,
        generator=generator,
    )

    # 4. Decode
    return decode_latents(components, latents)


def initial_latents(
    components: Components,
    shape: tuple[int, ...],
    sampler: SchedulerMixin,
    drift: torch.Tensor | float,
    generator: torch.Generator | None,
    latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """z_T: `latents` (or noise drawn where the generator lives, so a CPU generator gives the same noise on any
    device), scaled to the sampler's initial noise level, plus δ (Latent Drift's prior N(δ·1, I))."""
    unet = components.unet
    if latents is None:
        noise_device = generator.device if generator is not None else unet.device
        latents = torch.randn(shape, generator=generator, device=noise_device, dtype=unet.dtype)
    elif latents.shape != shape:
        raise ValueError(f"latents shape {tuple(latents.shape)}: expected {shape} for these prompts and size")
    return latents.to(unet.device, unet.dtype) * sampler.init_noise_sigma + drift


StepCallback = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def denoise(
    components: Components,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    uncond_embeds: torch.Tensor | Sequence[torch.Tensor],
    sampler: SchedulerMixin,
    timesteps: torch.Tensor,
    *,
    guidance_scale: float,
    drift: torch.Tensor,
    condition: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """The reverse steps over `timesteps`: z ← Step(ε̂_cfg(z, t), z) + δ, then `callback(i, t, z)` may replace z.

    `uncond_embeds` is one null-prompt embedding or one per step (null-text inversion, Mokady et al. 2023);
    editing starts part-way (SDEdit) or blends a known region after each step (inpainting) through these two.
    """
    for i, t in enumerate(timesteps):
        null = uncond_embeds[i] if isinstance(uncond_embeds, Sequence) else uncond_embeds
        model_input = sampler.scale_model_input(latents, t)
        noise_pred = guided_output(components, model_input, t, prompt_embeds, null, guidance_scale, condition)
        latents = sampler.step(noise_pred, t, latents, generator=generator).prev_sample + drift
        if callback is not None:
            latents = callback(i, t, latents)
    return latents


def guided_output(
    components: Components,
    model_input: torch.Tensor,
    t: torch.Tensor,
    prompt_embeds: torch.Tensor,
    uncond_embeds: torch.Tensor,
    guidance_scale: float,
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): u + w·(c − u), both halves in one U-Net batch.

    `condition` (B, 1, h, w), or (B, 1, x, y, z), is the mask channel of a mask-conditioned U-Net; it is not noise,
    so it skips the sampler's input scaling and is appended here.
    """
    model_input = torch.cat([model_input] * 2)
    if condition is not None:
        model_input = torch.cat([model_input, torch.cat([condition] * 2)], dim=1)
    embeds = torch.cat([uncond_embeds, prompt_embeds])
    uncond, cond = components.unet(model_input, t, encoder_hidden_states=embeds).sample.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


def mask_condition(
    components: Components, mask: torch.Tensor | None, shape: tuple[int, ...], image_size: tuple[int, ...]
) -> torch.Tensor | None:
    """The mask at latent resolution (B, 1, h, w), or (B, 1, x, y, z) for a volume model; None for a model without a
    mask input. `shape` is the latents', `image_size` the (H, W) or (X, Y, Z) the masks must have."""
    if not has_mask_condition(components):
        if mask is not None:
            raise ValueError("mask given, but this model is not mask-conditioned; drop the mask")
        return None
    if mask is None:
        spatial = "X, Y, Z" if len(image_size) == 3 else "H, W"
        raise ValueError(f"this model is mask-conditioned: pass mask=(B, 1, {spatial}) in {{0, 1}}")
    if mask.shape[0] != shape[0] or tuple(mask.shape[2:]) != tuple(image_size):
        expected = (shape[0], 1, *image_size)
        raise ValueError(f"mask shape {tuple(mask.shape)}: expected one mask per prompt at the image size, {expected}")
    unet = components.unet
    return mask_latents(mask, tuple(shape[2:])).to(unet.device, unet.dtype)


@torch.no_grad()
def instruct_edit(
    components: Components,
    pixel_values: torch.Tensor,
    instructions: Sequence[str],
    *,
    num_inference_steps: int = 25,
    guidance_scale: float = TEXT_GUIDANCE,
    image_guidance_scale: float = IMAGE_GUIDANCE,
    latent_drift: float | Sequence[float] = 0.0,
    scheduler: str = "ddim",
    generator: torch.Generator | None = None,
    latents: torch.Tensor | None = None,
    timesteps: torch.Tensor | None = None,
) -> torch.Tensor:
    """InstructPix2Pix (Brooks et al., CVPR 2023): source images (B, C, H, W) in [-1, 1] edited by one instruction
    each → images in [-1, 1]; `latents` fixes the initial noise (B, C_z, h, w). With `timesteps`, the last steps of
    the sampler's, `latents` is the state z_t at timesteps[0] (an SDEdit start, editing.counterfactual's strength)
    and is denoised from there as given. Image and text guidance (Eq. 3):

        ε̃ = ε(z, ∅, ∅) + s_I · (ε(z, c_I, ∅) − ε(z, ∅, ∅)) + s_T · (ε(z, c_I, c_T) − ε(z, c_I, ∅))

    c_I the source latent (models/instruct.py), c_T the instruction; the three terms run in one U-Net batch in the
    order of diffusers' StableDiffusionInstructPix2PixPipeline, which gives the same image for the same noise and
    scheduler. Latent Drift shifts the prior and every step by δ, as in `generate`.
    """
    if not is_instruct(components):
        raise ValueError("this model has no source-image input; train one with train.method=instruct-pix2pix")
    if len(instructions) != len(pixel_values):
        raise ValueError(f"{len(instructions)} instruction(s) for {len(pixel_values)} image(s); give one per image")
    unet = components.unet
    image = source_latents(components, pixel_values).to(unet.device, unet.dtype)
    drift = drift_tensor(latent_drift, latent_channels(components)).to(unet.device, unet.dtype)
    sampler = sampling_scheduler(components, scheduler)
    sampler.set_timesteps(num_inference_steps, device=unet.device)
    text = encode_prompts(components, [*instructions, *[NULL_PROMPT] * len(instructions)])
    embeds = torch.cat([text, text[len(instructions) :]])  # [c_T, ∅, ∅]
    condition = torch.cat([image, image, torch.zeros_like(image)])  # [c_I, c_I, ∅]
    if timesteps is None:
        latents = initial_latents(components, tuple(image.shape), sampler, drift, generator, latents)
        timesteps = sampler.timesteps
    elif latents is None or latents.shape != image.shape:
        raise ValueError(f"timesteps given: pass z_t at timesteps[0] as latents, shaped {tuple(image.shape)}")
    latents = latents.to(unet.device, unet.dtype)
    for t in timesteps:
        model_input = torch.cat([sampler.scale_model_input(torch.cat([latents] * 3), t), condition], dim=1)
        full, image_only, neither = unet(model_input, t, encoder_hidden_states=embeds).sample.chunk(3)
        noise_pred = neither + image_guidance_scale * (image_only - neither) + guidance_scale * (full - image_only)
        latents = sampler.step(noise_pred, t, latents, generator=generator).prev_sample + drift
    return decode_latents(components, latents, channels=pixel_values.shape[1])
