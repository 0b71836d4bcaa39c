"""`train_gan(config, run_dir)`: the model.backend=gan training loop on HF Accelerate.

The run folder has the diffusion run's layout: config.yaml, manifest.json, checkpoints/ (resumable, no pickle),
samples/ (grids of fixed noise and prompts), loss.csv/png (generator and discriminator losses), model/ (the
`save_gan` folder, EMA generator weights) and index.html + report.md. Started again on the same folder, a run
resumes from its newest complete checkpoint and continues with the same batches and noise.
"""

from __future__ import annotations

import csv
import io
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from medcf.atomic import atomic_path
from medcf.config import Config
from medcf.figures import line_chart
from medcf.models.gan_components import gan_generate, save_gan
from medcf.prompts import PromptTemplate
from medcf.training.checkpoint import save_checkpoint
from medcf.training.data import TRAIN, batch_stream
from medcf.training.gan import gan_step
from medcf.training.gan_run import GanRun, setup_gan_run
from medcf.training.record import write_json, write_model_card, write_sample_grid, write_training_report
from medcf.training.run import read_manifest
from medcf.volumes.sampling import mid_axial_slices


def train_gan(config: Config, run_dir: str | Path, *, progress: bool = True, command: str = "") -> Path:
    """Train, or resume, the GAN run in `run_dir`; returns the saved model folder `run_dir/model` (`load_gan`)."""
    run = setup_gan_run(config, Path(run_dir), progress=progress)
    train_config, accelerator, state = config.train, run.accelerator, run.state
    stream = batch_stream(
        run.datasets[TRAIN],
        train_config.batch_size,
        seed=train_config.seed,
        start=state.step,
        process_index=accelerator.process_index,
        num_processes=accelerator.num_processes,
        num_workers=config.data.num_workers,
    )
    started = time.perf_counter()
    bar = tqdm(
        total=train_config.max_steps,
        initial=state.step,
        desc="medcf train (gan)",
        unit="step",
        disable=not (progress and accelerator.is_main_process),
    )
    while state.step < train_config.max_steps:
        batch = next(stream)  # seeded per step by batch_stream, so patches repeat on resume
        generator_loss, discriminator_loss = gan_step(run.modules, batch, accelerator, state.generator)
        state.step += 1
        state.generator_losses.append(generator_loss)
        state.discriminator_losses.append(discriminator_loss)
        bar.set_postfix(G=f"{generator_loss:.3f}", D=f"{discriminator_loss:.3f}", refresh=False)
        bar.update()
        if _due(state.step, train_config.checkpoint_every, train_config.max_steps):
            folder, kept = run.folder / "checkpoints", train_config.checkpoints_kept
            save_checkpoint(accelerator, folder, state.step, keep=kept, resumable=run.resumable)
        if _due(state.step, train_config.sample_every, train_config.max_steps) and accelerator.is_main_process:
            write_gan_samples(run, run.folder / "samples" / f"step-{state.step:07d}.png")
        accelerator.wait_for_everyone()
    bar.close()
    return finish_gan_run(run, seconds=time.perf_counter() - started, command=command)


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


def write_gan_samples(run: GanRun, path: Path) -> Path:
    """The sample prompts (and masks) through the EMA generator with fixed noise; 3-D: the middle axial slices."""
    generator, ema = run.gan.generator, run.modules.ema
    if ema is not None:
        ema.store(generator.parameters())
        ema.copy_to(generator.parameters())
    generator.eval()
    try:
        noise = torch.Generator().manual_seed(run.config.train.seed)
        images = gan_generate(run.gan, run.sample_prompts, mask=run.sample_masks, generator=noise)
    finally:
        generator.train()
        if ema is not None:
            ema.restore(generator.parameters())
    if images.ndim == 5:  # volumes (B, C, X, Y, Z), shown as the diffusion runs show theirs
        images = mid_axial_slices(images)
    return write_sample_grid(images, path)


def write_gan_losses(run_dir: Path, generator_losses: list[float], discriminator_losses: list[float]) -> Path:
    """loss.csv (step, generator_loss, discriminator_loss) and loss.png with both curves."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["step", "generator_loss", "discriminator_loss"])
    rows = zip(generator_losses, discriminator_losses, strict=True)
    writer.writerows((step, f"{g:.6g}", f"{d:.6g}") for step, (g, d) in enumerate(rows, start=1))
    with atomic_path(run_dir / "loss.csv") as temporary:
        temporary.write_text(buffer.getvalue())
    steps = np.arange(1, len(generator_losses) + 1)
    series = {"generator": (steps, generator_losses), "discriminator (with R1)": (steps, discriminator_losses)}
    return line_chart(series, run_dir / "loss.png", xlabel="step", ylabel="loss", title="medcf train (gan)")


def finish_gan_run(run: GanRun, *, seconds: float, command: str = "") -> Path:
    """Save the EMA generator with the discriminator and text encoder, the loss curves, report and manifest."""
    accelerator, folder, config = run.accelerator, run.folder, run.config
    model_dir, command = folder / "model", command or shlex.join(sys.argv)
    if accelerator.is_main_process:
        if run.modules.ema is not None:
            run.modules.ema.copy_to(run.gan.generator.parameters())  # the saved model carries the EMA weights
        run.gan.generator.eval()
        run.gan.discriminator.eval()
        save_gan(run.gan, model_dir)
        data = config.data
        template = PromptTemplate(data.modality, style=data.prompt_style, patient_info=data.patient_info)
        template.save_pretrained(model_dir)  # editing renders prompts as the model was trained
        summary = _summary(run, seconds)
        config_yaml = (folder / "config.yaml").read_text()
        write_model_card(model_dir, summary=summary, config_yaml=config_yaml, command=command)
        write_gan_losses(folder, run.state.generator_losses, run.state.discriminator_losses)
        title = f"medcf GAN training run: {folder.name}"
        write_training_report(folder, title=title, summary=summary, prompts=run.sample_prompts)
        manifest = read_manifest(folder)
        manifest["sessions"][-1].update({"command": command, "end_step": run.state.step, "seconds": round(seconds, 1)})
        write_json(folder / "manifest.json", manifest)
    accelerator.wait_for_everyone()
    return model_dir


def _summary(run: GanRun, seconds: float) -> dict:
    config, state = run.config, run.state
    generator_tail, discriminator_tail = state.generator_losses[-50:], state.discriminator_losses[-50:]
    return {
        "backend": "gan (non-saturating loss + R1, projection patch discriminator, text FiLM generator)",
        "data": f"{config.data.root} ({len(run.datasets[TRAIN])} training {_items(run)})",
        "steps": state.step,
        "batch": f"{config.train.batch_size} × {run.accelerator.num_processes} process(es)",
        "R1 γ": config.gan.r1_gamma,
        "final G / D loss (mean of last 50)": f"{np.mean(generator_tail):.4f} / {np.mean(discriminator_tail):.4f}",
        "mask-conditioned": run.gan.mask_conditioning,
        "device": str(run.accelerator.device),
        "training time this session": f"{seconds:.0f} s",
    }


def _items(run: GanRun) -> str:
    """What the generator learnt to make: images of data.resolution px, or volumes / patches of (X, Y, Z) voxels."""
    if run.config.model.spatial_dims == 2:
        return f"images, {run.config.data.resolution} px"
    value_range = run.gan.generator.config.value_range
    size = "×".join(str(side) for side in run.gan.generator.config.sample_size)
    return f"volumes, {'patches' if run.config.data.patch else 'whole'} of {size} voxels, values {value_range}"
