"""The generators by name: what the writer and the preview grid need to know about each kind of dataset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medcf.data.synthetic.brain import render_brain
from medcf.data.synthetic.brain_subject import BRAIN_FACTORS, brain_row, sample_brain_subject
from medcf.data.synthetic.cxr import render_cxr
from medcf.data.synthetic.cxr_subject import CXR_FACTORS, cxr_row, sample_cxr_subject
from medcf.data.synthetic.factors import Factor, Render


@dataclass(frozen=True)
class Kind:
    """One generator: subject sampler, renderer, causal factors, clinical row, always-present masks."""

    name: str
    modality: str  # wording used in prompts, e.g. "chest X-ray"
    sample: Callable[[int, int], Any]  # (seed, index) -> subject
    render: Callable[..., Render]  # (subject, size, **factor_overrides) -> Render
    factors: tuple[Factor, ...]
    row: Callable[[Any], dict[str, object]]
    anatomy_masks: tuple[str, ...]  # the first one is the cohort's conditioning mask (mask_path)


KINDS = {
    "cxr": Kind("cxr", "chest X-ray", sample_cxr_subject, render_cxr, CXR_FACTORS, cxr_row, ("lungs", "heart")),
    "brain": Kind(
        "brain",
        "brain MRI",
        sample_brain_subject,
        render_brain,
        BRAIN_FACTORS,
        brain_row,
        ("brain", "ventricles"),
    ),
}


def get_kind(name: str) -> Kind:
    """The generator called `name`; unknown names raise ValueError listing the choices."""
    if name not in KINDS:
        raise ValueError(f"unknown synthetic dataset kind {name!r}; choose from {sorted(KINDS)}")
    return KINDS[name]
