"""The brain demo's own sections: a held-out patient made 20 years older and given Alzheimer's disease beside
the renderer's true counterfactuals, with atrophy measured the same way on both (medcf.metrics.brain), and the
same edits on the real MNI152 template slice through `medcf counterfactual`'s library call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

from medcf.data import read_image
from medcf.data.dataset import resize_square
from medcf.data.synthetic.kinds import get_kind
from medcf.demo.model_sections import as_model_input, display, held_out_patients
from medcf.editing import counterfactual, edit_prompts
from medcf.editing.to_folder import counterfactual_to_folder
from medcf.evaluation.atrophy import BRAIN_EDITS
from medcf.figures import panel, save_figure, signed_heatmap
from medcf.metrics.brain import MEASURES, atrophy_change
from medcf.pretrained import PretrainedModel
from medcf.report import Section, relative

FIGURES = "figures"
# Each edit: its --edit strings and the renderer's factor overrides that are its truth (evaluation.atrophy).
_OLDER, _AD = BRAIN_EDITS["20 years older"][:2], BRAIN_EDITS["Alzheimer's disease added"][:2]
EDITS: dict[str, tuple[tuple[str, ...], Callable[[object], dict[str, object]]]] = {
    "20 years older": _OLDER,
    "Alzheimer's disease": _AD,
    "both": (_OLDER[0] + _AD[0], lambda subject: _OLDER[1](subject) | _AD[1](subject)),
}
TEMPLATE_SLICE = 92  # MNI152 1 mm axial index through the lateral ventricles, one of the cohort's slices
TEMPLATE_ROW = ("age=25", "diagnosis=CN")  # ICBM152: young healthy adults (mean age 25); sex is mixed, left out


def ageing_section(out: Path, model: PretrainedModel, *, seed: int) -> Section:
    """A held-out cognitively normal patient (≤ 70, no lesion) aged 20 years and given AD, beside the truth."""
    kind = get_kind("brain")
    cases = held_out_patients(60, seed=seed, size=model.resolution, kind="brain")
    subject, image, row = next(case for case in cases if case[2]["diagnosis"] == "CN" and not case[2]["lesion"]
                               and case[2]["age"] <= 70)  # fmt: skip
    brain = kind.render(subject, model.resolution).masks["brain"]
    rows, titles, table = [], [], []
    for label, (edits, truth_of) in EDITS.items():
        truth = kind.render(subject, model.resolution, **truth_of(subject)).image
        (source,), (target,) = edit_prompts(model.template, [row], list(edits), seed=seed)
        result = counterfactual(model.components, as_model_input([image]), [source], [target],
                                generator=torch.Generator().manual_seed(seed), **model.sampler())  # fmt: skip
        edited = display(result)[0]
        limit = max(float(np.abs(truth - image).max()), 1e-6)
        rows.append([image, edited, signed_heatmap(edited - image, limit=limit), truth,
                     signed_heatmap(truth - image, limit=limit)])  # fmt: skip
        titles.append([f"{row['age']:.0f} {row['sex']}, CN", label, "change (model)", "truth", "change (truth)"])
        table.append(atrophy_row(" ".join(edits), image, edited, truth, brain))
    path = save_figure(panel(rows, titles, tile=150), out / FIGURES / "ageing_patient.png")
    text = (
        "A held-out cognitively normal patient made 20 years older, given Alzheimer's disease, and both, by DDIM "
        "inversion under the patient's prompt and regeneration under the edited one. The renderer knows each true "
        "counterfactual. Atrophy is read from the images the same way for model and truth: CSF-dark area in the "
        "deep brain (ventricles) and in the outer rim (widened sulci), as fractions of the brain, and the rim's "
        "mean signal (cortical thinning lowers it)."
    )
    return Section("Ageing and Alzheimer's disease of a held-out patient", [text],
                   [(relative(path, out), "edits beside their truth")], table)  # fmt: skip


def atrophy_row(
    label: str, image: np.ndarray, edited: np.ndarray, truth: np.ndarray | None, brain: np.ndarray
) -> dict[str, object]:
    """The model's change of every atrophy measure, beside the truth's where it is known."""
    model = atrophy_change(image, edited, brain)
    true = atrophy_change(image, truth, brain) if truth is not None else {}
    row: dict[str, object] = {"edit": label}
    for name in MEASURES:
        row[f"Δ {name} (model)"] = model[name]
        if true:
            row[f"Δ {name} (truth)"] = true[name]
    if truth is not None and (truth - image).std() > 0:
        correlation = np.corrcoef((edited - image).ravel(), (truth - image).ravel())[0, 1]
        row["correlation with true change"] = float(correlation)
    return row


def template_section(out: Path, model: PretrainedModel, *, seed: int) -> Section:
    """The same edits on the real MNI152 T1 template (nilearn's wheel), read from NIfTI at one axial slice."""
    path = out / "data" / "mni152_t1.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    load_mni152_template(resolution=1).to_filename(path)
    mask_path = out / "data" / "mni152_brain_mask.nii.gz"
    load_mni152_brain_mask(resolution=1).to_filename(mask_path)
    mask = read_image(mask_path, index=TEMPLATE_SLICE).values > 0.5
    brain = resize_square(torch.from_numpy(mask.astype(np.float32)), model.resolution, nearest=True).numpy() > 0.5
    figures, table = [], []
    for label, (edits, _) in EDITS.items():
        folder = out / "mni152" / label.lower().replace("'", "").replace(" ", "_")
        counterfactual_to_folder(
            model.folder, path, list(edits), folder, row=TEMPLATE_ROW, index=TEMPLATE_SLICE, seed=seed,
            components=model.components, precision=model.precision, **model.sampler(),
        )  # fmt: skip
        original, edited = (read_image(folder / name).pixels for name in ("original.png", "counterfactual.png"))
        table.append(atrophy_row(" ".join(edits), original, edited, None, brain))
        figures.append((relative(folder / "panel.png", out), f"MNI152 slice {TEMPLATE_SLICE}, {label}"))
    text = (
        f"The real MNI152 T1 template (ICBM 2009, the average of 152 young adults) read from NIfTI at axial slice "
        f"{TEMPLATE_SLICE}, centre-cropped to the model's {model.resolution} px and edited with the row "
        f"{', '.join(TEMPLATE_ROW)}. Each folder holds the edit as PNG and as a NIfTI slice at the source geometry. "
        "There is no truth here, only the direction: the table reads the same atrophy measures inside the "
        "template's brain mask. Known gap: the template is skull-stripped and cropped tighter than the cohort's "
        "heads, so it lies outside what the model was trained on."
    )
    return Section("Ageing and Alzheimer's disease of the MNI152 template", [text], figures, table)
