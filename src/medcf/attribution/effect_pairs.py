"""Matched-pair samplers for population effect maps, and the semi-synthetic cohort's rows and anatomy atlas.

`diffusion_pairs` (2-D or 3-D models) and `gan_pairs` ask a model for the pairs (DGM-VLC, Xing et al. 2024: same
noise, prompts differing in one attribute); `cohort_pairs` renders the same subjects with the ground-truth renderer,
the answer the model's map should approach. All return a `SamplePairs` in which pair i depends on (seed, i) only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from medcf.attribution.effect import SamplePairs, contrast
from medcf.data.synthetic.kinds import get_kind
from medcf.data.volume import to_unit_range
from medcf.generate import generate
from medcf.models import Components, GanComponents, gan_generate, is_volume_model, latent_channels, vae_scale_factor
from medcf.prompts import PromptTemplate, apply_edit
from medcf.training.drift_search import as_grey
from medcf.volumes.sampling import generate_volumes, latent_shape

# Samplers whose steps draw no noise: with ddpm the step noise of a batch would differ between the two
# images of a pair and change with the batch size, so pairs would no longer be matched.
DETERMINISTIC_SCHEDULERS = ("ddim", "dpm++")


def pair_noise(shape: tuple[int, ...], *, seed: int, index: int) -> torch.Tensor:
    """Initial noise z_T (1, C, h, w) of pair `index`, drawn on the CPU so it is the same on every device."""
    pair_seed = int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0])
    return torch.randn((1, *shape), generator=torch.Generator().manual_seed(pair_seed))


def diffusion_pairs(
    components: Components,
    template: PromptTemplate,
    rows_low: Sequence[Mapping[str, object]],
    rows_high: Sequence[Mapping[str, object]],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
    scheduler: str = "ddim",
    latent_drift: float | Sequence[float] = 0.0,
    seed: int = 0,
    size: int | Sequence[int] | None = None,
    mask: torch.Tensor | None = None,
) -> SamplePairs:
    """Pairs generated from rows_low[i] and rows_high[i] with the same initial noise (seeded by (seed, i)).

    A "diverse" template renders in its "simple" wording (`for_editing`), so the two prompts differ in the
    attribute's words only. `size` defaults to the model's: a side in pixels for an image model, (X, Y, Z) voxels
    for a volume model; `mask` (H, W), or (X, Y, Z) for a volume model, in {0, 1} is required by, and only by,
    mask-conditioned models, and is shared by every pair.
    """
    _check_pairs(rows_low, rows_high)
    if scheduler not in DETERMINISTIC_SCHEDULERS:
        raise ValueError(
            f"scheduler={scheduler!r} draws noise at every step, so the two images of a pair would differ by more "
            f"than the attribute; use one of {DETERMINISTIC_SCHEDULERS}"
        )
    options = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale, "scheduler": scheduler}
    options["latent_drift"] = latent_drift
    volumes = is_volume_model(components.unet)
    side = None if volumes else size or components.unet.config.sample_size * vae_scale_factor(components)

    def sample(prompts: list[str], latents: torch.Tensor) -> torch.Tensor:
        masks = None if mask is None else torch.as_tensor(mask).float().expand(len(prompts), 1, *np.shape(mask))
        if volumes:
            return generate_volumes(components, prompts, size=size, latents=latents, mask=masks, **options)
        images = generate(components, prompts, latents=latents, mask=masks, height=side, width=side, **options)
        return as_grey(images)

    if volumes:
        shape = latent_shape(components, 1, size)[1:]
    else:
        shape = (latent_channels(components), *(2 * [side // vae_scale_factor(components)]))
    return _shared_noise_pairs(template, (rows_low, rows_high), sample, shape, seed)


def gan_pairs(
    gan: GanComponents,
    template: PromptTemplate,
    rows_low: Sequence[Mapping[str, object]],
    rows_high: Sequence[Mapping[str, object]],
    *,
    seed: int = 0,
    mask: torch.Tensor | None = None,
) -> SamplePairs:
    """Pairs G(z_i, low prompt) and G(z_i, high prompt) of a GAN (2-D or 3-D): the same z per pair, as for
    `diffusion_pairs`; `mask` (*spatial) only for mask-conditioned generators."""
    _check_pairs(rows_low, rows_high)

    def sample(prompts: list[str], latents: torch.Tensor) -> torch.Tensor:
        masks = None if mask is None else torch.as_tensor(mask).float().expand(len(prompts), 1, *mask.shape)
        return gan_generate(gan, prompts, latents=latents, mask=masks)[:, :1]

    return _shared_noise_pairs(template, (rows_low, rows_high), sample, (gan.generator.config.latent_dim,), seed)


def _check_pairs(rows_low: Sequence[Mapping[str, object]], rows_high: Sequence[Mapping[str, object]]) -> None:
    if len(rows_low) != len(rows_high):
        raise ValueError(f"{len(rows_low)} low rows but {len(rows_high)} high rows; build them with matched_rows")


def _shared_noise_pairs(
    template: PromptTemplate,
    rows: tuple[Sequence[Mapping[str, object]], Sequence[Mapping[str, object]]],
    sample: Callable[[list[str], torch.Tensor], torch.Tensor],
    shape: tuple[int, ...],
    seed: int,
) -> SamplePairs:
    """SamplePairs over `sample(prompts, latents)`: pair i's two prompts share the noise `pair_noise(shape, i)`."""
    wording, (rows_low, rows_high) = template.for_editing(), rows

    def sample_pairs(indices: range) -> tuple[torch.Tensor, torch.Tensor]:
        if indices.stop > len(rows_low):
            raise ValueError(f"pairs up to {indices.stop} asked for, but only {len(rows_low)} rows were given")
        prompts = [wording.render(arm[i]) for arm in (rows_low, rows_high) for i in indices]
        noise = torch.cat([pair_noise(shape, seed=seed, index=i) for i in indices])
        images = sample(prompts, torch.cat([noise, noise]))  # [z; z]: the pair shares its noise
        return images.float().cpu().chunk(2)

    return sample_pairs


def cohort_rows(kind: str = "cxr", *, n: int, seed: int = 0) -> list[dict[str, object]]:
    """Clinical rows of the first `n` subjects of a semi-synthetic cohort: base rows with no data folder."""
    generator = get_kind(kind)
    return [generator.row(generator.sample(seed, index)) for index in range(n)]


def cohort_anatomy_mask(
    kind: str = "cxr", *, size: int, n: int = 64, seed: int = 0, name: str | None = None, threshold: float = 0.5
) -> np.ndarray:
    """Population atlas bool at the render's shape ((size, size), or (X, Y, Z) for a volume kind): where more than
    `threshold` of `n` subjects have the anatomy mask.

    `name` defaults to the kind's conditioning mask (lungs, brain). 0.5 is the majority atlas; a lower threshold
    covers more of every subject's anatomy (pose and size vary), at the price of some pixels outside it.
    """
    generator = get_kind(kind)
    name = name or generator.anatomy_masks[0]
    if name not in generator.anatomy_masks:
        raise ValueError(f"{kind} subjects have no {name!r} mask; choose one of {list(generator.anatomy_masks)}")
    if not 0 <= threshold < 1 or n < 1:
        raise ValueError(f"threshold={threshold}, n={n}: need 0 ≤ threshold < 1 and n ≥ 1 subjects")
    total = sum(generator.render(generator.sample(seed, index), size).masks[name].astype(float) for index in range(n))
    return total / n > threshold


def cohort_pairs(
    kind: str = "cxr",
    *,
    attribute: str,
    size: int,
    low: str | None = None,
    high: str | None = None,
    seed: int = 0,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> SamplePairs:
    """Ground-truth pairs: cohort subject i rendered with its factor values after the low and the high edit.

    Same anatomy and noise in both images (a render is a pure function of subject and factors), so the pair
    differs in `attribute` only, the ideal a diffusion model's matched pairs approximate. Renders are mapped from
    `value_range` (display units [0, 1]; e.g. (-1024, 1024) HU for CT, clipped as training data is) onto [-1, 1].
    """
    generator = get_kind(kind)
    factors = [factor.name for factor in generator.factors]
    if attribute not in factors:
        raise ValueError(f"the {kind} renderer has no factor {attribute!r}; choose one of {factors}")
    low, high = contrast(attribute, low=low, high=high)

    def render(subject: object, row: dict[str, object], edit: str) -> np.ndarray:
        edited = apply_edit(row, edit)
        overrides = {name: edited[name] for name in factors if edited[name] != row[name]}
        return generator.render(subject, size, **overrides).image

    def sample_pairs(indices: range) -> tuple[torch.Tensor, torch.Tensor]:
        subjects = [generator.sample(seed, index) for index in indices]
        rows = [generator.row(subject) for subject in subjects]
        pairs = [
            [render(subject, row, edit) for subject, row in zip(subjects, rows, strict=True)] for edit in (low, high)
        ]
        images_low, images_high = (to_unit_range(np.stack(images), value_range)[:, None] for images in pairs)
        return images_low, images_high

    return sample_pairs
