"""A counterfactual with a GAN (model.backend=gan), written like the diffusion engines' (`editing.to_folder`):
the edited image, the signed change, a panel, settings and a report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from medcf.atomic import atomic_folder, new_output_folder
from medcf.editing.files import clinical_row, load_model_input, patient_files, write_edit
from medcf.editing.gan_counterfactual import gan_counterfactual
from medcf.editing.rows import edit_prompts
from medcf.models import load_gan
from medcf.models.device import run_settings
from medcf.prompts import PromptTemplate


def gan_counterfactual_to_folder(
    model: str | Path,
    image: str | Path,
    edits: Sequence[str],
    out: str | Path,
    *,
    row: Sequence[str] = (),
    steps: int = 200,
    index: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    show_names: bool = False,
    patient_info: bool | None = None,
) -> Path:
    """The image with `edits` applied to its clinical row, by GAN inversion: z* fitted under the source prompt
    (`steps` Adam steps), regenerated under the edited one (`editing.gan_counterfactual`); returns `out`."""
    out = new_output_folder(out)
    gan = load_gan(model, device=device)
    if gan.mask_conditioning:
        raise ValueError(f"{model}: a mask-conditioned GAN; edit it from Python with gan_counterfactual(mask=...)")
    template = PromptTemplate.from_pretrained(model).with_patient_info(patient_info)
    source = load_model_input(image, gan.generator.config.sample_size[0], index=index)
    clinical = clinical_row(source.image, row)
    (source_prompt,), (target_prompt,) = edit_prompts(template, [clinical], edits)
    pixels = source.pixels.to(gan.generator.device)
    result = gan_counterfactual(gan, pixels, [source_prompt], [target_prompt], steps=steps).float().cpu()
    settings = {
        "model": str(model), "backend": "gan", **patient_files({"image": image}, show_names=show_names),
        "index": index, "edits": list(edits), "source prompt": source_prompt, "target prompt": target_prompt,
        "inversion steps": steps, **run_settings(torch.device(gan.generator.device), precision),
    }  # fmt: skip
    with atomic_folder(out) as staging:
        write_edit(
            staging, source, result, title="medcf counterfactual (GAN)", name="counterfactual", settings=settings
        )
    return out
