"""GAN counterfactuals by latent optimisation: invert z under the source prompt, regenerate it under the target.

1. Abduction: z* = argmin_z ‖G(z, c_source[, m]) − x‖² / N + λ‖z‖² / d (GAN inversion by optimisation: Zhu et al.
   2016, "Generative Visual Manipulation on the Natural Image Manifold", Eq. 1; Creswell & Bharath 2018), Adam
   from z = 0, the prior's mode; λ keeps z where N(0, I) puts its mass, so G stays on the manifold it learnt.
2. Action + prediction: x_cf = G(z*, c_target[, m]): the same z, i.e. the same patient-specific factors the
   prompt does not name, with the prompt changed (Pearl's abduction-action-prediction, as in Pawlowski et al.
   2020's deep structural causal models).

Why latent optimisation rather than an encoder or a conditional translation generator: it works with any
generator medcf trains (`medcf train --set model.backend=gan`) and needs no second network or second training
run; it is deterministic (no noise draw); and it fits each image exactly as far as the generator can, where a
learnt encoder amortises and reconstructs less faithfully (Xia et al. 2022, GAN inversion survey, §3). A
translation generator (StarGAN, CycleGAN) would need a model per edit family trained on unpaired domains,
and would not share the conditioning contract (text + mask → image) of the diffusion models. The cost is an
optimisation per image (`steps` generator passes), small at medcf's sizes.
"""

from __future__ import annotations

import torch

from medcf.models.gan_components import GanComponents, synthesize
from medcf.models.text import encode_prompts


def invert_latents(
    gan: GanComponents,
    images: torch.Tensor,
    prompts: list[str],
    *,
    mask: torch.Tensor | None = None,
    steps: int = 200,
    learning_rate: float = 0.05,
    latent_weight: float = 1e-3,
) -> torch.Tensor:
    """Noise z* (B, latent_dim) whose G(z*, prompt[, mask]) reconstructs `images` (B, C, *spatial) in [-1, 1]."""
    generator = gan.generator
    expected = (generator.config.out_channels, *generator.config.sample_size)
    if tuple(images.shape[1:]) != expected or len(prompts) != images.shape[0]:
        raise ValueError(
            f"images {tuple(images.shape)} with {len(prompts)} prompts: expected (B, *{expected}) and one prompt per "
            "image; resize the images to the model's size (generator/config.json sample_size)"
        )
    if steps < 1:
        raise ValueError(f"steps={steps}: give at least 1 optimisation step (200 typical)")
    device, dtype = generator.device, generator.dtype
    target = images.to(device, dtype)
    mask = None if mask is None else mask.to(device, dtype)
    trainable = [parameter.requires_grad for parameter in generator.parameters()]
    generator.requires_grad_(False)  # only z is optimised; the generator's weights get no gradients
    try:
        with torch.enable_grad():
            states = encode_prompts(gan, prompts).detach().to(dtype)
            latents = torch.zeros(len(prompts), generator.config.latent_dim, device=device, requires_grad=True)
            optimizer = torch.optim.Adam([latents], lr=learning_rate)
            for _ in range(steps):
                reconstruction = generator(latents, states, mask)
                error = (reconstruction - target).pow(2).flatten(1).mean(dim=1)  # per-image mean squared error
                loss = (error + latent_weight * latents.pow(2).mean(dim=1)).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    finally:
        for parameter, flag in zip(generator.parameters(), trainable, strict=True):
            parameter.requires_grad_(flag)
    return latents.detach()


@torch.no_grad()
def gan_counterfactual(
    gan: GanComponents,
    images: torch.Tensor,
    source_prompts: list[str],
    target_prompts: list[str],
    *,
    mask: torch.Tensor | None = None,
    steps: int = 200,
    learning_rate: float = 0.05,
    latent_weight: float = 1e-3,
    residual: bool = False,
) -> torch.Tensor:
    """`images` (B, C, *spatial) in [-1, 1] as they would look under `target_prompts`: (B, C, *spatial) in [-1, 1].

    A mask-conditioned GAN takes the images' masks (B, 1, *spatial) in {0, 1} for both passes. `residual` returns
    x + G(z*, target) − G(z*, source): only what the prompts change is added, so the inversion's reconstruction
    error cancels (as the diffusion engines' `residual`).
    """
    if len(source_prompts) != len(target_prompts):
        count = f"{len(source_prompts)} source but {len(target_prompts)} target prompts"
        raise ValueError(f"{count}; pass one pair per image")
    latents = invert_latents(
        gan, images, source_prompts, mask=mask, steps=steps, learning_rate=learning_rate, latent_weight=latent_weight
    )
    edited = synthesize(gan, latents, target_prompts, mask=mask)
    if residual:
        edited = (images + edited - synthesize(gan, latents, source_prompts, mask=mask)).clamp(-1, 1)
    return edited
