"""Volumes as NIfTI files in the units of the training data (e.g. HU): generated ones on the training voxel grid,
counterfactual ones in their source's geometry. The VAE's config holds the value range and spacing it was trained on
(medcf.training.setup.record_volume_data); a value_range given here overrides it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medcf.data.volume import from_unit_range, read_volume, to_unit_range, write_new_volume, write_volume
from medcf.models import Components
from medcf.volumes.counterfactual import counterfactual_volumes
from medcf.volumes.sampling import generate_volumes


def model_value_range(components: Components, value_range: Sequence[float] | None = None) -> tuple[float, float]:
    """`value_range`, or the range the model's VAE was trained on."""
    value_range = value_range or components.vae.config.get("value_range")
    if value_range is None:
        raise ValueError("this 3-D model records no value range; pass value_range=(low, high), e.g. (-1024, 1024) HU")
    return float(value_range[0]), float(value_range[1])


def generate_nifti(
    components: Components,
    prompts: list[str],
    out: str | Path,
    *,
    names: Sequence[str] | None = None,
    value_range: Sequence[float] | None = None,
    spacing_mm: Sequence[float] | None = None,
    **options: object,
) -> list[Path]:
    """Generate one volume per prompt and write each as out/<name>.nii.gz (int16, RAS+ affine diag(spacing));
    `names` default to sample-0000…, spacing to the training volumes'. `options` are `generate_volumes`'s keywords."""
    low_high = model_value_range(components, value_range)
    spacing = spacing_mm or components.vae.config.get("spacing_mm") or (1.0, 1.0, 1.0)
    names = list(names) if names is not None else [f"sample-{index:04d}" for index in range(len(prompts))]
    if len(names) != len(prompts):
        raise ValueError(f"{len(names)} names for {len(prompts)} prompts; give one name per prompt")
    volumes = generate_volumes(components, prompts, **options)
    Path(out).mkdir(parents=True, exist_ok=True)
    return [
        write_new_volume(Path(out) / f"{name}.nii.gz", from_unit_range(volume[0].cpu(), low_high).numpy(), spacing)
        for name, volume in zip(names, volumes, strict=True)
    ]


def counterfactual_nifti(
    components: Components,
    source: str | Path,
    out: str | Path,
    source_prompt: str,
    target_prompt: str,
    *,
    value_range: Sequence[float] | None = None,
    **options: object,
) -> Path:
    """Edit the NIfTI volume `source` from `source_prompt` to `target_prompt` and write it to `out` with the source's
    affine and voxel order, in the model's value range (e.g. HU). `options` are `counterfactual_volumes`'s keywords."""
    low_high = model_value_range(components, value_range)
    volume = to_unit_range(read_volume(source), low_high)[None, None]  # (1, 1, X, Y, Z)
    edited = counterfactual_volumes(components, volume, [source_prompt], [target_prompt], **options)
    return write_volume(out, from_unit_range(edited[0, 0].cpu(), low_high).numpy(), like=source)
