"""`train_classifier_to_folder`: fit the classifier on a dataset folder, hold out patients, save and report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from medcf.classifier.data import labelled_images
from medcf.classifier.fit import fit_classifier, training_precision
from medcf.classifier.storage import save_classifier
from medcf.data import split_by_patient
from medcf.data.adapters import image_folder
from medcf.figures import line_chart
from medcf.models.device import device_name, resolve_device
from medcf.report import Section, write_report


def train_classifier_to_folder(
    root: str | Path,
    out: str | Path,
    *,
    resolution: int = 64,
    label_names: Sequence[str] | None = None,
    csv: str = "metadata.csv",
    modality: str = "chest X-ray",
    holdout_fraction: float = 0.1,
    steps: int = 1500,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = True,
) -> Path:
    """Train on the patients outside a held-out `holdout_fraction`; the held-out AUROC per label is in
    metrics.json, the model card and the report. Returns the classifier folder `out`."""
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction={holdout_fraction}: give a fraction in (0, 1), e.g. 0.1")
    where = resolve_device(device)
    run_on = {"device": device_name(where), "precision": training_precision(precision, where)}  # before any work
    cohort = image_folder(root, csv, modality=modality)
    parts = split_by_patient(cohort, {"train": 1 - holdout_fraction, "holdout": holdout_fraction}, seed=seed)
    train = labelled_images(parts["train"], resolution=resolution, label_names=label_names)
    held_out = labelled_images(parts["holdout"], resolution=resolution, label_names=train.label_names)
    model, history = fit_classifier(
        train.images, train.labels, train.label_names, val_images=held_out.images, val_labels=held_out.labels,
        steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed, device=device,
        precision=run_on["precision"], progress=progress,
    )  # fmt: skip
    metrics = {
        "data": str(root), "train_images": len(train.ids), "holdout_images": len(held_out.ids),
        "steps": steps, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
        "holdout_auroc": history["auroc"], "holdout_accuracy": history["accuracy"], **run_on,
    }  # fmt: skip

    settings = {key: value for key, value in metrics.items() if not key.startswith("holdout_")}

    def write_extras(staging: Path) -> None:
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        losses = history["loss"]
        line_chart({"loss": (range(1, len(losses) + 1), losses)}, staging / "loss.png", xlabel="step", ylabel="BCE")
        table = [{"label": name, "held-out AUROC": history["auroc"][name], "accuracy": history["accuracy"][name]}
                 for name in train.label_names]  # fmt: skip
        sections = [
            Section("Held-out patients", paragraphs=[f"{len(held_out.ids)} images of unseen patients."], table=table),
            Section("Training", figures=[("loss.png", "loss per step")], table=[settings]),
        ]  # fmt: skip
        write_report(staging, "medcf classifier", sections)

    return save_classifier(model, out, write_extras=write_extras)
