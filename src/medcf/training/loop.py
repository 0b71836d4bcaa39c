"""`train(config, run_dir)`: the latent diffusion training loop on HF Accelerate (one process, DDP, FSDP...).

The run folder holds everything: config.yaml (resolved), manifest.json (seeds, versions, data hash),
checkpoints/ (resumable), samples/ (grids), loss.csv/png, model/ (diffusers folder, EMA weights),
adapter/ (LoRA / textual-inversion files) and index.html + report.md. Started again on the same folder,
a run resumes from its newest complete checkpoint and continues with the same batches and noise.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from medcf.config import Config
from medcf.training.checkpoint import save_checkpoint
from medcf.training.data import TRAIN, batch_stream
from medcf.training.finish import finish_run
from medcf.training.gan_loop import train_gan
from medcf.training.methods import after_optimizer_step
from medcf.training.run import Run, setup_run
from medcf.training.sampling import write_samples
from medcf.training.step import training_loss


def train(config: Config, run_dir: str | Path, *, progress: bool = True, command: str = "") -> Path:
    """Train, or resume, the run in `run_dir`; returns the saved model folder `run_dir/model`."""
    if config.model.backend == "gan":  # its own loop: two players, no noise schedule (training/gan_loop.py)
        return train_gan(config, run_dir, progress=progress, command=command)
    run = setup_run(config, Path(run_dir), progress=progress)
    train_config, accelerator, state = config.train, run.accelerator, run.state
    stream = batch_stream(
        run.datasets[TRAIN],
        train_config.batch_size,
        seed=train_config.seed,
        start=state.step * train_config.gradient_accumulation_steps,
        process_index=accelerator.process_index,
        num_processes=accelerator.num_processes,
        num_workers=config.data.num_workers,
    )
    started = time.perf_counter()
    bar = tqdm(
        total=train_config.max_steps,
        initial=state.step,
        desc="medcf train",
        unit="step",
        disable=not (progress and accelerator.is_main_process),
    )
    while state.step < train_config.max_steps:
        loss = optimizer_step(run, stream)
        state.step += 1
        state.losses.append(loss)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{run.lr_scheduler.get_last_lr()[0]:.2g}", refresh=False)
        bar.update()
        if _due(state.step, train_config.checkpoint_every, train_config.max_steps):
            folder, kept = run.folder / "checkpoints", train_config.checkpoints_kept
            save_checkpoint(accelerator, folder, state.step, keep=kept, resumable=run.resumable)
        if _due(state.step, train_config.sample_every, train_config.max_steps) and accelerator.is_main_process:
            write_samples(
                run.components,
                run.samples,
                run.folder / "samples" / f"step-{state.step:07d}.png",
                ema=run.ema,
                parameters=run.parameters,
            )
        accelerator.wait_for_everyone()
    bar.close()
    return finish_run(run, seconds=time.perf_counter() - started, command=command)


def optimizer_step(run: Run, stream) -> float:
    """One optimizer step over gradient_accumulation_steps micro-batches; returns the mean loss of all processes."""
    accelerator, train_config = run.accelerator, run.config.train
    total = torch.zeros((), device=accelerator.device)
    for _ in range(train_config.gradient_accumulation_steps):
        batch = next(stream)
        with accelerator.accumulate(*run.prepared):
            loss = training_loss(run.forward, batch, run.inputs, run.state.generator, run.prior, run.encodings)
            accelerator.backward(loss)
            if accelerator.sync_gradients and train_config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(run.parameters, train_config.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
        total += loss.detach()
    after_optimizer_step(run.components, train_config.method)
    run.lr_scheduler.step()
    if run.ema is not None:
        run.ema.step(run.parameters)
    mean = total / train_config.gradient_accumulation_steps
    return accelerator.gather(mean[None]).mean().item()


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)
