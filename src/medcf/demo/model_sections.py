"""The demo sections that run the shipped model (medcf.pretrained): generation from clinical prompts,
healthy-counterpart attribution scored against the true masks, age/smoking counterfactuals of a held-out
patient (beside its true counterfactual) and of the real radiograph RG1_UNCR.dcm, and an inpainted lesion
scored against the true lesion. Patients come from the cohort indices no dataset is written from
(`unseen_patients`), so the model never saw them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydicom.data import get_testdata_file
from scipy.ndimage import binary_dilation

from medcf.attribution import counterpart_attribution
from medcf.attribution.scoring import finding_cases, score_maps
from medcf.data import read_image
from medcf.data.synthetic.kinds import get_kind, unseen_patients
from medcf.editing import counterfactual, edit_prompts, healthy_prompts, inpaint
from medcf.editing.to_folder import INPAINT_GUIDANCE, INPAINT_RESAMPLE, counterfactual_to_folder
from medcf.figures import mask_outline, panel, save_figure, signed_heatmap
from medcf.generate import generate
from medcf.models import folder_megabytes
from medcf.models.device import run_settings
from medcf.pretrained import PretrainedModel
from medcf.report import Section, relative

FIGURES = "figures"
FINDINGS = ("nodule", "consolidation", "pleural_effusion", "cardiomegaly")


def model_section(model: PretrainedModel) -> Section:
    """What the demo runs: the shipped model folder, its size and sampler settings."""
    unet = model.components.unet
    table = [
        {"item": "model folder", "value": str(model.folder)},
        {"item": "size on disk", "value": f"{folder_megabytes(model.folder):.1f} MB (model card: README.md there)"},
        {"item": "resolution", "value": f"{model.resolution} px"},
        {"item": "U-Net parameters", "value": f"{sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M"},
        {"item": "prompt template", "value": repr(model.template)},
        *({"item": key, "value": value} for key, value in model.settings.items()),
        *({"item": key, "value": value} for key, value in run_settings(model.device, model.precision).items()),
    ]
    text = f"{card_summary(model.folder)} Every result below is computed now, offline, on patients it never saw."
    return Section("The model", [text], (), table)


def card_summary(folder: Path) -> str:
    """The first paragraph of a model folder's card (README.md: what the model is and was trained on)."""
    card = folder / "README.md"
    paragraphs = [part for part in card.read_text().split("\n\n")[1:] if part.strip()] if card.is_file() else []
    return " ".join(paragraphs[0].split()) if paragraphs else f"The model folder {folder.name}."


def held_out_patients(
    n: int, *, seed: int, size: int, kind: str = "cxr"
) -> list[tuple[object, np.ndarray, dict[str, object]]]:
    """(subject, image (H, W) in [0, 1], clinical row) for the first `n` unseen patients of the `kind` cohort."""
    return [(subject, render.image, row) for subject, render, row in unseen_patients(kind, n, seed=seed, size=size)]


def as_model_input(images: list[np.ndarray]) -> torch.Tensor:
    """Display images (H, W) in [0, 1] → (B, 1, H, W) in [-1, 1]."""
    return torch.from_numpy(np.stack(images).astype(np.float32))[:, None] * 2 - 1


def display(images: torch.Tensor) -> list[np.ndarray]:
    """Images (B, C, H, W) in [-1, 1] on any device → display images (H, W) in [0, 1] on the host."""
    return [image for image in ((images[:, 0].detach().float().cpu() + 1) / 2).clamp(0, 1).numpy()]


def generation_section(
    out: Path, model: PretrainedModel, *, seed: int, kind: str = "cxr", patients: int = 4, samples: int = 2
) -> Section:
    """Samples from the clinical prompts of held-out patients, beside each patient's own image."""
    cases = held_out_patients(patients, seed=seed, size=model.resolution, kind=kind)
    prompts = [model.template.render(row, seed=seed + i) for i, (_, _, row) in enumerate(cases)]
    scheduler = str(model.settings.get("scheduler", "ddim"))
    images = generate(
        model.components, [p for p in prompts for _ in range(samples)], scheduler=scheduler,
        generator=torch.Generator().manual_seed(seed), **model.sampler(),
    )  # fmt: skip
    drawn = display(images)
    rows = [[image] + drawn[i * samples : (i + 1) * samples] for i, (_, image, _) in enumerate(cases)]
    titles = [[f"held-out patient {i + 1}"] + [f"sample {j + 1}" for j in range(samples)] for i in range(patients)]
    path = save_figure(panel(rows, titles, tile=160), out / FIGURES / "generation.png")
    table = [{"patient": i + 1, "prompt": prompt} for i, prompt in enumerate(prompts)]
    text = (
        "Each held-out patient's clinical row rendered as a prompt in the model's own style (diverse, with "
        "patient information) and sampled twice; the patient's real image is on the left for comparison."
    )
    return Section("Generation from clinical prompts", [text], [(relative(path, out), "patient, samples")], table)


def attribution_section(
    out: Path, model: PretrainedModel, *, seed: int, kind: str = "cxr", findings: tuple[str, ...] = FINDINGS,
    per_finding: int = 2,
) -> Section:
    """Healthy counterparts and signed attribution maps M = x − x_healthy, scored against the true masks."""
    rows, titles, table = [], [], []
    for finding in findings:
        cases = finding_cases(finding, n=per_finding, size=model.resolution, kind=kind, seed=seed)
        source, healthy = healthy_prompts(model.template, cases.rows, seed=seed)
        result = counterpart_attribution(
            model.components, cases.images, source, healthy, seeds=(seed,), strength=0.6, precision=model.precision,
            **model.sampler(),
        )
        table.append({"finding": finding, "patients": per_finding, **score_maps(result.maps, cases.masks)})
        truth = (cases.images - cases.healthy)[:, 0].numpy() / 2
        for i, image in enumerate(display(cases.images)):
            limit = max(float(np.abs(truth[i]).max()), 1e-6)
            counterpart, outline = display(result.counterparts[i : i + 1])[0], cases.masks[i, 0].numpy() > 0
            model_map, true_map = result.maps[i, 0].numpy(), truth[i]
            rows.append([image, counterpart, signed_heatmap(model_map, limit=limit),
                         signed_heatmap(true_map, limit=limit), mask_outline(image, outline)])  # fmt: skip
            titles.append([finding.replace("_", " "), "healthy (model)", "M (model)", "M (truth)", "true mask"])
    path = save_figure(panel(rows, titles, tile=150), out / FIGURES / "attribution.png")
    text = (
        "Healthy-counterpart attribution (Siddiqui et al. 2025): each image is inverted under its own prompt "
        "and regenerated under the prompt with its findings removed (DDIM inversion, strength 0.6); the map "
        "is the signed difference (red: brighter than the healthy counterpart). The truth is the renderer's "
        "own healthy counterpart; scores are pixel AUROC, NCC and Dice after Otsu against the true effect mask."
    )
    return Section("Healthy counterparts and attribution, scored", [text], [(relative(path, out), "maps")], table)


EDITS = {"smoking=current": {"smoking": "current"}, "age+=20": None}  # None: the override is computed per subject


def counterfactual_section(out: Path, model: PretrainedModel, *, seed: int) -> Section:
    """Smoking and age counterfactuals of a held-out never-smoker (≤ 70, so +20 years stays in the cohort's
    18–95 range) beside the renderer's true ones."""
    kind = get_kind("cxr")
    subject, image, row = next(case for case in held_out_patients(40, seed=seed, size=model.resolution)
                               if case[2]["smoking"] == "never" and subject_age(case) <= 70)  # fmt: skip
    tiles, titles, table = [image], ["held-out never-smoker"], []
    for edit, override in EDITS.items():
        truth = kind.render(subject, model.resolution, **(override or {"age": subject.age + 20})).image
        (source,), (target,) = edit_prompts(model.template, [row], [edit], seed=seed)
        result = counterfactual(model.components, as_model_input([image]), [source], [target],
                                generator=torch.Generator().manual_seed(seed), **model.sampler())  # fmt: skip
        edited = display(result)[0]
        change, true_change = edited - image, truth - image
        limit = max(float(np.abs(true_change).max()), float(np.abs(change).max()), 1e-6)
        tiles += [edited, signed_heatmap(change, limit=limit), signed_heatmap(true_change, limit=limit)]
        titles += [edit, "change (model)", "change (truth)"]
        table.append(_change_row(edit, change, true_change, kind.render(subject, model.resolution).masks["lungs"]))
    path = save_figure(panel([tiles], [titles], tile=140), out / FIGURES / "counterfactual_patient.png")
    text = (
        "A held-out never-smoker made a current smoker, and 20 years older, by DDIM inversion under the "
        "patient's prompt and regeneration under the edited one (strength 0.8). The renderer knows the true "
        "counterfactual; the table compares the model's change with it, inside and outside the lungs."
    )
    return Section("Counterfactuals of a held-out patient", [text], [(relative(path, out), "edits")], table)


def subject_age(case: tuple[object, np.ndarray, dict[str, object]]) -> float:
    return float(case[2]["age"])


def _change_row(edit: str, change: np.ndarray, true_change: np.ndarray, lungs: np.ndarray) -> dict[str, object]:
    correlation = np.corrcoef(change.ravel(), true_change.ravel())[0, 1] if true_change.std() > 0 else 0.0
    return {
        "edit": edit,
        "mean change in lungs (model)": float(change[lungs].mean()),
        "mean change in lungs (truth)": float(true_change[lungs].mean()),
        "mean change outside (model)": float(change[~lungs].mean()),
        "mean change outside (truth)": float(true_change[~lungs].mean()),
        "correlation with true change": float(correlation),
    }


def radiograph_section(out: Path, model: PretrainedModel, *, seed: int) -> Section:
    """The real radiograph RG1_UNCR.dcm through `medcf counterfactual`'s library call: PNG and DICOM out."""
    radiograph, figures = get_testdata_file("RG1_UNCR.dcm"), []
    shape = read_image(radiograph).shape
    row = ("age=50", "smoking=never")  # the header states sex and view only
    for edit in EDITS:
        folder = out / "radiograph" / edit.replace("+=", "_plus_").replace("=", "_")
        counterfactual_to_folder(
            model.folder, radiograph, [edit], folder, row=row, seed=seed, components=model.components,
            precision=model.precision, **model.sampler(),
        )  # fmt: skip
        figures.append((relative(folder / "panel.png", out), f"RG1_UNCR.dcm, {edit} (folder: {folder.name}/)"))
    text = (
        "The real PA radiograph that ships with pydicom-data, read from DICOM (MONOCHROME1, VOI window), "
        "centre-cropped to the model's 64 px and edited with the clinical row from its header (sex F, PA) "
        f"plus {', '.join(row)}. Each folder also holds the edit as a derived DICOM at the source geometry "
        f"({' × '.join(map(str, shape))}: source plus the upsampled change), so full-resolution detail is kept. "
        "Known limit: the film's own crop and contrast differ from the training renders, and the edit also "
        "darkens the whole film (the blue cast of the change map; strength 0.5 did not remove it), a domain "
        "gap this 64 px model does not bridge. The held-out patient's edits above stay where the truth is."
    )
    return Section("Counterfactuals of the real radiograph RG1_UNCR.dcm", [text], figures)


def inpaint_section(
    out: Path, model: PretrainedModel, *, seed: int, kind: str = "cxr", finding: str = "consolidation"
) -> Section:
    """A finding inpainted into a held-out patient's true healthy image, scored against the true lesion."""
    cases = finding_cases(finding, n=1, size=model.resolution, kind=kind, seed=seed + 1)
    lesion = binary_dilation(cases.masks[0, 0].numpy() > 0, iterations=2)
    region = torch.from_numpy(lesion.astype(np.float32))[None, None]
    prompt = model.template.for_editing().render(cases.rows[0], seed=seed)
    result = inpaint(
        model.components, cases.healthy, region, [prompt], resample_steps=INPAINT_RESAMPLE,
        guidance_scale=INPAINT_GUIDANCE, num_inference_steps=int(model.settings.get("num_inference_steps", 25)),
        latent_drift=model.settings.get("latent_drift", 0.0), generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    healthy, factual, filled = display(cases.healthy)[0], display(cases.images)[0], display(result)[0]
    limit = max(float(np.abs(factual - healthy).max()), 1e-6)
    tiles = [mask_outline(healthy, lesion), filled, signed_heatmap(filled - healthy, limit=limit), factual,
             signed_heatmap(factual - healthy, limit=limit)]  # fmt: skip
    titles = ["healthy image + region", "inpainted", "change (model)", "true lesion", "change (truth)"]
    path = save_figure(panel([tiles], [titles], tile=150), out / FIGURES / "inpaint.png")
    table = [{
        "mean change in region (model)": float((filled - healthy)[lesion].mean()),
        "mean change in region (true lesion)": float((factual - healthy)[lesion].mean()),
        "max |change| outside region": float(np.abs(filled - healthy)[~lesion].max()),
    }]  # fmt: skip
    text = (
        f"Zero-shot RePaint inpainting ({INPAINT_RESAMPLE} resamplings, guidance {INPAINT_GUIDANCE:g}) of the "
        f"region around a held-out patient's {finding.replace('_', ' ')}, starting from the patient's true healthy "
        f"image, prompted '{prompt}'. Outside the region the image is pasted back unchanged."
    )
    return Section("Inpainted lesion", [text], [(relative(path, out), "inpainting")], table)
