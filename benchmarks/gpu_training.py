"""The training rows of benchmarks/gpu.py: medcf's optimizer step vs a train_text_to_image-style loop, with and
without gradient checkpointing: seconds per image, fraction of the matmul peak, and peak memory of each."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from gpu_models import Plan, allocated, alternate, peak_memory, table_row

from medcf.config import Config, load_config
from medcf.models import Components
from medcf.training.data import TRAIN, batch_stream
from medcf.training.loop import optimizer_step
from medcf.training.run import setup_run, training_datasets
from medcf.training.setup import build_components

CHECKPOINTING = "train.gradient_checkpointing=true"


@dataclass
class Arm:
    """One training loop: `step(batch)` takes an optimizer step on a batch of that size."""

    step: Callable[[int], None]
    zero_grad: Callable[[], None]
    note: str = ""


def medcf_arm(overrides: list[str], folder: Path, batches: tuple[int, ...], checkpointing: bool) -> Arm:
    """medcf's own step (training/loop.py) on a run built by setup_run; batches drawn before timing."""
    run = setup_run(load_config(None, [*overrides, *([CHECKPOINTING] if checkpointing else [])]), folder)
    if checkpointing and not run.components.unet.is_gradient_checkpointing:
        raise RuntimeError(f"{CHECKPOINTING}: setup_run left the U-Net without gradient checkpointing")
    streams = {batch: drawn(batch_stream(run.datasets[TRAIN], batch, seed=0)) for batch in batches}
    return Arm(lambda batch: optimizer_step(run, streams[batch]), run.optimizer.zero_grad, run.encodings_note)


def drawn(stream: Iterator[dict], count: int = 2) -> Iterator[dict]:
    """`count` batches of `stream`, read once and then repeated: the GPU step is timed, not the loader."""
    return itertools.cycle([next(stream) for _ in range(count)])


def reference_arm(config: Config, device: torch.device, batches: tuple[int, ...], checkpointing: bool) -> Arm:
    """diffusers' train_text_to_image.py step: frozen VAE and text encoder cast to the half dtype, the U-Net in
    fp32 under autocast, MSE to the noise, clip to max_grad_norm, AdamW, EMA (--use_ema)."""
    half = torch.bfloat16 if config.train.mixed_precision == "bf16" else torch.float32
    model = config.model
    components = build_components(pretrained=model.pretrained, resolution=config.data.resolution)
    components.vae.to(device, half)
    components.text_encoder.to(device, half)
    unet = components.unet.to(device).train()
    if checkpointing:
        unet.enable_gradient_checkpointing()  # the example's --gradient_checkpointing
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.train.learning_rate, weight_decay=1e-2)
    ema = EMAModel(unet.parameters(), decay=config.train.ema_decay)
    dataset = training_datasets(config)[TRAIN]
    streams = {batch: drawn(batch_stream(dataset, batch, seed=0)) for batch in batches}

    def step(batch: int) -> None:
        reference_step(components, optimizer, ema, next(streams[batch]), half, config.train.max_grad_norm)

    return Arm(step, lambda: optimizer.zero_grad(set_to_none=True))


def reference_step(
    components: Components,
    optimizer: torch.optim.Optimizer,
    ema: EMAModel,
    batch: dict,
    half: torch.dtype,
    max_grad_norm: float,
) -> None:
    """One optimizer step as train_text_to_image.py takes it (epsilon prediction, no extras)."""
    vae, unet, scheduler = components.vae, components.unet, components.scheduler
    device = unet.device
    pixel_values = batch["pixel_values"].to(device, half).repeat(1, 3, 1, 1)  # grey → RGB, as the example's loader
    tokens = components.tokenizer(
        list(batch["prompt"]), padding="max_length", max_length=components.tokenizer.model_max_length,
        truncation=True, return_tensors="pt",
    ).input_ids.to(device)  # fmt: skip
    with torch.no_grad():
        latents = vae.encode(pixel_values).latent_dist.sample() * vae.config.scaling_factor
        embeds = components.text_encoder(tokens)[0]
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),), device=device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    with torch.autocast(device.type, dtype=half, enabled=half != torch.float32):
        prediction = unet(noisy, timesteps, encoder_hidden_states=embeds).sample
    F.mse_loss(prediction.float(), noise.float()).backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    ema.step(unet.parameters())


def warm_up(build: Callable[[], Arm], device: torch.device, batches: tuple[int, ...]) -> tuple[Arm, dict]:
    """Build an arm and take two steps at each batch: its peak memory per batch (its weights, gradients, AdamW
    and EMA state and activations: all allocated above what was held before it was built), or "out of memory"."""
    baseline = allocated(device)
    arm, memory = build(), {}
    for batch in batches:
        allocated(device)  # resets the peak counter; the baseline stays the one before the build
        try:
            for _ in range(2):  # the first step also allocates AdamW's moments
                arm.step(batch)
            memory[batch] = peak_memory(device, baseline)
        except torch.OutOfMemoryError:
            memory[batch] = "out of memory"
        if memory[batch] == "out of memory":  # outside `except`: its traceback holds the step's tensors
            arm.zero_grad()
            gc.collect()
            torch.cuda.empty_cache()
    return arm, memory


def training_rows(
    overrides: list[str], folder: Path, device: torch.device, flops: dict[int, float], plan: Plan, peak: float
) -> list[dict]:
    """Gradient checkpointing off, then on: both loops built and warmed up (their memory), then timed in
    alternating blocks of `steps` steps at each batch of `flops` (U-Net FLOP per image) that fits both."""
    config, batches, steps = load_config(None, overrides), tuple(flops), plan.training_steps
    precision = "bf16" if config.train.mixed_precision == "bf16" else "fp32"
    rows = []
    for checkpointing in (False, True):
        medcf, medcf_memory = warm_up(
            lambda c=checkpointing: medcf_arm(overrides, folder / f"run-{c}", batches, c), device, batches
        )
        reference, reference_memory = warm_up(
            lambda c=checkpointing: reference_arm(config, device, batches, c), device, batches
        )
        for batch in batches:
            median = dict.fromkeys(("medcf", "reference"), "not timed: out of memory")
            if "out of memory" not in (medcf_memory[batch], reference_memory[batch]):
                calls = {"medcf": blocks(medcf, batch, steps), "reference": blocks(reference, batch, steps)}
                block, _ = alternate(calls, device, repeats=plan.repeats)
                median = {name: seconds / steps for name, seconds in block.items()}
            rows.append(table_row(
                "training step" + (", gradient checkpointing" if checkpointing else ""),
                "train_text_to_image-style loop", precision, batch, per_image(median["medcf"], batch),
                per_image(median["reference"], batch), flops=flops[batch], peak=peak, note=medcf.note,
                **{"medcf peak GiB": medcf_memory[batch], "reference peak GiB": reference_memory[batch]},
            ))  # fmt: skip
        del medcf, reference
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def blocks(arm: Arm, batch: int, steps: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(steps):
            arm.step(batch)

    return run


def per_image(step_seconds: float | str, batch: int) -> float | str:
    return step_seconds / batch if isinstance(step_seconds, float) else step_seconds
