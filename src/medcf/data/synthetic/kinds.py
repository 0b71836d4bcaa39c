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

FIRST_UNSEEN = 100_000  # cohort index of the first held-out patient: datasets are written from index 0


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


def unseen_patients(kind: str, n: int, *, seed: int, size: int) -> list[tuple[Any, Render, dict[str, object]]]:
    """(subject, render, clinical row) of the first `n` patients of cohort `seed` that no written dataset holds."""
    generator = get_kind(kind)
    subjects = [generator.sample(seed, FIRST_UNSEEN + index) for index in range(n)]
    return [(subject, generator.render(subject, size), generator.row(subject)) for subject in subjects]
