"""Training the KL-regularised autoencoder of a latent diffusion model, and measuring its latent scale.

Rombach et al. (2022), LDM §3 and Appendix G: the autoencoder is trained on reconstruction plus a small
KL penalty towards N(0, I) (weight 1e-6), so latents stay close to the image detail yet bounded; the
diffusion model then sees latents multiplied by 1/std(latents) (Stable Diffusion's 0.18215).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from medcf.metrics import psnr, ssim
from medcf.training.memory import make_optimizer


class PosteriorAutoencoder(torch.nn.Module):
    """`vae` whose forward returns (reconstruction, KL per sample): DDP syncs gradients only through forward()."""

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def forward(
        self, pixel_values: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(pixel_values).latent_dist
        latents = posterior.sample(generator=generator)  # reparameterised z ~ q(z|x), as LDM trains
        # diffusers' kl() sums over (C, h, w): a volume's (B, z) is summed over z too, giving (B,) for both
        kl = posterior.kl().reshape(len(latents), -1).sum(dim=1)
        return self.vae.decode(latents).sample, kl  # (B, C, H, W) or (B, C, X, Y, Z), (B,) summed over latents


def vae_loss(model: torch.nn.Module, pixel_values: torch.Tensor, *, kl_weight: float, generator=None) -> torch.Tensor:
    """L1 reconstruction + kl_weight·KL, both per pixel; `model` is a (prepared) `PosteriorAutoencoder`."""
    reconstruction, kl = model(pixel_values, generator)
    # LDM sums both terms over pixels; dividing both by C·H·W keeps kl_weight on LDM's scale (1e-6) and the
    # loss in mean-absolute-error units. LDM's LPIPS and patch-GAN terms are left out: LPIPS needs ImageNet VGG
    # weights (not available offline) and both target natural-image texture, not grey-level fidelity.
    pixels_per_image = pixel_values[0].numel()
    l1 = (reconstruction - pixel_values).abs().mean()
    return l1 + kl_weight * kl.mean() / pixels_per_image


def train_vae(
    vae: AutoencoderKL,
    dataloader: Iterable[dict],
    *,
    max_steps: int,
    learning_rate: float = 1e-4,
    kl_weight: float = 1e-6,
    seed: int = 0,
    accelerator: Accelerator | None = None,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train `vae` in place on batches with "pixel_values" (B, C, R, R) in [-1, 1]; returns the loss of each step."""
    if max_steps < 1:
        raise ValueError(f"max_steps={max_steps}: train for at least one step")
    if learning_rate <= 0 or kl_weight < 0:
        raise ValueError(
            f"learning_rate={learning_rate}, kl_weight={kl_weight}: need learning_rate > 0, kl_weight ≥ 0"
        )
    accelerator = accelerator or Accelerator()
    vae.to(accelerator.device).train()
    # torch's AdamW default weight decay (1e-2), fused on CUDA (memory.py)
    optimizer = make_optimizer(list(vae.parameters()), learning_rate=learning_rate, weight_decay=1e-2)
    model, optimizer, dataloader = accelerator.prepare(PosteriorAutoencoder(vae), optimizer, dataloader)
    # Posterior noise from our own generator (one stream per process): the run depends on `seed` alone.
    generator = torch.Generator(accelerator.device).manual_seed(seed * 1000 + accelerator.process_index)
    batches = _cycle(dataloader)
    losses: list[float] = []
    bar = tqdm(
        total=max_steps, desc="medcf train-vae", unit="step", disable=not (progress and accelerator.is_main_process)
    )
    for step in range(1, max_steps + 1):
        # 1. Reconstruct a batch through a sampled latent
        pixel_values = next(batches)["pixel_values"].to(accelerator.device)
        loss = vae_loss(model, pixel_values, kl_weight=kl_weight, generator=generator)
        # 2. Update the encoder and decoder
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        # 3. Record the mean loss over processes
        value = accelerator.gather(loss.detach()[None]).mean().item()
        losses.append(value)
        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        bar.update()
        if on_step is not None:
            on_step(step, value)
    bar.close()
    vae.eval()
    return losses


def _cycle(dataloader: Iterable[dict]) -> Iterator[dict]:
    """Batches of `dataloader`, epoch after epoch."""
    while True:
        empty = True
        for batch in dataloader:
            empty = False
            yield batch
        if empty:
            raise ValueError(
                "the dataloader yields no batches; give it at least batch_size images (or drop_last=False)"
            )


@torch.no_grad()
def latent_scaling_factor(vae: AutoencoderKL, dataloader: Iterable[dict], *, max_batches: int = 8) -> float:
    """1 / std of the posterior-mean latents of up to `max_batches` batches (LDM §4.3; SD measured 0.18215)."""
    latents = [
        vae.encode(pixel_values.to(vae.device, vae.dtype)).latent_dist.mode().float()
        for pixel_values in _pixel_batches(dataloader, max_batches)
    ]
    std = torch.cat(latents).std().item()  # one scalar over batch, channels and positions, as for SD
    if not math.isfinite(std) or std == 0:
        raise ValueError(f"latent std is {std}; the VAE encodes every image to the same latent — train it first")
    return 1.0 / std


def set_scaling_factor(vae: AutoencoderKL, value: float) -> None:
    """Store `value` as vae.config.scaling_factor, where models/latents.py reads it."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"scaling_factor={value}: must be a positive finite number (1/std of the latents)")
    vae.register_to_config(scaling_factor=float(value))


@torch.no_grad()
def reconstruction_metrics(vae: AutoencoderKL, dataloader: Iterable[dict], *, max_batches: int) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and L1 of posterior-mean reconstructions on the [0, 1] display range, per image."""
    totals = {"psnr": 0.0, "ssim": 0.0, "l1": 0.0}
    count = 0
    for pixel_values in _pixel_batches(dataloader, max_batches):
        pixel_values = pixel_values.to(vae.device, vae.dtype)
        latents = vae.encode(pixel_values).latent_dist.mode()
        reconstruction = vae.decode(latents).sample.clamp(-1, 1)
        original, reconstructed = (_slices(pixel_values.float()) + 1) / 2, (_slices(reconstruction.float()) + 1) / 2
        size = len(pixel_values)  # psnr/ssim average over the batch; weight by size for the mean over images
        totals["psnr"] += psnr(original, reconstructed) * size
        totals["ssim"] += ssim(original, reconstructed) * size
        totals["l1"] += (original - reconstructed).abs().mean().item() * size
        count += size
    return {name: total / count for name, total in totals.items()} | {"images": count}


def _slices(images: torch.Tensor) -> torch.Tensor:
    """Images (B, C, H, W) as they are; volumes (B, C, X, Y, Z) as axial slices (B·Z, C, X, Y), for 2-D metrics."""
    if images.dim() == 4:
        return images
    return images.permute(0, 4, 1, 2, 3).flatten(0, 1)


def _pixel_batches(dataloader: Iterable[dict], max_batches: int) -> list[torch.Tensor]:
    """The "pixel_values" of the first `max_batches` batches."""
    if max_batches < 1:
        raise ValueError(f"max_batches={max_batches}: use at least one batch")
    batches = []
    for batch in dataloader:
        batches.append(batch["pixel_values"])
        if len(batches) == max_batches:
            break
    if not batches:
        raise ValueError("the dataloader yields no batches; give it at least one image")
    return batches
