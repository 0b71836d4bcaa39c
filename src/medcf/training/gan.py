"""GAN losses: the non-saturating logistic loss with R1 on real images, and one alternating optimizer step.

Non-saturating logistic loss (Goodfellow et al. 2014, §3: G maximises log D(G(z)) instead of minimising
log(1 − D(G(z))), which saturates early) with the R1 gradient penalty (Mescheder et al. 2018, "Which training
methods for GANs actually converge?", Eq. 9): γ/2 · E‖∇ₓ D(x)‖² on real images. This is StyleGAN2's pair
(Karras et al. 2020). Chosen over the hinge loss: R1 is what Mescheder et al. prove makes GAN training locally
convergent, and it needs no spectral normalisation, so the patch discriminator stays MONAI's stock network.
A patch discriminator's D(x) is the mean of its patch logits; every patch logit enters the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from medcf.models.gan_components import GanComponents
from medcf.models.text import encode_prompts


def discriminator_loss(
    discriminator: torch.nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    r1_gamma: float = 1.0,
) -> torch.Tensor:
    """softplus(−D(x)) + softplus(D(G(z))) + γ/2‖∇ₓD(x)‖² (x real, (B, C, *spatial)); fake is detached here."""
    real = real.detach().requires_grad_(r1_gamma > 0)
    real_logits = discriminator(real, encoder_hidden_states, mask)
    fake_logits = discriminator(fake.detach(), encoder_hidden_states, mask)
    loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if r1_gamma > 0:
        score = real_logits.flatten(1).mean(dim=1).sum()  # Σ_b D(x_b): each image's gradient is its own
        (gradient,) = torch.autograd.grad(score, real, create_graph=True)
        loss = loss + r1_gamma / 2 * gradient.pow(2).flatten(1).sum(dim=1).mean()
    return loss


def generator_loss(
    discriminator: torch.nn.Module,
    fake: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Non-saturating generator loss softplus(−D(G(z)))."""
    return F.softplus(-discriminator(fake, encoder_hidden_states, mask)).mean()


@dataclass
class GanModules:
    """What one step touches: the unwrapped GAN (text encoder, configs), the prepared nets and their optimizers."""

    gan: GanComponents
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    generator_optimizer: torch.optim.Optimizer
    discriminator_optimizer: torch.optim.Optimizer
    ema: EMAModel | None
    r1_gamma: float
    max_grad_norm: float


def gan_step(
    modules: GanModules, batch: dict, accelerator: Accelerator, noise: torch.Generator
) -> tuple[float, float]:
    """One discriminator then one generator update on `batch`; returns (generator loss, discriminator loss)."""
    device, gan = accelerator.device, modules.gan
    real = batch["pixel_values"].to(device)
    mask = batch["mask"].to(device) if gan.mask_conditioning else None
    with torch.no_grad():
        states = encode_prompts(gan, batch["prompt"])  # the frozen text encoder's (B, L, D)
    latent_shape = (real.shape[0], gan.generator.config.latent_dim)
    # 1. Discriminator: real images against fresh fakes, R1 on the reals.
    with torch.no_grad():
        fake = modules.generator(torch.randn(latent_shape, generator=noise).to(device), states, mask)
    d_loss = discriminator_loss(modules.discriminator, real, fake, states, mask, r1_gamma=modules.r1_gamma)
    _update(accelerator, d_loss, modules.discriminator_optimizer, modules.discriminator, modules.max_grad_norm)
    # 2. Generator: new noise, through the updated discriminator.
    fake = modules.generator(torch.randn(latent_shape, generator=noise).to(device), states, mask)
    g_loss = generator_loss(modules.discriminator, fake, states, mask)
    _update(accelerator, g_loss, modules.generator_optimizer, modules.generator, modules.max_grad_norm)
    if modules.ema is not None:
        modules.ema.step(gan.generator.parameters())
    losses = accelerator.gather(torch.stack([g_loss.detach(), d_loss.detach()])[None]).mean(dim=0)
    return losses[0].item(), losses[1].item()


def _update(
    accelerator: Accelerator, loss: torch.Tensor, optimizer: torch.optim.Optimizer, net: torch.nn.Module, clip: float
) -> None:
    optimizer.zero_grad(set_to_none=True)  # also the gradients the other player's step left on this net
    accelerator.backward(loss)
    if clip > 0:
        accelerator.clip_grad_norm_(net.parameters(), clip)
    optimizer.step()
