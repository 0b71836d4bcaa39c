"""Resumable checkpoints: written whole or not at all, newest loadable one found on restart.

A checkpoint is accelerate's `save_state` (trained weights, optimizer, RNG of every process) plus medcf's own
state (LR schedule, loop state, EMA; training/resumable.py, no pickle) written into `step-NNNNNNN.partial/` and
renamed to `step-NNNNNNN/` only after every process has finished writing. A crash or a full disk during the
save leaves a `.partial` folder that is never loaded, and the previous checkpoint stays in place, because older
checkpoints are pruned only after the new one is complete. A complete checkpoint damaged later (a truncated
file) is skipped for the previous one, with a warning; one holding a pickle that could run code is refused.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors import SafetensorError

from medcf.training.resumable import Stateful, load_resumable, save_resumable

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


def save_checkpoint(
    accelerator: Accelerator, folder: Path, step: int, *, keep: int = 2, resumable: Mapping[str, Stateful | None]
) -> Path:
    """Save the accelerate state and `resumable` as `folder/step-NNNNNNN`, then keep the newest `keep` ones."""
    final = folder / f"step-{step:07d}"
    staging = final.with_name(final.name + ".partial")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(staging), safe_serialization=True)
        if accelerator.is_main_process:
            save_resumable(staging, resumable)
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


def resume(accelerator: Accelerator, folder: Path, resumable: Mapping[str, Stateful | None]) -> Path | None:
    """Load the newest checkpoint of `folder` that loads whole, warning about each damaged newer one; None when
    there is none. A checkpoint whose pickles could run code is refused (ValueError), never skipped quietly."""
    damaged = []
    for checkpoint in reversed(checkpoints(folder)):
        refuse_pickles(checkpoint)
        try:
            accelerator.load_state(str(checkpoint))
            load_resumable(checkpoint, resumable)
        except pickle.UnpicklingError:  # accelerate loads its pickles with weights_only=True: this one has code
            raise ValueError(f"{checkpoint}: refused: {REFUSAL}") from None
        except (OSError, RuntimeError, SafetensorError, KeyError, EOFError) as error:
            warnings.warn(f"{checkpoint}: damaged ({_one_line(error)}); trying the checkpoint before it", stacklevel=2)
            damaged.append(checkpoint.name)
            continue
        return checkpoint
    if damaged:  # the modules may hold half of a damaged state: never train on from there
        raise ValueError(f"{folder}: every checkpoint is damaged ({', '.join(damaged)}); delete them to start over")
    return None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


REFUSAL = "a file there holds more than tensors and numbers, and loading it could run code; delete it"


def refuse_pickles(checkpoint: Path) -> None:
    """accelerate loads `custom_checkpoint_N.pkl` with weights_only=False: medcf writes none, and refuses to resume
    from a checkpoint that has one (an earlier medcf's, whose loop state was pickled, or a planted one)."""
    for path in sorted(checkpoint.glob("custom_checkpoint_*.pkl")):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ValueError(f"{path}: refused: {REFUSAL}") from None
        raise ValueError(
            f"{path}: a checkpoint of an earlier medcf (its loop state pickled, which medcf no longer loads); "
            f"finish that run with the medcf that started it, or delete {checkpoint.parent} to start over"
        )
