"""A counterfactual with a GAN (model.backend=gan), written like the diffusion engines': an image as
`editing.to_folder` writes it, a volume as `editing.volume_to_folder` does (NIfTI in the source's geometry and
units); each with the signed change, a panel, settings and a report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from medcf.atomic import atomic_folder, new_output_folder
from medcf.data.volume import read_volume, to_unit_range
from medcf.editing.files import clinical_row, load_model_input, patient_files, row_fields, write_edit
from medcf.editing.gan_counterfactual import gan_counterfactual
from medcf.editing.rows import edit_prompts
from medcf.editing.volume_to_folder import write_volume_counterfactual
from medcf.models import GanComponents, load_gan
from medcf.models.device import run_settings
from medcf.models.gan_components import gan_volume_units
from medcf.prompts import PromptTemplate


def gan_counterfactual_to_folder(
    model: str | Path,
    image: str | Path,
    edits: Sequence[str],
    out: str | Path,
    *,
    row: Sequence[str] = (),
    steps: int = 200,
    residual: bool = True,
    index: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    show_names: bool = False,
    patient_info: bool | None = None,
) -> Path:
    """The image (or, for a 3-D GAN, the NIfTI volume) with `edits` applied to its clinical row, by GAN inversion:
    z* fitted under the source prompt (`steps` Adam steps), regenerated under the edited one
    (`editing.gan_counterfactual`; `residual`: only what the prompts change is added to the image); returns `out`."""
    out = new_output_folder(out)
    gan = load_gan(model, device=device)
    if gan.mask_conditioning:
        raise ValueError(f"{model}: a mask-conditioned GAN; edit it from Python with gan_counterfactual(mask=...)")
    template = PromptTemplate.from_pretrained(model).with_patient_info(patient_info)
    common = {"model": str(model), "backend": "gan"}
    if gan.generator.config.spatial_dims == 3:
        if index is not None:
            raise ValueError(f"--index {index} picks a slice; a 3-D GAN edits the whole volume: drop --index")
        (source_prompt,), (target_prompt,) = edit_prompts(template, [row_fields(row)], edits)
        files = patient_files({"volume": image}, show_names=show_names)
    else:
        source = load_model_input(image, gan.generator.config.sample_size[0], index=index)
        (source_prompt,), (target_prompt,) = edit_prompts(template, [clinical_row(source.image, row)], edits)
        files = patient_files({"image": image}, show_names=show_names) | {"index": index}
    settings = {
        **common, **files, "edits": list(edits), "source prompt": source_prompt, "target prompt": target_prompt,
        "inversion steps": steps, "residual": residual, **run_settings(torch.device(gan.generator.device), precision),
    }  # fmt: skip
    if gan.generator.config.spatial_dims == 3:
        edit = {"steps": steps, "residual": residual}
        return _edit_volume(gan, image, out, source_prompt, target_prompt, edit=edit, settings=settings)
    pixels = source.pixels.to(gan.generator.device)
    result = gan_counterfactual(gan, pixels, [source_prompt], [target_prompt], steps=steps, residual=residual)
    result = result.float().cpu()
    with atomic_folder(out) as staging:
        write_edit(
            staging, source, result, title="medcf counterfactual (GAN)", name="counterfactual", settings=settings
        )
    return out


def _edit_volume(
    gan: GanComponents,
    volume: str | Path,
    out: Path,
    source_prompt: str,
    target_prompt: str,
    *,
    edit: dict,
    settings: dict,
) -> Path:
    """The volume's counterfactual by inverting z, in its geometry and units (`write_volume_counterfactual`)."""
    value_range, _ = gan_volume_units(gan)
    values = to_unit_range(read_volume(volume), value_range)  # (X, Y, Z) in [-1, 1], RAS+
    size = tuple(gan.generator.config.sample_size)
    if tuple(values.shape) != size:
        raise ValueError(
            f"{volume}: a volume of {tuple(values.shape)} voxels (RAS+), but this GAN makes volumes of {size}: "
            "crop or resample the volume to that size, or train the GAN on whole volumes of it (data.patch=[])"
        )
    pixels = values[None, None].to(gan.generator.device)  # (1, 1, X, Y, Z)
    edited = gan_counterfactual(gan, pixels, [source_prompt], [target_prompt], **edit)[0, 0].float().cpu()
    settings = settings | {"value range": list(value_range)}
    title = "medcf counterfactual (GAN, volume)"
    return write_volume_counterfactual(
        out, volume, values, edited, value_range=value_range, settings=settings, title=title
    )
