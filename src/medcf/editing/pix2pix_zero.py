"""pix2pix-zero (Parmar et al., "Zero-shot Image-to-Image Translation", SIGGRAPH 2023, Algorithm 1).

1. Edit direction (§3.2): Δc = mean_i E(target_i) − mean_i E(source_i), E the text encoder's per-token hidden
   states (L, D), over two groups of sentences (`editing.paraphrases`); the edit embedding is c_edit = c + Δc,
   c the embedding of the prompt the image was inverted with.
2. Inversion (§3.1): DDIM inversion of the image with c, noise-regularised (`editing.noise_regularization`).
3. Cross-attention guidance (§3.3): a reconstruction pass from the inverted latent with c gives the reference
   maps M_t^ref; the edit pass with c_edit first moves x_t by one gradient step, x_t ← x_t − λ_xa·∇ₓ‖M_t^edit −
   M_t^ref‖², then denoises it. The two passes are run interleaved, step by step: the reconstruction does not
   depend on the edit, and only one step's maps are ever held.

Classifier-free guidance and Latent Drift (δ after every step, Yeganeh et al. 2025, Eq. 4) are those of
`medcf.generate.denoise`. The guidance loss uses the conditional branch's maps only (the authors' code also
guides the unconditional half, whose prompt the edit does not change): one U-Net pass of B, not 2B, images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from medcf.editing.cross_attention import CrossAttentionMaps, cross_attention_loss, recording_cross_attention
from medcf.editing.paraphrases import PromptSets
from medcf.generate import StepCallback, guided_output
from medcf.models import Components, encode_prompts

CROSS_ATTENTION_GUIDANCE = 0.1  # λ_xa, the authors' default (their code's `guidance_amount`)


def pix2pix_zero_settings(direction_prompts: PromptSets | None, cross_attention_guidance: float | None) -> dict:
    """What a settings.json records of a pix2pix-zero run: the first image's sentence sets and λ_xa; {} otherwise."""
    if direction_prompts is None:
        return {}
    guidance = CROSS_ATTENTION_GUIDANCE if cross_attention_guidance is None else cross_attention_guidance
    source, target = direction_prompts
    return {"direction prompts": {"source": source[0], "target": target[0]}, "cross-attention guidance": guidance}


def edit_direction(
    components: Components, source_prompts: Sequence[Sequence[str]], target_prompts: Sequence[Sequence[str]]
) -> torch.Tensor:
    """Δc (B, L, D) per image: the mean embedding of its target sentences minus that of its source sentences."""
    if len(source_prompts) != len(target_prompts):
        raise ValueError(f"{len(source_prompts)} source, {len(target_prompts)} target sets: give one pair per image")
    if any(not sentences for sentences in (*source_prompts, *target_prompts)):
        raise ValueError("an empty sentence set: give each image at least one source and one target prompt")
    directions = [
        encode_prompts(components, list(target)).mean(dim=0) - encode_prompts(components, list(source)).mean(dim=0)
        for source, target in zip(source_prompts, target_prompts, strict=True)
    ]
    return torch.stack(directions)


def pix2pix_zero_denoise(
    components: Components,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    edit_embeds: torch.Tensor,
    uncond_embeds: torch.Tensor | Sequence[torch.Tensor],
    sampler: SchedulerMixin,
    timesteps: torch.Tensor,
    *,
    guidance_scale: float,
    cross_attention_guidance: float = CROSS_ATTENTION_GUIDANCE,
    drift: torch.Tensor,
    condition: torch.Tensor | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Algorithm 1 from the inverted latents x_T: the edit under `edit_embeds` (c_edit), kept to the cross-attention
    maps of the reconstruction under `prompt_embeds` (c). With c_edit = c the result is the reconstruction.

    A DDIM `sampler` (deterministic, no input scaling). `uncond_embeds` is one null embedding or one per step
    (null-text inversion); `callback(i, t, z)` is applied to both passes (masked edits).
    """
    reference = latents
    with recording_cross_attention(components.unet) as store:
        for i, t in enumerate(timesteps):
            null = uncond_embeds[i] if isinstance(uncond_embeds, Sequence) else uncond_embeds
            # 1. Reconstruction step with c, recording M_t^ref of the conditional branch
            with store.recording() as maps:
                output = guided_output(components, reference, t, prompt_embeds, null, guidance_scale, condition)
            reference_maps = {name: probabilities.chunk(2)[1] for name, probabilities in maps.items()}
            reference = sampler.step(output, t, reference).prev_sample + drift

            # 2. Cross-attention guidance: x_t ← x_t − λ_xa·∇ₓ‖M_t^edit − M_t^ref‖²
            if cross_attention_guidance > 0:
                gradient = cross_attention_gradient(
                    components, store, latents, t, edit_embeds, reference_maps, condition
                )
                latents = latents - cross_attention_guidance * gradient

            # 3. Edit step with c_edit = c + Δc
            output = guided_output(components, latents, t, edit_embeds, null, guidance_scale, condition)
            latents = sampler.step(output, t, latents).prev_sample + drift
            if callback is not None:
                reference, latents = callback(i, t, reference), callback(i, t, latents)
    return latents


def cross_attention_gradient(
    components: Components,
    store: CrossAttentionMaps,
    latents: torch.Tensor,
    t: torch.Tensor,
    prompt_embeds: torch.Tensor,
    reference: dict[str, torch.Tensor],
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """∇ₓ Σ_layers ‖M_t(x, c_edit) − M_t^ref‖² (B, C, h, w), through one conditional U-Net pass; `store` is the
    recorder installed by `recording_cross_attention`. Only the latents get a gradient, not the weights."""
    with torch.enable_grad(), store.recording() as maps:
        latents = latents.detach().requires_grad_(True)
        model_input = latents if condition is None else torch.cat([latents, condition], dim=1)
        components.unet(model_input, t, encoder_hidden_states=prompt_embeds)
        (gradient,) = torch.autograd.grad(cross_attention_loss(maps, reference), latents)
    return gradient
