"""Attribution and minimality on the semi-synthetic cohort a model was trained on, where the truth exists.

For each binary finding: unseen patients that have it (scoring.finding_cases), the model's healthy
counterparts scored against the true effect masks next to the classifier baselines (pixel AUROC, NCC,
Dice), and the minimality of those same counterparts (Monteiro et al.): how much of the change falls
outside the true effect of removing the finding.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from medcf.attribution.scoring import compare_methods, finding_cases
from medcf.classifier import ImageClassifier
from medcf.data.synthetic.kinds import get_kind
from medcf.metrics.soundness import minimality
from medcf.models import Components
from medcf.prompts import PromptTemplate

MEDCF = "healthy counterpart (medcf)"


def synthetic_cohort(data: str | Path) -> tuple[str, int] | None:
    """(kind, seed) of a dataset folder written by `medcf synth` (its dataset.json), else None."""
    description = Path(data) / "dataset.json"
    if not description.is_file():
        return None
    values = json.loads(description.read_text())
    return str(values["kind"]), int(values["seed"])


def binary_findings(kind: str) -> list[str]:
    return [factor.name for factor in get_kind(kind).factors if factor.levels == (0, 1)]


def attribution_scores(
    components: Components,
    template: PromptTemplate,
    classifier: ImageClassifier | None,
    *,
    kind: str,
    seed: int,
    size: int,
    n: int = 24,
    **counterpart_options: object,
) -> list[dict[str, object]]:
    """One row per (finding, method) with AUROC / NCC / Dice; the medcf rows add minimality."""
    rows = []
    for finding in tqdm(binary_findings(kind), desc="medcf: attribution vs true masks", unit="finding"):
        cases = finding_cases(finding, n=n, size=size, kind=kind, seed=seed)
        baseline = classifier if classifier is not None and finding in classifier.label_names else None
        counterparts: list[torch.Tensor] = []
        scored = compare_methods(
            components, template, cases, classifier=baseline, counterparts=counterparts, **counterpart_options
        )
        change = minimality(cases.images, torch.cat(counterparts).mean(dim=1, keepdim=True), cases.masks)
        for row in scored:
            extra = {f"minimality_{key}": value for key, value in change.items()} if row["method"] == MEDCF else {}
            rows.append({"finding": finding, **row, **extra})
    return rows
