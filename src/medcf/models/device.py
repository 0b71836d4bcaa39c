"""Where a model runs: `--device auto|cpu|cuda|cuda:N|mps`, checked before anything loads."""

from __future__ import annotations

import re

import torch

from medcf.models.precision import resolve_precision

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device `name` names; "auto" takes CUDA, then Apple's MPS, then the CPU.

    An absent device is a one-line error with the fix, never a silent fall-back to the CPU.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if torch.backends.mps.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("device=mps: this torch build sees no Apple GPU; use --device cpu (or auto)")
        return torch.device("mps")
    if match := re.fullmatch(r"cuda(?::(\d+))?", name):
        return _cuda(int(match.group(1) or 0), name)
    raise ValueError(f"device={name!r}: unknown; choose {DEVICE_CHOICES}")


def _cuda(index: int, name: str) -> torch.device:
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ValueError(f"device={name}: torch {torch.__version__} ({build}) sees no CUDA GPU; use --device cpu")
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device={name}: only {count} CUDA device(s) visible (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """What to record beside results: 'cpu', or the accelerator's product name, e.g. 'cuda:0 (NVIDIA H200)'."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def run_settings(device: torch.device, precision: str) -> dict[str, str]:
    """The device and the precision that really ran, for an output's settings ("auto" resolved)."""
    return {"device": device_name(device), "precision": resolve_precision(precision, device)}
