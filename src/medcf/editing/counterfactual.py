"""Counterfactual image editing: the same image under another prompt (Latent Drift, Yeganeh et al. 2025, §3.3).

Four engines, all with Latent Drift δ and an optional mask that keeps everything outside it unchanged:

- "sdedit" (Meng et al., ICLR 2022): noise the image to t₀ = strength·T along the drifted forward process
  (z_t = √ᾱ·z₀ + √(1−ᾱ)·(ε + δ), the noise the model was trained on) and denoise with the target prompt.
  Stochastic: the seed picks ε.
- "inversion": DDIM-invert with the source prompt (guidance 1) up to t₀, then regenerate with the target
  prompt. Deterministic. With `null_text=True` the null-prompt embedding of every step is first optimised so
  that the source prompt at the edit's guidance retraces the inversion (Mokady et al., CVPR 2023): without
  it, guidance > 1 drifts away from the inverted path and the counterfactual loses the patient's anatomy.
- "pix2pix-zero" (Parmar et al., SIGGRAPH 2023; `editing.pix2pix_zero`): DDIM-invert with the source prompt's
  embedding c (noise-regularised), then regenerate with c + Δc, Δc the mean embedding difference of the target
  and source paraphrase sets (`direction_prompts`), each step nudged to keep the cross-attention maps of the
  source's reconstruction. Deterministic.
- "instruct" (Brooks et al., CVPR 2023): an InstructPix2Pix model, trained on image pairs, regenerates the image
  under an instruction written from the two clinical rows, guided by the image and by the text: from pure noise at
  strength 1, as in the paper, else from the source DDIM-inverted to t₀ = strength·T by the same model (then
  deterministic, like the inversion engine).

`residual=True` returns x + D(ẑ_target) − D(ẑ_source): the engine's edit and its reconstruction (the same call
with the source prompt, Δc = 0, or "keep the image as it is"; same noise) both carry the VAE's and the
inversion's reconstruction error (≈ 0.02 of the range for cxr64's VAE), so their difference keeps only the
edit, and a null edit returns the image exactly. Twice the time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch

from medcf.editing.blend import blend_callback, check_mask, latent_mask, paste
from medcf.editing.noise_regularization import regularize_noise
from medcf.editing.null_text import null_text_embeddings
from medcf.editing.paraphrases import PromptSets
from medcf.editing.pix2pix_zero import CROSS_ATTENTION_GUIDANCE, edit_direction, pix2pix_zero_denoise
from medcf.generate import IMAGE_GUIDANCE, denoise, drift_tensor, instruct_edit, mask_condition, sampling_scheduler
from medcf.inversion import ddim_inversion_trajectory, inversion_steps
from medcf.models import Components, decode_latents, encode_images, encode_prompts, latent_channels, vae_scale_factor
from medcf.models.instruct import is_instruct, source_latents
from medcf.prompts import NULL_PROMPT
from medcf.prompts.instructions import NO_CHANGE

ENGINES = ("inversion", "pix2pix-zero", "sdedit", "instruct")
NoiseMap = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def counterfactual(
    components: Components,
    images: torch.Tensor,
    source_prompts: list[str],
    target_prompts: list[str],
    *,
    engine: str = "inversion",
    strength: float = 0.8,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
    latent_drift: float | Sequence[float] = 0.0,
    null_text: bool = False,
    null_text_steps: int = 10,
    direction_prompts: PromptSets | None = None,
    cross_attention_guidance: float | None = None,
    noise_regularization: bool | None = None,
    image_guidance_scale: float | None = None,
    mask: torch.Tensor | None = None,
    condition_mask: torch.Tensor | None = None,
    residual: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] described by `source_prompts` → the same images under `target_prompts`.

    `strength` ∈ (0, 1] is the fraction of the sampler's steps re-run (1: from pure noise). `mask` (B, 1, H, W)
    marks the region allowed to change; outside it the output equals the input exactly. `condition_mask` is
    the extra input of a mask-conditioned model (DGM-VLC), not an edit region.

    pix2pix-zero only: it edits with E(source prompt) + Δc. `direction_prompts` (per image, a source and a target
    sentence set, `editing.paraphrase_prompts`) give Δc, and then the target prompts are not used; without them
    Δc = E(target prompt) − E(source prompt). `cross_attention_guidance` is λ_xa (default 0.1; 0 turns it off);
    `noise_regularization` (default on) regularises the inversion's noise.

    instruct only: an InstructPix2Pix model (train.method=instruct-pix2pix) regenerates the image from noise under
    `target_prompts`, which are the instructions (`editing.edit_instructions`), with `guidance_scale` on the text
    and `image_guidance_scale` (default 1.5) on the image (`medcf.generate.instruct_edit`); strength < 1 starts it
    from the source DDIM-inverted to t₀ = strength·T by the same model instead of from pure noise.

    `residual`: the edit as a difference of two decodes added to the image (module docstring); sdedit, and instruct
    from pure noise, then need a `generator`, so that both passes draw the same noise.
    """
    _check_options(engine, len(images), direction_prompts, cross_attention_guidance, noise_regularization)
    if not len(images) == len(source_prompts) == len(target_prompts):
        raise ValueError(
            f"{len(images)} images, {len(source_prompts)} source and {len(target_prompts)} target prompts"
        )
    if (engine == "instruct") != is_instruct(components):
        raise ValueError(
            "engine='instruct' needs an InstructPix2Pix model (train.method=instruct-pix2pix)" if engine == "instruct"
            else f"this InstructPix2Pix model edits with engine='instruct', not {engine!r}"
        )  # fmt: skip
    if image_guidance_scale is not None and engine != "instruct":
        raise ValueError("image_guidance_scale is the instruct engine's; drop it or use engine='instruct'")
    if residual and generator is None and (engine == "sdedit" or (engine == "instruct" and strength == 1)):
        raise ValueError(
            f"residual edits with engine={engine!r} need a generator: both passes must draw the same noise"
        )
    options = {
        "engine": engine, "strength": strength, "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale, "latent_drift": latent_drift, "null_text": null_text,
        "null_text_steps": null_text_steps, "cross_attention_guidance": cross_attention_guidance,
        "noise_regularization": noise_regularization, "image_guidance_scale": image_guidance_scale, "mask": mask,
        "condition_mask": condition_mask,
    }  # fmt: skip
    state = None if generator is None else generator.get_state()
    edited = _edit(components, images, source_prompts, target_prompts, direction_prompts, generator, **options)
    if not residual:
        return edited
    if generator is not None:
        generator.set_state(state)  # the reconstruction draws the edit's noise
    null_prompts, null_sets = _null_edit(engine, source_prompts, direction_prompts)
    reconstruction = _edit(components, images, source_prompts, null_prompts, null_sets, generator, **options)
    return (images + (edited - reconstruction)).clamp(-1, 1)


def _null_edit(
    engine: str, source_prompts: list[str], direction_prompts: PromptSets | None
) -> tuple[list[str], PromptSets | None]:
    """Target prompts (and pix2pix-zero's sentence sets) that ask `engine` for the image it was given."""
    if engine == "instruct":
        return [NO_CHANGE] * len(source_prompts), None
    return source_prompts, None if direction_prompts is None else (direction_prompts[0], direction_prompts[0])


def _edit(
    components: Components,
    images: torch.Tensor,
    source_prompts: list[str],
    target_prompts: list[str],
    direction_prompts: PromptSets | None,
    generator: torch.Generator | None,
    *,
    engine: str,
    strength: float,
    num_inference_steps: int,
    guidance_scale: float,
    latent_drift: float | Sequence[float],
    null_text: bool,
    null_text_steps: int,
    cross_attention_guidance: float | None,
    noise_regularization: bool | None,
    image_guidance_scale: float | None,
    mask: torch.Tensor | None,
    condition_mask: torch.Tensor | None,
) -> torch.Tensor:
    """One pass of `engine` (`counterfactual`'s arguments, checked there)."""
    if engine == "instruct":
        start = {} if strength == 1 else _instruct_start(components, images, latent_drift, num_inference_steps,
                                                         strength)  # fmt: skip
        edited = instruct_edit(
            components, images, target_prompts, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            image_guidance_scale=IMAGE_GUIDANCE if image_guidance_scale is None else image_guidance_scale,
            latent_drift=latent_drift, generator=generator, **start,
        ).to(images)  # fmt: skip
        return edited if mask is None else paste(images, edited, check_mask(mask.to(images.device), images))
    unet = components.unet
    edit_mask = None if mask is None else check_mask(mask.to(images.device), images)
    latents = encode_images(components, images.to(unet.device, unet.dtype), sample=False)
    drift = drift_tensor(latent_drift, latent_channels(components)).to(unet.device, unet.dtype)
    condition = mask_condition(components, condition_mask, tuple(latents.shape), tuple(images.shape[-2:]))
    steps = inversion_steps(num_inference_steps, strength)
    nulls = encode_prompts(components, [NULL_PROMPT] * len(images))
    if engine == "sdedit":
        start, known, _ = _sdedit_start(components, latents, drift, num_inference_steps, steps, generator)
    else:
        trajectory = ddim_inversion_trajectory(
            components, latents, source_prompts, num_inference_steps=num_inference_steps, latent_drift=latent_drift,
            mask=condition_mask, strength=strength, regularize_noise=_regularizer(engine, noise_regularization, drift),
        )  # fmt: skip
        start, known = trajectory[-1], lambda i: trajectory[-2 - i]
        if null_text:
            nulls = null_text_embeddings(
                components, trajectory, source_prompts, guidance_scale=guidance_scale, drift=drift,
                num_inference_steps=num_inference_steps, condition=condition, inner_steps=null_text_steps,
            )  # fmt: skip
    sampler = sampling_scheduler(components, "ddim")
    sampler.set_timesteps(num_inference_steps, device=unet.device)
    callback = None
    if edit_mask is not None:
        callback = blend_callback(latent_mask(edit_mask, vae_scale_factor(components)).to(start), known)
    options = {"guidance_scale": guidance_scale, "drift": drift, "condition": condition, "callback": callback}
    if engine == "pix2pix-zero":
        prompt_embeds = encode_prompts(components, source_prompts)  # c, the inverted image's embedding
        direction_prompts = direction_prompts or ([[p] for p in source_prompts], [[p] for p in target_prompts])
        edit_embeds = prompt_embeds + edit_direction(components, *direction_prompts).to(prompt_embeds)  # c + Δc
        guidance = CROSS_ATTENTION_GUIDANCE if cross_attention_guidance is None else cross_attention_guidance
        edited = pix2pix_zero_denoise(
            components, start, prompt_embeds, edit_embeds, nulls, sampler, sampler.timesteps[-steps:],
            cross_attention_guidance=guidance, **options,
        )  # fmt: skip
    else:
        prompt_embeds = encode_prompts(components, target_prompts)
        edited = denoise(
            components, start, prompt_embeds, nulls, sampler, sampler.timesteps[-steps:], generator=generator,
            **options,
        )  # fmt: skip
    edited = decode_latents(components, edited, channels=images.shape[1]).to(images)
    return edited if edit_mask is None else paste(images, edited, edit_mask)


def _check_options(
    engine: str,
    batch: int,
    direction_prompts: PromptSets | None,
    cross_attention_guidance: float | None,
    noise_regularization: bool | None,
) -> None:
    """Refuse an unknown engine, and pix2pix-zero's options given to another engine or out of range."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: choose one of {ENGINES}")
    options = {
        "direction_prompts": direction_prompts, "cross_attention_guidance": cross_attention_guidance,
        "noise_regularization": noise_regularization,
    }  # fmt: skip
    if engine != "pix2pix-zero" and (given := [name for name, value in options.items() if value is not None]):
        raise ValueError(f"{', '.join(given)}: pix2pix-zero options; drop them or use engine='pix2pix-zero'")
    if cross_attention_guidance is not None and cross_attention_guidance < 0:
        raise ValueError(f"cross_attention_guidance={cross_attention_guidance}: give λ_xa ≥ 0 (0.1 in the paper)")
    if direction_prompts is not None and [len(sets) for sets in direction_prompts] != [batch, batch]:
        sizes = [len(sets) for sets in direction_prompts]
        raise ValueError(f"direction_prompts holds {sizes} sentence sets for {batch} images: one source and one "
                         "target set per image (editing.paraphrase_prompts)")  # fmt: skip


def _regularizer(engine: str, noise_regularization: bool | None, drift: torch.Tensor) -> NoiseMap | None:
    """pix2pix-zero's ε̂ regularisation during inversion (on unless turned off), around δ; its random offsets
    are one fixed draw, so the engine is deterministic like the inversion engine."""
    if engine != "pix2pix-zero" or noise_regularization is False:
        return None
    return partial(regularize_noise, mean=drift, generator=torch.Generator().manual_seed(0))


def _instruct_start(
    components: Components, images: torch.Tensor, latent_drift: float | Sequence[float], num_inference_steps: int,
    strength: float,
) -> dict[str, torch.Tensor]:
    """`instruct_edit`'s start below pure noise: the source DDIM-inverted to t₀ = strength·T by the instruct U-Net
    itself (image condition E(x), "keep the image as it is", guidance 1), a state that regenerates the source: one
    deterministic run where the randomly noised source (SDEdit's start) needs a draw per seed. On unseen validation
    patients (per-finding residual maps, models fine-tuned from cxr64 on its true pairs) its AUROC matched or beat
    one noised draw's: consolidation / effusion / cardiomegaly / nodule 0.86 / 0.97 / 0.84 / 0.80 against 0.85 /
    0.97 / 0.85 / 0.66 after 2500 steps, 0.90 / 0.99 / 0.93 / 0.55 against 0.87 / 0.99 / 0.92 / 0.50 after 5000,
    with consolidation's NCC lower there (0.49 against 0.58)."""
    unet = components.unet
    pixels = images.to(unet.device, unet.dtype)
    latents = encode_images(components, pixels, sample=False)
    trajectory = ddim_inversion_trajectory(
        components, latents, [NO_CHANGE] * len(images), num_inference_steps=num_inference_steps,
        latent_drift=latent_drift, strength=strength, condition=source_latents(components, pixels).to(latents),
    )  # fmt: skip
    sampler = sampling_scheduler(components, "ddim")
    sampler.set_timesteps(num_inference_steps, device=unet.device)
    return {"latents": trajectory[-1], "timesteps": sampler.timesteps[-(len(trajectory) - 1) :]}


def _sdedit_start(
    components: Components,
    latents: torch.Tensor,
    drift: torch.Tensor,
    num_inference_steps: int,
    steps: int,
    generator: torch.Generator | None,
):
    """SDEdit's z_t₀, for masked edits the source noised to the level reached after each step, and the steps."""
    sampler = sampling_scheduler(components, "ddim")
    sampler.set_timesteps(num_inference_steps, device=latents.device)
    timesteps = sampler.timesteps[-steps:]
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(latents.device) + drift

    def known(i: int) -> torch.Tensor:
        if i + 1 == len(timesteps):
            return latents
        return sampler.add_noise(latents, noise, timesteps[i + 1 : i + 2])

    start = sampler.add_noise(latents, noise, timesteps[:1])
    return start, known, timesteps
