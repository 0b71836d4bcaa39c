"""ct-synth's table: `<name>.md` (what a reader opens), `<name>.json` (every number) and `<name>_montage.png`
(per model: a generated volume, its smoking-removal edit beside the true counterfactual, and its smoking effect
map beside the renderer's, each as a central axial slice)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medcf.atomic import atomic_path
from medcf.data.intensity import window_level
from medcf.data.nifti import display_slice
from medcf.evaluation.ct_edits import CT_EDITS
from medcf.figures import panel, save_figure, signed_heatmap
from medcf.report import Section, render_markdown

LUNG_WINDOW = (-600.0, 1500.0)  # centre, width (HU): the radiologists' lung window
CHANGE_LIMIT_HU = 40.0  # ± colour scale of the change and effect maps
GENERATION = ("model", "volume FID (CT features)", "slice FID (EfficientNet-Lite0)", "mean lung HU",
              "LAA-950 of lung", "volumes", "train seconds", "score seconds")  # fmt: skip
EDIT_COLUMNS = ("lung change (HU)", "lung change 95% CI", "true lung change (HU)", "true 95% CI",
                "correlation with true change", "AUROC of |change|", "effectiveness", "inside", "outside", "error",
                "error of the unedited image")  # fmt: skip


def write_ct_benchmark(results: dict, out: Path, name: str, figures: Path) -> Path:
    """Write the three files into `out` (created if needed), each atomically; returns the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{name}.json") as temporary:
        temporary.write_text(json.dumps(results, indent=2, default=str) + "\n")
    runs = [(figures, row["model"], row["model"]) for row in results["runs"][1:]]
    save_figure(montage(runs), out / f"{name}_montage.png")
    with atomic_path(out / f"{name}.md") as temporary:
        title = f"medcf benchmark: {results['suite']} ({results['size']})"
        temporary.write_text(render_markdown(title, ct_sections(results, f"{name}_montage.png")), encoding="utf-8")
    return out / f"{name}.md"


def ct_sections(results: dict, montage_name: str) -> list[Section]:
    settings, environment, models = results["settings"], results["environment"], results["runs"][1:]
    return [
        Section("Setup", paragraphs=[
            f"Sizes: {json.dumps(settings)}; seed {results['seed']}; {results['seconds'] / 60:.1f} min in this "
            "invocation (stages finished earlier are reused; train and score seconds are each row's own).",
            f"Machine: {environment['platform']}, {environment['cpu_count']} CPUs, GPU {environment['cuda']}; "
            + ", ".join(f"{k} {v}" for k, v in environment["versions"].items()),
            "Training overrides (`medcf train --set`): " + "; ".join(
                f"{model}: `{' '.join(overrides)}`" for model, overrides in results["overrides"].items()),
        ], figures=[(montage_name, "generated volume, smoking removed vs truth, smoking effect vs truth")]),
        Section("Generation", paragraphs=[
            "One volume per held-out clinical row against the held-out volumes. Volume FID: a Fréchet distance on "
            "named CT features of whole volumes (HU histogram, lung fraction, LAA-950, Perc15, mean lung HU; "
            "medcf.metrics.volumes — no pretrained 3-D network ships offline). Slice FID: EfficientNet-Lite0 "
            "features of the 4 central axial slices. The first row is real training volumes: the floor at this "
            "sample size.",
        ], table=[{column: row.get(column) for column in GENERATION} for row in results["runs"]]),
        Section("DGM-VLC's finding: smoking shifts lung attenuation", paragraphs=[
            "`medcf effect --attribute smoking` (never → current smoker, matched pairs from the same noise) inside "
            "the lungs, in HU, beside the renderer's true shift of the same subjects.",
        ], table=[_effect_row(row) for row in models]),
        Section("Edits of unseen patients against the true counterfactual", paragraphs=[
            "Residual edits (what the edited prompt changes, added to the volume): diffusion by DDIM inversion, "
            "the GAN by inverting z. HU throughout. AUROC: |change| as a score for the true effect region "
            "(|true change| > 10 HU). Effectiveness: share of patients whose mean change inside that region has "
            "the true sign and at least half its size.",
        ], table=[{"model": row["model"], "edit": edit["edit"], **{c: edit.get(c) for c in EDIT_COLUMNS}}
                  for row in models for edit in row["edits"]]),
    ]  # fmt: skip


def _effect_row(row: dict) -> dict[str, object]:
    effect, truth = row["smoking effect"], row["smoking effect"]["truth"]
    return {
        "model": row["model"], "pairs": effect["n"],
        "shift (HU)": effect["mean_shift"], "95% CI": f"{effect['ci_low']:.4g} to {effect['ci_high']:.4g}",
        "true shift (HU)": truth["mean_shift"], "true 95% CI": f"{truth['ci_low']:.4g} to {truth['ci_high']:.4g}",
        "same sign": (effect["mean_shift"] > 0) == (truth["mean_shift"] > 0),
        "model / truth": effect["shift_ratio"], "share of |effect| inside the lungs": effect["inside_fraction"],
        "map r": effect["map_correlation"], "map r inside the lungs": effect["map_correlation_inside"],
    }  # fmt: skip


def montage(runs: list[tuple[Path, str, str]]) -> object:
    """One row per (figures folder, backend, title): sample, source, edit, truth, change, true change, effect map,
    true effect map."""
    smoking = CT_EDITS[next(iter(CT_EDITS))][0]
    rows, titles = [], []
    for figures, backend, title in runs:
        slug = backend.lower()
        sample = np.load(figures / f"samples-{slug}.npy")[0]
        case = np.load(figures / f"edit-{slug}-{smoking}.npz")
        effect = [np.load(figures / f"effect-{slug}" / name) for name in ("effect.npy", "true_effect.npy")]
        change, true = case["edited"] - case["source"], case["truth"] - case["source"]
        rows.append([_grey(sample), _grey(case["source"]), _grey(case["edited"]), _grey(case["truth"]),
                     *(_signed(values) for values in (change, true, *effect))])  # fmt: skip
        titles.append([f"{title}: sample", "current smoker", "edit: never", "true never", "edit change",
                       "true change", "smoking effect", "true effect"])  # fmt: skip
    return panel(rows, titles, tile=120)


def _axial(volume: np.ndarray) -> np.ndarray:
    return display_slice(volume[:, :, volume.shape[2] // 2])


def _grey(volume: np.ndarray) -> np.ndarray:
    return window_level(_axial(volume), *LUNG_WINDOW, function="LINEAR_EXACT")


def _signed(volume: np.ndarray) -> np.ndarray:
    return signed_heatmap(_axial(volume), limit=CHANGE_LIMIT_HU)
