"""Population attribute-effect maps: where a model puts one clinical attribute's effect.

DGM-VLC (Xing et al. 2024, arXiv 2410.13823) generates matched pairs of images that differ in one clinical
attribute only (same noise, same other fields) and averages their signed difference: smoking, for example,
shifts lung intensity. Here a pair sampler yields the pairs (a diffusion model, or a ground-truth renderer to
check the estimator against), and the summary is the mean shift inside an anatomy mask with a percentile
bootstrap confidence interval over pairs (Efron & Tibshirani 1993, §13.3).

Units: by default differences are in display units, 1 = black to white, i.e. half a difference in the model range
[-1, 1]; a volume model trained on a value range (e.g. [-1024, 1024] HU) reports them in its units instead.
Images and volumes alike: the maps and mask are (H, W) or (X, Y, Z).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from medcf.metrics.attribution import percentile_interval
from medcf.prompts import DEFAULT_VOCABULARY, apply_edit

# Default (low, high) edits per attribute: the effect is high − low.
ATTRIBUTE_CONTRASTS: dict[str, tuple[str, str]] = {
    "smoking": ("smoking=never", "smoking=current"),
    "sex": ("sex=F", "sex=M"),
    "age": ("age=40", "age=70"),
    **{key: (f"{key}=absent", f"{key}=present") for key in DEFAULT_VOCABULARY.findings},
}
_EDITED_FIELD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\+=|-=|=)")
BOOTSTRAP_BLOCK = 256  # resamples drawn at once, so memory stays O(block · n) for any n_bootstrap

DISPLAY_UNITS = "display units"
# Pair indices → (images_low, images_high), each (B, 1, *spatial) in [-1, 1], B = len(indices). Pair i must
# depend only on i, never on which batch it came in, so results do not change with the batch size.
SamplePairs = Callable[[range], tuple[torch.Tensor, torch.Tensor]]


def contrast(attribute: str, *, low: str | None = None, high: str | None = None) -> tuple[str, str]:
    """The (low, high) edits for `attribute`: the ones given, else ATTRIBUTE_CONTRASTS; both must edit it."""
    if (low is None or high is None) and attribute not in ATTRIBUTE_CONTRASTS:
        raise ValueError(
            f"attribute {attribute!r} has no default contrast; pass low= and high= edits (e.g. '{attribute}=...') "
            f"or choose one of {sorted(ATTRIBUTE_CONTRASTS)}"
        )
    default_low, default_high = ATTRIBUTE_CONTRASTS.get(attribute, (None, None))
    low, high = low or default_low, high or default_high
    for edit in (low, high):
        match = _EDITED_FIELD.match(edit)
        if match is None or match.group(1) != attribute:
            raise ValueError(f"edit {edit!r} does not change {attribute!r}; write it as '{attribute}=<value>'")
    if low.replace(" ", "") == high.replace(" ", ""):
        raise ValueError(f"low and high are the same edit {low!r}; a contrast needs two different values")
    return low, high


def matched_rows(
    rows: Sequence[Mapping[str, object]], attribute: str, *, low: str | None = None, high: str | None = None
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Each base row with the low and with the high edit applied: pairs that differ in `attribute` only.

    A finding edit follows `apply_edit`: a present pathology also clears the "no finding" marker.
    """
    low, high = contrast(attribute, low=low, high=high)
    return [apply_edit(row, low) for row in rows], [apply_edit(row, high) for row in rows]


@dataclass(frozen=True)
class EffectResult:
    """The population effect of one attribute contrast, in `units` (display units: model range / 2)."""

    attribute: str
    low: str  # edit text of the reference images, e.g. "smoking=never"
    high: str  # edit text of the changed images; every difference is high − low
    effect_map: np.ndarray  # (H, W) or (X, Y, Z) float64, mean signed difference over pairs
    mean_low: np.ndarray  # same shape, mean low image in value_range, the background of figures
    mean_high: np.ndarray
    pair_shifts: np.ndarray  # (n,) mean difference inside the anatomy mask, one per pair
    outside_shifts: np.ndarray  # (n,) mean difference outside the mask: the contrast, ~0 for a local effect
    interval: tuple[float, float]  # percentile bootstrap CI of the mean shift over pairs
    confidence: float
    n_bootstrap: int
    seed: int  # of the bootstrap's numpy Generator
    inside_fraction: float  # Σ|effect| inside the mask / Σ|effect|; NaN for an all-zero map
    units: str = DISPLAY_UNITS  # e.g. "HU"
    value_range: tuple[float, float] = (0.0, 1.0)  # what the model range [-1, 1] maps onto

    @property
    def n(self) -> int:
        return len(self.pair_shifts)

    @property
    def mean_shift(self) -> float:
        """Mean difference inside the anatomy mask; equals the effect map's mean over the mask."""
        return float(self.pair_shifts.mean())

    @property
    def outside_shift(self) -> float:
        return float(self.outside_shifts.mean())

    @property
    def units_note(self) -> str:
        if self.units == DISPLAY_UNITS:
            return "display units: 1 = black to white (model range [-1, 1] / 2)"
        low, high = self.value_range
        return f"{self.units}: the model range [-1, 1] is [{low:g}, {high:g}] {self.units}"

    def summary(self) -> dict[str, object]:
        """Every scalar of the result, for effect.json and the report (NaN as None)."""
        values = {
            "attribute": self.attribute,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "mean_shift": self.mean_shift,
            "ci_low": self.interval[0],
            "ci_high": self.interval[1],
            "confidence": self.confidence,
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
            "outside_shift": self.outside_shift,
            "inside_fraction": self.inside_fraction,
            "max_abs_effect": float(np.abs(self.effect_map).max()),
            "units": self.units_note,
        }
        return {key: None if isinstance(value, float) and np.isnan(value) else value for key, value in values.items()}


def bootstrap_interval(
    values: np.ndarray, *, n_bootstrap: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (n,) (Efron & Tibshirani 1993, §13.3); seeded, so repeatable."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"values has shape {values.shape}; pass one value per pair, shape (n,) with n ≥ 1")
    if not 0 < confidence < 1 or n_bootstrap < 1:
        raise ValueError(f"confidence={confidence}, n_bootstrap={n_bootstrap}: need 0 < confidence < 1, ≥ 1 resample")
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, n_bootstrap, BOOTSTRAP_BLOCK):
        block = min(BOOTSTRAP_BLOCK, n_bootstrap - start)
        means.append(values[rng.integers(0, len(values), size=(block, len(values)))].mean(axis=1))
    return percentile_interval(np.concatenate(means), confidence)


def population_effect(
    sample_pairs: SamplePairs,
    n: int,
    *,
    attribute: str,
    anatomy_mask: np.ndarray,
    low: str | None = None,
    high: str | None = None,
    batch_size: int = 16,
    seed: int = 0,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    progress: bool = True,
    value_range: tuple[float, float] = (0.0, 1.0),
    units: str = DISPLAY_UNITS,
) -> EffectResult:
    """Average `n` matched pairs from `sample_pairs` into an effect map and a mean shift inside `anatomy_mask`.

    anatomy_mask: (H, W) or (X, Y, Z) bool at the image size, e.g. the population lung atlas (`cohort_anatomy_mask`).
    `low`/`high` name the edits `sample_pairs` applies (defaults: ATTRIBUTE_CONTRASTS); they label the result.
    value_range, units: the model range [-1, 1] is reported as value_range in `units`, e.g. (-1024, 1024), "HU".
    """
    low, high = contrast(attribute, low=low, high=high)
    mask = _check_mask(anatomy_mask)
    if n < 1 or batch_size < 1:
        raise ValueError(f"n={n}, batch_size={batch_size}: both must be ≥ 1 (DGM-VLC-style maps want n ≥ 100)")
    sums = np.zeros((2, *mask.shape))  # Σ low, Σ high in display units
    inside, outside = [], []
    bar = tqdm(total=n, desc=f"medcf effect {attribute}", unit="pair", disable=not progress)
    for start in range(0, n, batch_size):
        indices = range(start, min(start + batch_size, n))
        pair = np.stack([_values(images, len(indices), mask.shape, value_range) for images in sample_pairs(indices)])
        sums += pair.sum(axis=1)
        difference = pair[1] - pair[0]  # (B, *spatial)
        inside.append(difference[:, mask].mean(axis=1))
        outside.append(difference[:, ~mask].mean(axis=1))
        bar.update(len(indices))
    bar.close()
    mean_low, mean_high = sums / n
    effect_map = mean_high - mean_low
    pair_shifts = np.concatenate(inside)
    return EffectResult(
        attribute=attribute,
        low=low,
        high=high,
        effect_map=effect_map,
        mean_low=mean_low,
        mean_high=mean_high,
        pair_shifts=pair_shifts,
        outside_shifts=np.concatenate(outside),
        interval=bootstrap_interval(pair_shifts, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed),
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        seed=seed,
        inside_fraction=_inside_fraction(effect_map, mask),
        units=units,
        value_range=(float(value_range[0]), float(value_range[1])),
    )


def _check_mask(anatomy_mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(anatomy_mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"anatomy_mask has shape {mask.shape}; pass one (H, W) or (X, Y, Z) mask at the image size")
    mask = mask > 0.5
    if mask.all() or not mask.any():
        raise ValueError("anatomy_mask is all inside or all outside; the shift needs pixels on both sides of it")
    return mask


def _values(images: torch.Tensor, count: int, size: tuple[int, ...], value_range: tuple[float, float]) -> np.ndarray:
    """Images (B, 1, *size) in [-1, 1] → (B, *size) float64 in value_range, checked against the batch asked for."""
    expected = (count, 1, *size)
    if tuple(images.shape) != expected:
        raise ValueError(
            f"sample_pairs gave images of shape {tuple(images.shape)}; expected {expected} "
            "(one grey image or volume per pair index, at the anatomy mask's size)"
        )
    pixels = images.detach().double().cpu().numpy()[:, 0]
    if pixels.min() < -1 or pixels.max() > 1:
        raise ValueError("sample_pairs gave images outside [-1, 1]; return them in the model range")
    low, high = value_range
    return low + (pixels + 1.0) / 2.0 * (high - low)


def _inside_fraction(effect_map: np.ndarray, mask: np.ndarray) -> float:
    """The share of the effect's absolute mass inside the mask: 1 = all the change is where expected."""
    total = np.abs(effect_map).sum()
    return float(np.abs(effect_map[mask]).sum() / total) if total > 0 else float("nan")
