"""The range of every numeric command-line option, checked in one pass before any model loads or file is written.

One rule per option name, shared by every command that takes it, so `--steps` means the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable

SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes a signed 64-bit integer


def _count(value: float) -> str | None:
    return None if value >= 1 else "must be ≥ 1"


def _finite(value: float) -> str | None:
    return None if math.isfinite(value) else "must be a finite number"


def _fraction(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1], the fraction of the sampler's steps re-run"


def _seed(value: float) -> str | None:
    return None if 0 <= value < SEED_LIMIT else f"must be in 0..{SEED_LIMIT - 1}"


def _sigma(value: float) -> str | None:
    return None if math.isfinite(value) and value >= 0 else "must be a finite number ≥ 0 (pixels; 0 = no smoothing)"


RULES: dict[str, Callable[[float], str | None]] = {
    "steps": _count, "n": _count, "batch_size": _count, "seeds": _count, "resample": _count,
    "attribution_cases": _count, "resolution": _count, "port": _count,
    "guidance": _finite, "drift": _finite, "strength": _fraction, "seed": _seed, "sigma": _sigma,
}  # fmt: skip


def check_options(**values: float | list[float] | None) -> None:
    """One-line ValueError naming the first option out of its range, e.g. `--steps -5: must be ≥ 1`."""
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None and (problem := RULES[name](item)):
                raise ValueError(f"--{name.replace('_', '-')} {item}: {problem}")
