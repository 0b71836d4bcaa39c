"""What every generator shares: causal factors, factor overrides, the render type and the effect mask.

A subject is (anatomy parameters, noise seed) + factor values. A render is a pure function of the
subject and the factor values, so a counterfactual is the same call with one factor changed: same
anatomy, same noise realisation. The effect mask of a counterfactual is where it differs from the
factual image by more than EFFECT_THRESHOLD, united with the finding's own mask.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

EFFECT_THRESHOLD = 0.02  # display units (about 5 of 255 grey levels): smaller differences are not an effect
AGE_RANGE = (18, 95)  # years: ages the generators sample and accept
AGE_STEP = 20  # years: the age counterfactuals are age - 20 and age + 20 where inside AGE_RANGE


@dataclass(frozen=True)
class Factor:
    """A causal factor a counterfactual can change; `levels` None means a numeric factor (age)."""

    name: str
    levels: tuple[object, ...] | None


@dataclass(frozen=True)
class Render:
    """One rendered image and its masks (anatomy, and one per finding present)."""

    image: np.ndarray  # (H, W) float32 in [0, 1], display convention; CT: (X, Y, Z) float32 whole HU, RAS+
    masks: dict[str, np.ndarray]  # name → bool, the image's shape


def with_factors(subject: Any, factors: tuple[Factor, ...], overrides: dict[str, object]) -> Any:
    """The subject with some factor values replaced; unknown factors or values raise ValueError."""
    known = {factor.name: factor for factor in factors}
    for name, value in overrides.items():
        if name not in known:
            raise ValueError(f"unknown factor {name!r}; choose from {sorted(known)}")
        levels = known[name].levels
        if levels is None and not (AGE_RANGE[0] <= float(value) <= AGE_RANGE[1]):  # type: ignore[arg-type]
            raise ValueError(f"{name}={value!r} is outside {AGE_RANGE[0]}-{AGE_RANGE[1]} years; pass an age inside")
        if levels is not None and value not in levels:
            raise ValueError(f"{name}={value!r} is not a level of {name}; choose from {list(levels)}")
    return dataclasses.replace(subject, **overrides)


def counterfactual_values(subject: Any, factors: tuple[Factor, ...]) -> list[tuple[str, object]]:
    """Every single-factor change of a subject: ages ± AGE_STEP, and every other level of each factor."""
    changes: list[tuple[str, object]] = []
    for factor in factors:
        value = getattr(subject, factor.name)
        if factor.levels is None:
            ages = (value - AGE_STEP, value + AGE_STEP)
            changes += [(factor.name, age) for age in ages if AGE_RANGE[0] <= age <= AGE_RANGE[1]]
        else:
            changes += [(factor.name, level) for level in factor.levels if level != value]
    return changes


def effect_mask(
    factual: Render, counterfactual: Render, factor: str, *, threshold: float = EFFECT_THRESHOLD
) -> np.ndarray:
    """Where a single-factor counterfactual changed the image: |difference| > threshold ∪ finding mask.

    `threshold` is in the image's units: display units for 2-D images, HU for CT volumes.
    """
    changed = np.abs(factual.image - counterfactual.image) > threshold
    for render in (factual, counterfactual):
        if factor in render.masks:
            changed |= render.masks[factor]
    return changed


def logistic(logit: float) -> float:
    """Probability from a log-odds: the prevalence models are logistic in their causes."""
    return float(1.0 / (1.0 + np.exp(-logit)))
