"""A counterfactual of a NIfTI volume with a 3-D model (medcf.volumes), written as a folder a person can read:
the edited volume in the source's geometry and units, the signed change, a montage of three planes, a report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medcf.atomic import atomic_folder, new_output_folder
from medcf.data.volume import from_unit_range, read_volume, to_unit_range, write_volume
from medcf.editing.files import patient_files, row_fields
from medcf.editing.rows import edit_prompts
from medcf.figures import panel, save_figure, signed_heatmap, with_colour_bar
from medcf.models import Components, load_components
from medcf.models.device import run_settings
from medcf.models.precision import inference_precision
from medcf.prompts import PromptTemplate
from medcf.report import Section, write_report
from medcf.training.record import environment
from medcf.volumes import counterfactual_volumes, model_value_range
from medcf.volumes.to_folder import PLANES, display, planes


def counterfactual_volume_to_folder(
    model: str | Path,
    volume: str | Path,
    edits: Sequence[str],
    out: str | Path,
    *,
    row: Sequence[str] = (),
    strength: float = 0.8,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
    latent_drift: float | Sequence[float] = 0.0,
    residual: bool = True,
    device: str = "auto",
    precision: str = "auto",
    show_names: bool = False,
    patient_info: bool | None = None,
    components: Components | None = None,
) -> Path:
    """The volume with `edits` applied to its clinical row (`row` field=value strings: a NIfTI header states none):
    counterfactual.nii.gz and change.nii.gz (counterfactual − source, in the model's units, e.g. HU) with the
    source's affine, panel.png (source, counterfactual, change in three planes), settings.json and a report."""
    out = new_output_folder(out)
    components = components or load_components(model, device=device)
    template = PromptTemplate.from_pretrained(model).with_patient_info(patient_info)
    (source_prompt,), (target_prompt,) = edit_prompts(template, [row_fields(row)], edits)
    value_range = model_value_range(components)
    source = to_unit_range(read_volume(volume), value_range)[None, None]  # (1, 1, X, Y, Z) in [-1, 1]
    with inference_precision(precision, components.unet.device):
        edited = counterfactual_volumes(
            components, source.to(components.unet.device), [source_prompt], [target_prompt], strength=strength,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, latent_drift=latent_drift,
            residual=residual,
        )[0, 0].float().cpu()  # fmt: skip
    settings = {
        "model": str(model), **patient_files({"volume": volume}, show_names=show_names), "edits": list(edits),
        "source prompt": source_prompt, "target prompt": target_prompt, "strength": strength,
        "steps": num_inference_steps, "guidance": guidance_scale, "latent drift": latent_drift, "residual": residual,
        "value range": list(value_range), **run_settings(components.unet.device, precision),
    }  # fmt: skip
    return write_volume_counterfactual(out, volume, source[0, 0], edited, value_range=value_range, settings=settings)


def write_volume_counterfactual(
    out: Path,
    volume: str | Path,
    source: torch.Tensor,
    edited: torch.Tensor,
    *,
    value_range: tuple[float, float],
    settings: dict[str, object],
    title: str = "medcf counterfactual (volume)",
) -> Path:
    """Write the folder of a volume counterfactual, whatever model made it: `source` and `edited` (X, Y, Z) in
    [-1, 1] (RAS+), mapped to `value_range`'s units, written with the geometry of the NIfTI `volume`."""
    values, source_values = from_unit_range(edited, value_range), from_unit_range(source, value_range)
    with atomic_folder(out) as staging:
        write_volume(staging / "counterfactual.nii.gz", values.numpy(), like=volume)
        write_volume(staging / "change.nii.gz", (values - source_values).numpy(), like=volume)
        limit = _write_panel(staging / "panel.png", display(source), display(edited))
        (staging / "settings.json").write_text(
            json.dumps({**settings, "environment": environment()}, indent=2, default=str) + "\n"
        )
        change = (values - source_values).abs()
        summary = {"mean |change|": float(change.mean()), "max |change|": float(change.max()), "panel limit": limit}
        write_report(staging, title, [
            Section("Result", figures=[("panel.png", "source, counterfactual and the signed change, three planes")]),
            Section("Settings", table=[{"setting": k, "value": v} for k, v in settings.items()]),
            Section("Change (model units, e.g. HU)", table=[summary]),
        ])  # fmt: skip
    return out


def _write_panel(path: Path, source: np.ndarray, edited: np.ndarray) -> float:
    """Rows source / counterfactual / change, columns the three planes; returns the change colour limit."""
    before, after = planes(source), planes(edited)
    changes = {plane: after[plane] - before[plane] for plane in PLANES}
    limit = max(max(float(np.abs(change).max()) for change in changes.values()), 1e-6)
    rows = [
        [before[plane] for plane in PLANES],
        [after[plane] for plane in PLANES],
        [signed_heatmap(changes[plane], limit=limit) for plane in PLANES],
    ]
    titles = [[f"{row} {plane}" for plane in PLANES] for row in ("source", "counterfactual", "change")]
    figure = panel(rows, titles, tile=192)
    save_figure(with_colour_bar(figure, limit, label="change, display units"), path)
    return limit
