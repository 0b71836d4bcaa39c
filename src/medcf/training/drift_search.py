"""Latent Drift δ grid search: the δ whose samples lie closest, in L1, to the real images.

Yeganeh et al. (CVPR 2025), §3.4: "the minimum value of δ is found via grid search to minimise the distance
function ... estimated via Monte Carlo sampling of generated samples from D_θ and existing samples in D_GT.
Here, we use L1 norm as the distance function" — grid over [−0.2, 0.2], 200 generated samples. The paper
does not say which L1 between two sample sets; two estimators are offered and both always reported:
"mean-image" (L1 between the mean images, as the public reimplementation does) and "intensity" (L1 between
the intensity quantile functions of all pixels = 1-D Wasserstein-1). The drift compounds over the reverse
steps (generate.py, Eq. 4), so a best δ holds only for the recorded sampler, step count and guidance.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from medcf.atomic import atomic_path
from medcf.figures import line_chart
from medcf.generate import generate
from medcf.metrics import frechet_distance
from medcf.metrics.features import FeatureExtractor, extract_features
from medcf.models import Components

DEFAULT_DELTAS = (-0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2)  # the paper's range, step 0.05


def mean_image_l1(generated: torch.Tensor, real: torch.Tensor) -> float:
    """Mean absolute difference between the pixel-wise mean images of (N, C, H, W) and (M, C, H, W)."""
    return (generated.double().mean(dim=0) - real.double().mean(dim=0)).abs().mean().item()


def intensity_l1(generated: torch.Tensor, real: torch.Tensor) -> float:
    """∫ |F_generated − F_real| over intensity: Wasserstein-1 between the pooled pixel values of both sets."""
    first, second = generated.double().flatten().sort().values, real.double().flatten().sort().values
    values = torch.cat([first, second]).sort().values
    # Between consecutive pooled values both empirical CDFs are constant (as in scipy.stats.wasserstein_distance).
    cdf_first = torch.searchsorted(first, values[:-1], right=True) / len(first)
    cdf_second = torch.searchsorted(second, values[:-1], right=True) / len(second)
    return ((cdf_first - cdf_second).abs() * values.diff()).sum().item()


DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "mean-image": mean_image_l1,
    "intensity": intensity_l1,
}
COLUMNS = {"mean-image": "l1_mean_image", "intensity": "l1_intensity"}


@dataclass(frozen=True)
class DriftRow:
    """Distances between the samples generated with one δ and the real images (pixels in [-1, 1])."""

    delta: float
    l1_mean_image: float
    l1_intensity: float
    mean_intensity: float  # mean pixel of the generated samples; the real mean is in DriftSearchResult
    fid: float | None = None  # FID of the samples under the search's feature extractor, when one was given


@dataclass(frozen=True)
class DriftSearchResult:
    """One row per δ, the δ minimising `distance`, and the sampler settings that δ depends on."""

    rows: list[DriftRow]
    best_delta: float  # argmin of `distance`; the first δ in grid order on ties
    distance: str
    num_samples: int
    num_real: int
    real_mean_intensity: float
    num_inference_steps: int
    guidance_scale: float
    scheduler: str
    seed: int
    fid_extractor: str | None = None  # name of the FID features (e.g. "effnet"), None without FID

    def settings(self) -> dict[str, object]:
        """Everything except the rows, for reports."""
        return {name: value for name, value in vars(self).items() if name != "rows"}


def drift_search(
    components: Components,
    prompts: list[str],
    real_images: torch.Tensor,
    *,
    deltas: Sequence[float] = DEFAULT_DELTAS,
    num_samples: int = 200,
    batch_size: int = 25,
    num_inference_steps: int = 25,
    guidance_scale: float = 3.0,
    scheduler: str = "ddim",
    seed: int = 0,
    distance: str = "mean-image",
    extractor: FeatureExtractor | None = None,
    progress: bool = True,
) -> DriftSearchResult:
    """Generate `num_samples` images per δ (prompts cycled) and measure their L1 distance to `real_images`.

    real_images: (N, 1, H, W) in [-1, 1], ideally the images `prompts` describe; samples are made at H × W.
    Every δ gets the same noise (a generator re-seeded with `seed`): common random numbers, so the distance
    curve reflects δ rather than sampling luck. With `extractor`, each δ's samples also get an FID: the L1
    criterion rewards matching the mean intensity, which a δ can do while the images themselves get worse.
    """
    _check_inputs(prompts, real_images, deltas, num_samples, batch_size, distance)
    sample_prompts = [prompts[index % len(prompts)] for index in range(num_samples)]
    real = real_images.detach().float().cpu()
    real_features = None if extractor is None else extract_features((real + 1) / 2, extractor)
    height, width = real.shape[-2:]
    bar = tqdm(total=len(deltas) * num_samples, desc="medcf drift-search", unit="image", disable=not progress)
    rows = []
    for delta in deltas:
        generator = torch.Generator(components.unet.device).manual_seed(seed)
        batches = []
        for start in range(0, num_samples, batch_size):
            images = generate(
                components,
                sample_prompts[start : start + batch_size],
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                scheduler=scheduler,
                generator=generator,
                latent_drift=float(delta),
                height=height,
                width=width,
            )
            batches.append(as_grey(images).float().cpu())
            bar.update(len(images))
        generated = torch.cat(batches)
        fid = None
        if real_features is not None:
            fid = frechet_distance(real_features, extract_features((generated + 1) / 2, extractor))
        rows.append(drift_row(float(delta), generated, real, fid=fid))
    bar.close()
    scores = [getattr(row, COLUMNS[distance]) for row in rows]
    return DriftSearchResult(
        rows=rows,
        best_delta=rows[scores.index(min(scores))].delta,
        distance=distance,
        num_samples=num_samples,
        num_real=len(real),
        real_mean_intensity=real.double().mean().item(),
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        scheduler=scheduler,
        seed=seed,
        fid_extractor=None if extractor is None else extractor.name,
    )


def drift_row(delta: float, generated: torch.Tensor, real: torch.Tensor, *, fid: float | None = None) -> DriftRow:
    """Both distances of generated (N, 1, H, W) to real (M, 1, H, W) images in [-1, 1]."""
    return DriftRow(
        delta=delta,
        l1_mean_image=mean_image_l1(generated, real),
        l1_intensity=intensity_l1(generated, real),
        mean_intensity=generated.double().mean().item(),
        fid=fid,
    )


def as_grey(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) from an RGB VAE → (B, 1, H, W) by the channel mean (the grey rule of models/latents.py)."""
    return images.mean(dim=1, keepdim=True) if images.shape[1] == 3 else images


def _check_inputs(
    prompts: list[str],
    real_images: torch.Tensor,
    deltas: Sequence[float],
    num_samples: int,
    batch_size: int,
    distance: str,
) -> None:
    if isinstance(prompts, str) or not prompts:
        raise ValueError(f"prompts={prompts!r}: pass a non-empty list of the real images' prompts")
    if real_images.dim() != 4 or real_images.shape[1] != 1 or len(real_images) == 0:
        raise ValueError(f"real_images has shape {tuple(real_images.shape)}; pass (N, 1, H, W) with N ≥ 1")
    if real_images.min() < -1 or real_images.max() > 1:
        raise ValueError("real_images lie outside [-1, 1]; scale them as for training (pixel_values)")
    if not deltas or any(not -1 <= delta <= 1 for delta in deltas):
        raise ValueError(f"deltas={list(deltas)}: give a non-empty grid inside [-1, 1] (the paper: −0.2 to 0.2)")
    if len(set(deltas)) != len(deltas):
        raise ValueError(f"deltas={list(deltas)}: each δ once")
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples={num_samples}, batch_size={batch_size}: both must be ≥ 1 (the paper: 200)")
    if distance not in DISTANCES:
        raise ValueError(f"distance={distance!r}: unknown; choose one of {tuple(DISTANCES)}")


def write_drift_search(result: DriftSearchResult, out_dir: str | Path, *, settings: dict | None = None) -> Path:
    """drift_search.csv, drift_search.png (distances vs δ, best marked) and drift_search.md in `out_dir`;
    `settings` (e.g. the device and precision it ran at) join the report's settings."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fields = ["delta", "l1_mean_image", "l1_intensity", "mean_intensity"] + (["fid"] if result.fid_extractor else [])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    writer.writerows([f"{getattr(row, field):.6g}" for field in fields] for row in result.rows)
    with atomic_path(folder / "drift_search.csv") as temporary:
        temporary.write_text(buffer.getvalue())
    deltas = [row.delta for row in result.rows]
    best = next(row for row in result.rows if row.delta == result.best_delta)
    series = {name: (deltas, [getattr(row, column) for row in result.rows]) for name, column in COLUMNS.items()}
    title = (
        f"best δ = {result.best_delta:g} ({result.distance}; {result.scheduler}, {result.num_inference_steps} steps)"
    )
    marker = (best.delta, getattr(best, COLUMNS[result.distance]))
    line_chart(
        series,
        folder / "drift_search.png",
        xlabel="latent drift δ",
        ylabel="L1 distance to real",
        title=title,
        marker=marker,
    )
    with atomic_path(folder / "drift_search.md") as temporary:
        temporary.write_text(drift_markdown(result, settings or {}))
    return folder


def drift_markdown(result: DriftSearchResult, settings: dict | None = None) -> str:
    """A Markdown report: the table (best δ in bold) and the settings it holds for."""
    lines = [
        "# Latent Drift δ search",
        "",
        f"Best δ = **{result.best_delta:g}** by the `{result.distance}` L1 distance (Yeganeh et al. 2025, §3.4).",
        "",
        "| δ | L1 mean image | L1 intensity (W1) | generated mean |" + (" FID |" if result.fid_extractor else ""),
        "|---:|---:|---:|---:|" + ("---:|" if result.fid_extractor else ""),
    ]
    for row in result.rows:
        delta = f"**{row.delta:g}**" if row.delta == result.best_delta else f"{row.delta:g}"
        fid = f" {row.fid:.2f} |" if row.fid is not None else ""
        lines.append(f"| {delta} | {row.l1_mean_image:.5f} | {row.l1_intensity:.5f} | {row.mean_intensity:.4f} |{fid}")
    lines += _fid_check(result)
    settings = {**result.settings(), **(settings or {})}
    lines += ["", "## Settings", "", *(f"- {name}: {value}" for name, value in settings.items())]
    lines += ["", "The drift is added at every reverse step, so δ is tied to the scheduler and step count above."]
    return "\n".join(lines) + "\n"


def _fid_check(result: DriftSearchResult) -> list[str]:
    """A warning when the L1-best δ has a worse FID than δ = 0 (it matched the intensities, not the images)."""
    by_delta = {row.delta: row.fid for row in result.rows}
    best, plain = by_delta.get(result.best_delta), by_delta.get(0.0)
    if best is None or plain is None or best <= plain:
        return []
    return ["", f"**Check before adopting**: FID ({result.fid_extractor}) at δ = {result.best_delta:g} is {best:.2f}, "
            f"worse than {plain:.2f} at δ = 0; the L1 criterion matched intensities, not images."]  # fmt: skip
