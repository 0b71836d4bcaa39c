"""What a training run leaves for people: manifest, loss table and curve, sample grids, report, model card."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from medcf.atomic import atomic_path
from medcf.figures import grid, line_chart, save_figure
from medcf.report import Section, relative, write_report

PACKAGES = ("medcf", "torch", "diffusers", "transformers", "accelerate", "peft", "numpy")


def environment() -> dict[str, object]:
    """Versions and hardware, so a figure can be traced to the software and machine that made it."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": versions,
    }


def write_json(path: Path, values: dict) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(values, indent=2, default=str) + "\n")
    return path


def write_losses(run_dir: Path, losses: Sequence[float], *, title: str) -> Path:
    """loss.csv (step, loss) and loss.png: raw per-step loss and its running mean over 50 steps."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["step", "loss"])
    writer.writerows((step, f"{loss:.6g}") for step, loss in enumerate(losses, start=1))
    with atomic_path(run_dir / "loss.csv") as temporary:
        temporary.write_text(buffer.getvalue())
    steps = np.arange(1, len(losses) + 1)
    window = min(50, max(1, len(losses)))
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    series = {"loss": (steps, losses), f"mean of {window}": (steps[window - 1 :], smooth)}
    return line_chart(series, run_dir / "loss.png", xlabel="optimizer step", ylabel="loss", title=title, log_y=True)


def write_sample_grid(images: torch.Tensor, path: Path) -> Path:
    """Images (B, C, H, W) in [-1, 1] as a PNG grid numbered 1..B in prompt order."""
    pixels = ((images.float().mean(dim=1) + 1) / 2).clamp(0, 1).cpu().numpy()  # grey display [0, 1]
    return save_figure(grid(list(pixels), first_label=1), path)


def write_training_report(run_dir: Path, *, title: str, summary: dict, prompts: Sequence[str]) -> Path:
    """index.html + report.md of a run: summary table, loss curve, latest samples and their prompts."""
    grids = sorted((run_dir / "samples").glob("step-*.png"))
    sections = [
        Section("Run", table=[{"field": key, "value": value} for key, value in summary.items()]),
        Section("Loss", figures=[(relative(run_dir / "loss.png", run_dir), "training loss per optimizer step")]),
    ]
    if grids:
        figures = [(relative(path, run_dir), f"samples at {path.stem}") for path in grids[-3:]]
        numbered = [f"{i}. {prompt or '(null prompt)'}" for i, prompt in enumerate(prompts, start=1)]
        sections.append(Section("Samples (EMA weights, fixed noise)", paragraphs=numbered, figures=figures))
    return write_report(run_dir, title, sections)


def write_model_card(model_dir: Path, *, summary: dict, config_yaml: str, command: str) -> Path:
    """README.md beside the weights: how the model was made (data, command, config, steps, hardware, time)."""
    lines = ["# medcf model", "", "Trained with medcf; loads with `medcf.models.load_components` or diffusers.", ""]
    lines += ["| field | value |", "|---|---|"] + [f"| {key} | {value} |" for key, value in summary.items()]
    lines += ["", "## Command", "", "```", command, "```", "", "## Config", "", "```yaml", config_yaml.rstrip(), "```"]
    with atomic_path(model_dir / "README.md") as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    return model_dir / "README.md"
