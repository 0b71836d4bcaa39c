"""`attribute_to_folder`: healthy-counterpart attribution of one image file, with classifier baselines
(`medcf effect`'s folder is `medcf.attribution.effect_folder`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medcf.atomic import atomic_folder, new_output_folder
from medcf.attribution.difference import counterpart_attribution
from medcf.attribution.gradients import at_classifier_size, grad_cam, gradient_saliency
from medcf.classifier import ImageClassifier, classify, load_classifier, resize_for_classifier
from medcf.data import write_image
from medcf.editing import edit_prompts, healthy_prompts
from medcf.editing.files import clinical_row, load_mask, load_model_input, model_resolution, patient_files
from medcf.editing.paraphrases import PromptSets, healthy_paraphrases, paraphrase_prompts
from medcf.editing.pix2pix_zero import pix2pix_zero_settings
from medcf.editing.rows import edit_instructions, healthy_instructions
from medcf.figures import overlay, panel, save_figure, signed_heatmap, with_colour_bar
from medcf.models import Components, load_components
from medcf.models.device import run_settings
from medcf.models.precision import check_precision
from medcf.prompts import PromptTemplate
from medcf.prompts.fields import parse_finding
from medcf.report import Section, write_report
from medcf.training.record import environment


def attribute_to_folder(
    model: str | Path,
    image: str | Path,
    out: str | Path,
    *,
    row: Sequence[str] = (),
    classifier: str | Path | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    engine: str = "inversion",
    strength: float = 0.6,
    num_inference_steps: int = 25,  # the fast path: 50 steps score the same maps (benchmarks/attribution_fast_path)
    guidance_scale: float = 3.0,
    latent_drift: float | Sequence[float] = 0.0,
    cross_attention_guidance: float | None = None,
    sigma: float = 1.0,
    anatomy_mask: str | Path | None = None,
    index: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    show_names: bool = False,
    patient_info: bool | None = None,
    image_guidance_scale: float | None = None,
    residual: bool = True,
    finding: str | None = None,
    components: Components | None = None,
) -> Path:
    """map.npy (signed M = x − x_healthy), map.png, overlay.png, counterpart.png, panel.png, report; plus
    saliency.npy / gradcam.npy of `classifier` for the image's findings when a classifier is given.
    `finding`: the counterpart lacks that finding only (a per-finding map of a patient with several), instead of
    every finding. `residual` (default): M = D(ẑ_source) − D(ẑ_healthy), without the VAE's reconstruction error,
    which alone scores a nodule AUROC of 0.84 on cxr64 (benchmarks/results/counterfactual_engines.md, "no edit").
    `index`, `show_names`, `patient_info` as in `medcf.editing.to_folder.counterfactual_to_folder`."""
    check_precision(precision)
    out = new_output_folder(out)
    network = None if classifier is None else load_classifier(classifier)
    components = components or load_components(model, device=device)
    run_on = run_settings(components.unet.device, precision)
    precision = run_on["precision"]
    resolution = model_resolution(components)
    source = load_model_input(image, resolution, index=index)
    clinical = clinical_row(source.image, row)
    anatomy = None if anatomy_mask is None else load_mask(anatomy_mask, resolution, like=source.image.shape)
    template = PromptTemplate.from_pretrained(model).with_patient_info(patient_info)
    source_prompt, healthy_prompt, directions = counterpart_prompts(template, clinical, engine, finding)
    result = counterpart_attribution(
        components, source.pixels, [source_prompt], [healthy_prompt], seeds=seeds, engine=engine,
        strength=strength, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
        latent_drift=latent_drift, direction_prompts=directions, cross_attention_guidance=cross_attention_guidance,
        image_guidance_scale=image_guidance_scale, residual=residual, sigma=sigma, anatomy_mask=anatomy,
        precision=precision,
    )  # fmt: skip
    signed = result.maps[0, 0].numpy()
    limit = max(float(np.abs(signed).max()), 1e-6)
    counterpart = ((result.counterparts[0].mean(dim=0) + 1) / 2).clamp(0, 1).numpy()
    heat = signed_heatmap(signed, limit=limit)
    weight = np.abs(signed) / limit
    tiles = [(source.display, "image"), (counterpart, "healthy counterpart"), (heat, "M = x − x_healthy")]
    tiles.append((overlay(source.display, heat, weight), "overlay"))
    baselines = {} if network is None else classifier_maps(network, source.pixels, clinical, finding=finding)
    tiles += [(overlay(source.display, _hot(m), m / max(m.max(), 1e-12)), name) for name, m in baselines.items()]
    files = patient_files({"image": image, "anatomy mask": anatomy_mask}, show_names=show_names)
    settings = {
        "model": str(model), **files, "index": index, "finding": finding or "every present",
        "source prompt": source_prompt, "healthy prompt": healthy_prompt, "engine": engine, "strength": strength,
        "steps": num_inference_steps, "guidance": guidance_scale, "latent drift": latent_drift, "residual": residual,
        "seeds": list(seeds), "sigma": sigma, "classifier": str(classifier or ""), **run_on,
        **pix2pix_zero_settings(directions, cross_attention_guidance),
        **({"image guidance": image_guidance_scale} if engine == "instruct" else {}),
    }  # fmt: skip
    with atomic_folder(out) as staging:
        np.save(staging / "map.npy", signed)
        write_image(staging / "original.png", source.display)
        write_image(staging / "counterpart.png", counterpart)
        save_figure(with_colour_bar(Image.fromarray(heat), limit, label="M, display units"), staging / "map.png")
        save_figure(Image.fromarray(overlay(source.display, heat, weight)), staging / "overlay.png")
        for name, values in baselines.items():
            np.save(staging / f"{name.split(' ')[0]}.npy", values)
        figure = panel([[tile for tile, _ in tiles]], [[caption for _, caption in tiles]], tile=192)
        save_figure(with_colour_bar(figure, limit, label="M, display units"), staging / "panel.png")
        record = {**settings, "environment": environment()}  # the software, to redo a figure
        (staging / "settings.json").write_text(json.dumps(record, indent=2) + "\n")
        write_report(staging, "medcf attribute", _sections(settings, signed))
    return out


def counterpart_prompts(
    template: PromptTemplate, row: dict, engine: str, finding: str | None = None
) -> tuple[str, str, PromptSets | None]:
    """Source prompt, counterpart prompt (an instruction for the instruct engine) and pix2pix-zero's paraphrase
    sets (its Δc, else None): the healthy counterpart, or with `finding` the counterfactual without that one."""
    if finding is None:
        (source,), (healthy,) = healthy_prompts(template, [row])
        if engine == "instruct":  # an InstructPix2Pix model reads "remove the ..." instead of a healthy prompt
            healthy = healthy_instructions([row], vocabulary=template.vocabulary)[0]
        return source, healthy, healthy_paraphrases(template, [row]) if engine == "pix2pix-zero" else None
    if parse_finding(finding, row.get(finding)) != 1:
        present = [key for key in template.vocabulary.findings if parse_finding(key, row.get(key)) == 1]
        raise ValueError(
            f"--finding {finding}: the row does not have it, so its map would be empty; pass --row {finding}=1 if "
            f"the image shows it, or choose one of the row's findings {present}"
        )
    edits = [f"{finding}=absent"]
    (source,), (target,) = edit_prompts(template, [row], edits)
    if engine == "instruct":
        target = edit_instructions([row], edits, vocabulary=template.vocabulary)[0]
    return source, target, paraphrase_prompts(template, [row], edits) if engine == "pix2pix-zero" else None


def classifier_maps(
    network: ImageClassifier, pixels: torch.Tensor, row: dict, *, finding: str | None = None
) -> dict[str, np.ndarray]:
    """Gradient saliency and Grad-CAM (H, W) for `finding` or the row's present finding known to the classifier,
    else for the label the classifier rates most likely; computed at the classifier's size, resized to the image's."""
    present = [i for i, name in enumerate(network.label_names) if parse_finding(name, row.get(name)) == 1]
    present = [network.label_names.index(finding)] if finding in network.label_names else present
    likeliest = int(classify(network, resize_for_classifier(network, pixels))[0].argmax())
    label = present[0] if present else likeliest
    name = network.label_names[label]
    return {
        f"saliency ({name})": at_classifier_size(gradient_saliency, network, pixels, label)[0, 0].numpy(),
        f"gradcam ({name})": at_classifier_size(grad_cam, network, pixels, label)[0, 0].numpy(),
    }


def _hot(values: np.ndarray) -> np.ndarray:
    """Non-negative map → the red half of the signed colour map."""
    return signed_heatmap(values, limit=max(float(values.max()), 1e-12))


def _sections(settings: dict, signed: np.ndarray) -> list[Section]:
    stats = {
        "mean M": float(signed.mean()),
        "mean |M|": float(np.abs(signed).mean()),
        "max |M|": float(np.abs(signed).max()),
    }
    return [
        Section(
            "Attribution",
            paragraphs=[
                "Healthy-counterpart attribution (Siddiqui et al. 2025): red, the image is brighter than "
                "its healthy counterpart; blue, darker. Classifier baselines, when given, follow."
            ],
            figures=[("panel.png", "image, healthy counterpart, signed map M, overlay, baselines")],
        ),  # fmt: skip
        Section("Map statistics", table=[stats]),
        Section("Settings", table=[{"setting": k, "value": v} for k, v in settings.items()]),
    ]
