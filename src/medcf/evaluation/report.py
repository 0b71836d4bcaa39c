"""The evaluation folder: metrics.json, sample and nearest-neighbour panels, the privacy histogram, a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from medcf.figures import panel, save_figure
from medcf.report import Section, write_report

if TYPE_CHECKING:
    from medcf.evaluation.run import Evaluation
    from medcf.metrics.privacy import MemorizationAudit


def write_evaluation(result: Evaluation, folder: Path) -> Path:
    """Write every file of an evaluation into `folder` (a staging folder); returns index.html."""
    (folder / "metrics.json").write_text(json.dumps(result.metrics, indent=2, default=_plain) + "\n")
    count = min(8, len(result.samples))
    pairs = [list(_display(result.real[:count])), list(_display(result.samples[:count]))]
    save_figure(panel(pairs, [["held-out"] * count, ["generated"] * count], tile=96), folder / "samples.png")
    for name, audit in result.privacy.items():
        privacy_histogram(audit, folder / f"privacy_{name}.png", title=f"nearest training patient, {name}")
    nearest = result.privacy["pixels"]
    closest = torch.argsort(nearest.distances)[:count].tolist()
    neighbours = [
        list(_display(result.samples[closest])),
        list(_display(result.training_images[nearest.indices[closest]])),
    ]
    titles = [[f"sample {i}" for i in closest], [f"d={nearest.distances[i]:.3f}" for i in closest]]
    save_figure(panel(neighbours, titles, tile=96), folder / "nearest.png")
    return write_report(folder, "medcf evaluate", _sections(result))


def privacy_histogram(audit: MemorizationAudit, path: Path, *, title: str) -> Path:
    """Histogram of nearest-training distances: samples vs held-out real patients, with the near-copy line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.4), dpi=110)
    axes.hist(audit.held_out_distances.numpy(), bins=40, alpha=0.6, label="held-out real patients", density=True)
    axes.hist(audit.distances.numpy(), bins=40, alpha=0.6, label="generated samples", density=True)
    axes.axvline(audit.threshold, color="black", linewidth=1, label="near-copy threshold")
    axes.set(xlabel="distance to the nearest training image", ylabel="density", title=title)
    axes.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)
    return path


def _sections(result: Evaluation) -> list[Section]:
    metrics = result.metrics
    generation = metrics["generation"]
    sections = [
        Section("Generation", figures=[("samples.png", "held-out patients and samples for their rows")],
                table=[{"metric": key, "value": value} for key, value in generation.items()]),
        Section("Memorisation audit", paragraphs=[
            "Each sample's nearest training image; a sample closer than all but 1% of held-out real patients "
            "is flagged as a near-copy."],
            figures=[(f"privacy_{name}.png", name) for name in result.privacy] + [("nearest.png", "closest pairs")],
            table=[{"space": name, **summary} for name, summary in metrics["privacy"].items()]),
    ]  # fmt: skip
    if "effectiveness" in metrics:
        table = [{"label": k, **v} for k, v in metrics["effectiveness"].items() if isinstance(v, dict)]
        sections.append(Section("Effectiveness of samples", table=table))
        soundness = metrics["soundness"]
        sections.append(Section(
            "Counterfactual soundness",
            paragraphs=[f"Null edit repeated (L1, 0–255): {soundness['composition_l1']}"],
            table=soundness["finding_edits"],
        ))  # fmt: skip
    if result.attribution:
        sections.append(Section("Attribution against the true effect masks", table=result.attribution))
    return sections


def _display(images: torch.Tensor) -> np.ndarray:
    return ((images[:, 0] + 1) / 2).clamp(0, 1).numpy()


def _plain(value: object) -> object:
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
