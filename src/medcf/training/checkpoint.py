"""Resumable checkpoints: written whole or not at all, newest complete one found on restart.

A checkpoint is accelerate's `save_state` (trained weights, optimizer, LR schedule, RNG of every process,
and registered objects: EMA and the loop state) written into `step-NNNNNNN.partial/` and renamed to
`step-NNNNNNN/` only after every process has finished writing. A crash or a full disk during the save
leaves a `.partial` folder that is never loaded, and the previous checkpoint stays in place, because older
checkpoints are pruned only after the new one is complete.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator

CHECKPOINT_PATTERN = re.compile(r"^step-(\d{7})$")


class LoopState:
    """What the loop needs besides weights to continue exactly: step, noise generator, loss history."""

    def __init__(self, seed: int, process_index: int) -> None:
        self.step = 0
        # Noise, timesteps and prompt dropout of each process come from its own generator, saved here.
        self.generator = torch.Generator().manual_seed(seed * 1_000 + process_index)
        self.losses: list[float] = []

    def state_dict(self) -> dict:
        return {"step": self.step, "generator": self.generator.get_state(), "losses": list(self.losses)}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self.losses = [float(loss) for loss in state["losses"]]


def save_checkpoint(accelerator: Accelerator, folder: Path, step: int, *, keep: int = 2) -> Path:
    """Save the accelerate state as `folder/step-NNNNNNN`, then keep only the newest `keep` checkpoints."""
    final = folder / f"step-{step:07d}"
    staging = final.with_name(final.name + ".partial")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(staging), safe_serialization=True)
        if accelerator.is_main_process:
            _sync_folder(staging)
    except OSError as error:  # e.g. disk full: free what was written; older checkpoints stay untouched
        shutil.rmtree(staging, ignore_errors=True)
        previous = latest_checkpoint(folder)
        kept = f"{previous.name} is intact" if previous else "no earlier checkpoint exists"
        raise OSError(
            f"{final}: checkpoint not saved ({error.strerror or error}); {kept}: free space and rerun to resume"
        ) from error
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # the same step saved again (e.g. the final step of a resumed run)
            shutil.rmtree(final)
        os.replace(staging, final)
        for old in checkpoints(folder)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints in `folder`, oldest first (`.partial` folders are ignored)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_dir() and CHECKPOINT_PATTERN.match(path.name))


def latest_checkpoint(folder: Path) -> Path | None:
    found = checkpoints(folder)
    return found[-1] if found else None


def _sync_folder(folder: Path) -> None:
    """fsync every file so the rename publishes data that is on disk, not only in the page cache."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
