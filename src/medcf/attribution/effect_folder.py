"""`medcf effect` as one folder: a model's matched pairs on a semi-synthetic cohort's clinical rows, averaged, beside
the renderer's ground truth on the same subjects (DGM-VLC, Xing et al. 2024: smoking shifts lung intensity).

Any medcf model answers: a 2-D or 3-D diffusion model (`diffusion_pairs`) or a GAN (`gan_pairs`). A volume model's
effect is in the units of its training data (HU for the CT cohort), through the value range its folder records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from medcf.attribution.effect import DISPLAY_UNITS, SamplePairs, matched_rows, population_effect
from medcf.attribution.effect_pairs import cohort_anatomy_mask, cohort_pairs, cohort_rows, diffusion_pairs, gan_pairs
from medcf.attribution.effect_report import write_effect
from medcf.data.synthetic.kinds import KINDS, get_kind
from medcf.models import Components, is_gan_folder, is_volume_model, load_components, load_gan, vae_scale_factor
from medcf.models.device import run_settings
from medcf.models.precision import inference_precision
from medcf.prompts import PromptTemplate
from medcf.volumes.files import model_value_range

COHORT_UNITS = {"ct": "HU"}  # what a volume cohort's stored values are; other ranges are named by their range


@dataclass(frozen=True)
class ModelPairs:
    """A model's matched-pair sampler and what its outputs mean: the cohort size they match, their units."""

    sample_pairs: SamplePairs
    size: int  # the cohort's render size (pixels, or in-plane voxels) the pairs are compared at
    value_range: tuple[float, float]
    units: str
    device: torch.device


def model_pairs(
    model: str | Path,
    rows: tuple[Sequence[Mapping[str, object]], Sequence[Mapping[str, object]]],
    *,
    cohort: str,
    size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    components: Components | None = None,
    **sampling: object,
) -> ModelPairs:
    """Pairs of the model in `model` (diffusion 2-D / 3-D, or GAN) for the (low, high) `rows`; `sampling` holds
    the diffusion sampler's options (num_inference_steps, guidance_scale, latent_drift)."""
    template = PromptTemplate.from_pretrained(model)
    if components is None and is_gan_folder(model):
        gan = load_gan(model, device=device)
        config = gan.generator.config
        size = size or config.sample_size[0]
        if cohort_shape(cohort, size, config.spatial_dims) != tuple(config.sample_size):
            raise ValueError(
                f"{model}: the GAN makes {tuple(config.sample_size)} but the {cohort} cohort at size {size} is "
                f"{cohort_shape(cohort, size, config.spatial_dims)}; pass the size it was trained at"
            )
        value_range = tuple(config.get("value_range") or (0.0, 1.0))  # 3-D GANs record their data's range
        pairs = gan_pairs(gan, template, *rows, seed=seed)
        return ModelPairs(pairs, size, value_range, _units(cohort, value_range), gan.generator.device)
    components = components or load_components(model, device=device)
    unet = components.unet
    if is_volume_model(unet):
        size = size or unet.config.sample_size[0] * vae_scale_factor(components)
        shape = cohort_shape(cohort, size, 3)
        value_range = model_value_range(components)
        pairs = diffusion_pairs(components, template, *rows, seed=seed, size=shape, **sampling)
    else:
        size = unet.config.sample_size * vae_scale_factor(components)
        cohort_shape(cohort, size, 2)
        value_range = (0.0, 1.0)
        pairs = diffusion_pairs(components, template, *rows, seed=seed, **sampling)
    return ModelPairs(pairs, size, value_range, _units(cohort, value_range), unet.device)


def cohort_shape(cohort: str, size: int, dims: int) -> tuple[int, ...]:
    """The shape of the cohort's renders at `size`, refusing a cohort of other dimensions than the model's."""
    kind = get_kind(cohort)
    if kind.dims != dims:
        fitting = sorted(name for name, other in KINDS.items() if other.dims == dims)
        raise ValueError(
            f"a {dims}-D model cannot be measured on the {kind.dims}-D {cohort} cohort; use --cohort "
            f"{' or '.join(fitting)}"
        )
    return tuple(kind.render(kind.sample(0, 0), size).image.shape)


def _units(cohort: str, value_range: tuple[float, float]) -> str:
    if tuple(value_range) == (0.0, 1.0):
        return DISPLAY_UNITS
    return COHORT_UNITS.get(cohort, "stored units")


def effect_to_folder(
    model: str | Path,
    attribute: str,
    out: str | Path,
    *,
    n: int = 200,
    low: str | None = None,
    high: str | None = None,
    cohort: str = "cxr",
    anatomy: str | None = None,
    size: int | None = None,
    truth: bool = True,
    num_inference_steps: int = 25,
    guidance_scale: float = 3.0,
    latent_drift: float | Sequence[float] = 0.0,
    batch_size: int = 16,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    components: Components | None = None,
) -> Path:
    """`medcf effect`: n matched pairs on the cohort's clinical rows, averaged (`population_effect`), and with
    `truth` the renderer's pairs of the same subjects beside them. `size`: a volume model's in-plane cohort size
    (default: its training volume's)."""
    rows = matched_rows(cohort_rows(cohort, n=n, seed=seed), attribute, low=low, high=high)
    sampling = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale}
    pairs = model_pairs(
        model, rows, cohort=cohort, size=size, seed=seed, device=device, components=components,
        latent_drift=latent_drift, **sampling,
    )  # fmt: skip
    true_pairs = (  # built first: a factor the renderer lacks is refused before the model samples
        cohort_pairs(cohort, attribute=attribute, size=pairs.size, low=low, high=high, seed=seed,
                     value_range=pairs.value_range) if truth else None
    )  # fmt: skip
    mask = cohort_anatomy_mask(cohort, size=pairs.size, seed=seed, name=anatomy)
    units = {"value_range": pairs.value_range, "units": pairs.units}
    options = {"attribute": attribute, "anatomy_mask": mask, "low": low, "high": high, "seed": seed, **units}
    with inference_precision(precision, pairs.device):
        result = population_effect(pairs.sample_pairs, n, batch_size=batch_size, **options)
    reference = None if true_pairs is None else population_effect(true_pairs, n, batch_size=batch_size, **options)
    settings = {"cohort": cohort, "size": pairs.size, **run_settings(pairs.device, precision)}
    return write_effect(result, out, anatomy_mask=mask, settings=settings, truth=reference)
