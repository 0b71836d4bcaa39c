"""Finishing a training run: the replicas must agree; then the EMA model, adapters, loss curve, report, manifest."""

from __future__ import annotations

import hashlib
import shlex
import sys
from pathlib import Path

import torch
from accelerate.utils import gather_object

from medcf.models import save_components
from medcf.prompts import PromptTemplate
from medcf.training.data import HOLDOUT, TRAIN
from medcf.training.methods import export_method
from medcf.training.record import write_json, write_losses, write_model_card, write_training_report
from medcf.training.run import Run, read_manifest
from medcf.training.validation import held_out_loss


def replica_fingerprint(parameters: list[torch.nn.Parameter]) -> str:
    """SHA-256 of the trained weights' bytes: equal on every process iff the DDP replicas agree."""
    digest = hashlib.sha256()
    for parameter in parameters:
        digest.update(parameter.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def finish_run(run: Run, *, seconds: float, command: str = "") -> Path:
    """Check the replicas agree, then save the EMA model, adapters, loss curve, report and manifest."""
    accelerator, folder, config = run.accelerator, run.folder, run.config
    fingerprints = gather_object([replica_fingerprint(run.parameters)])
    if len(set(fingerprints)) > 1:
        raise RuntimeError(f"{folder}: the {len(fingerprints)} processes ended with different weights; report this")
    model_dir, command = folder / "model", command or shlex.join(sys.argv)
    if accelerator.is_main_process:
        if run.ema is not None:
            run.ema.copy_to(run.parameters)  # the saved model carries the EMA weights
        save_components(export_method(run.components, config.train.method, folder / "adapter"), model_dir)
        PromptTemplate(
            config.data.modality, style=config.data.prompt_style, patient_info=config.data.patient_info
        ).save_pretrained(model_dir)
        held_out = held_out_loss(run.components, run.datasets[HOLDOUT]) if HOLDOUT in run.datasets else None
        summary = _summary(run, seconds, held_out)
        write_model_card(
            model_dir,
            summary=summary,
            config_yaml=(folder / "config.yaml").read_text(),
            command=command,
        )
        write_losses(folder, run.state.losses, title=f"medcf train ({config.train.method})")
        write_training_report(
            folder, title=f"medcf training run: {folder.name}", summary=summary, prompts=run.samples.prompts
        )
        manifest = read_manifest(folder)
        manifest["sessions"][-1].update({"command": command, "end_step": run.state.step, "seconds": round(seconds, 1)})
        manifest["replica_fingerprints"] = fingerprints
        manifest["held_out_loss"] = held_out
        write_json(folder / "manifest.json", manifest)
    accelerator.wait_for_everyone()
    return model_dir


def _summary(run: Run, seconds: float, held_out: float | None) -> dict:
    config, losses = run.config, run.state.losses
    tail = losses[-50:]
    return {
        "method": config.train.method,
        "data": f"{config.data.root} ({len(run.datasets[TRAIN])} training images, {config.data.resolution} px)",
        "steps": run.state.step,
        "batch": f"{config.train.batch_size} × {config.train.gradient_accumulation_steps} accumulation "
        f"× {run.accelerator.num_processes} process(es)",
        "latent drift δ (training)": f"{config.train.latent_drift} (target: {config.train.drift_target})",
        "final loss (mean of last 50 steps)": f"{sum(tail) / max(1, len(tail)):.4f}",
        "held-out loss (fixed noise, 8 timesteps)": "no held-out patients" if held_out is None else f"{held_out:.4f}",
        "device": str(run.accelerator.device),
        "attention / optimizer": f"{run.memory['attention']} / {run.memory['optimizer']}",
        "gradient checkpointing": ", ".join(run.memory["gradient_checkpointing"]) or "off",
        "training time this session": f"{seconds:.0f} s",
    }
