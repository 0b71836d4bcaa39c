"""Files of a population effect: effect map figure with colour bar, arrays, per-pair table, JSON and report.

out/
  effect_map.png     mean low | mean high | signed mean difference (anatomy outlined) | overlay, or the true
                     difference when the renderer's truth is given; a volume shows its axial and coronal planes
  convergence.png    running mean shift as pairs accumulate (beside the truth's)
  effect.npy         (H, W) or (X, Y, Z) float32 signed mean difference, in the result's units
  true_effect.npy    the same for the ground-truth pairs, when given
  pairs.csv          pair, shift_inside, shift_outside
  effect.json        mean shift, CI, n, attribute, edits, inside fraction (EffectResult.summary); the truth's
                     summary and the correlation of the two maps when the truth is given
  index.html, report.md
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from medcf.atomic import atomic_path
from medcf.attribution.effect import EffectResult
from medcf.figures import colour_bar, line_chart, mask_outline, overlay, panel, save_figure, signed_heatmap
from medcf.report import Section, write_report
from medcf.volumes.to_folder import planes

TILE = 192  # px per figure tile
OUTLINE = (40, 40, 40)  # anatomy outline on the heatmap: dark, to read on white (zero) and on both hues


def map_agreement(result: EffectResult, truth: EffectResult, anatomy_mask: np.ndarray) -> dict[str, float]:
    """Pearson correlation of the model's and the true effect maps, over every pixel and inside the mask, and the
    ratio of the mean shifts (1 = the model's effect has the true size)."""
    inside = np.asarray(anatomy_mask) > 0.5

    def correlation(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")

    model, true = result.effect_map, truth.effect_map
    ratio = result.mean_shift / truth.mean_shift if truth.mean_shift != 0 else float("nan")
    return {
        "map_correlation": correlation(model.ravel(), true.ravel()),
        "map_correlation_inside": correlation(model[inside], true[inside]),
        "shift_ratio": ratio,
    }


def effect_figure(result: EffectResult, anatomy_mask: np.ndarray, truth: EffectResult | None = None) -> Image.Image:
    """Mean low and high images, the signed effect map with the anatomy outlined, then its overlay or the true
    map on the same colour scale; one row per view (an image, or a volume's axial and coronal planes)."""
    maps = [result.effect_map] + ([] if truth is None else [truth.effect_map])
    limit = max(float(np.abs(values).max()) for values in maps)
    low, high = result.value_range
    means = [_views((image - low) / (high - low)) for image in (result.mean_low, result.mean_high)]
    heats = [{view: signed_heatmap(plane, limit=limit) for view, plane in _views(values).items()} for values in maps]
    rows, titles = [], []
    for view, mask in _views(anatomy_mask > 0.5).items():
        mean_low, mean_high = means[0][view], means[1][view]
        tiles = [mask_outline(mean_low, mask), mask_outline(mean_high, mask)]
        tiles += [mask_outline(heat[view], mask, colour=OUTLINE) for heat in heats]
        if truth is None:
            tiles.append(overlay(mean_low, heats[0][view], np.ones_like(mask, dtype=float), alpha=0.7))
        rows.append(tiles)
        last = "overlay" if truth is None else "truth: high - low"
        titles.append([f"{view}mean {result.low}", f"mean {result.high}", "high - low", last])
    grid = panel(rows, titles, tile=TILE)
    bar = colour_bar(limit, grid.width, label=f"high - low, {result.units}")
    figure = Image.new("RGB", (grid.width, grid.height + bar.height), (255, 255, 255))
    figure.paste(grid, (0, 0))
    figure.paste(bar, (0, grid.height))
    return figure


def _views(array: np.ndarray) -> dict[str, np.ndarray]:
    """An image as itself; a volume (X, Y, Z) as its central axial and coronal planes (display orientation)."""
    if array.ndim == 2:
        return {"": array}
    views = planes(array)
    return {f"{name}: ": views[name] for name in ("axial", "coronal")}


def write_effect(
    result: EffectResult,
    out: str | Path,
    *,
    anatomy_mask: np.ndarray,
    settings: dict[str, object] | None = None,
    truth: EffectResult | None = None,
) -> Path:
    """Write the files listed in the module docstring into `out` (created if needed), each atomically;
    `settings` (how the pairs were made: device, precision, ...) join effect.json and the report's method;
    `truth` is the same contrast on ground-truth pairs of the same subjects (`cohort_pairs`)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if np.shape(anatomy_mask) != result.effect_map.shape:
        shapes = f"anatomy_mask {np.shape(anatomy_mask)}, effect map {result.effect_map.shape}"
        raise ValueError(f"{shapes}: pass the mask the effect was measured in")
    mask = np.asarray(anatomy_mask) > 0.5
    save_figure(effect_figure(result, mask, truth), folder / "effect_map.png")
    curves = {"model" if truth else "mean shift inside mask": result} | ({"truth": truth} if truth else {})
    line_chart(
        {name: _running_mean(curve) for name, curve in curves.items()},
        folder / "convergence.png",
        xlabel="pairs",
        ylabel=f"mean shift inside mask ({result.units})",
        title=f"{result.attribute}: {result.low} → {result.high}",
    )
    arrays = {"effect.npy": result} | ({"true_effect.npy": truth} if truth else {})
    for name, values in arrays.items():
        with atomic_path(folder / name) as temporary, temporary.open("wb") as handle:
            np.save(handle, values.effect_map.astype(np.float32))
    summary = result.summary()
    if truth is not None:
        summary |= {"truth": truth.summary(), **map_agreement(result, truth, mask)}
    with atomic_path(folder / "pairs.csv") as temporary:
        temporary.write_text(_pairs_csv(result))
    with atomic_path(folder / "effect.json") as temporary:
        temporary.write_text(json.dumps(_no_nan({**summary, **(settings or {})}), indent=2) + "\n")
    write_report(folder, f"Population effect of {result.attribute}", _sections(result, settings or {}, summary))
    return folder


def _running_mean(result: EffectResult) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.arange(1, result.n + 1)
    return pairs, np.cumsum(result.pair_shifts) / pairs


def _no_nan(values: dict) -> dict:
    """JSON has no NaN: undefined correlations and ratios are written as null."""
    return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in values.items()}


def _pairs_csv(result: EffectResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["pair", "shift_inside", "shift_outside"])
    rows = zip(result.pair_shifts, result.outside_shifts, strict=True)
    writer.writerows([index, f"{inside:.8g}", f"{outside:.8g}"] for index, (inside, outside) in enumerate(rows))
    return buffer.getvalue()


def _sections(result: EffectResult, settings: dict[str, object], summary: dict[str, object]) -> list[Section]:
    paragraphs = [_finding(result)]
    if "truth" in summary:
        truth = summary["truth"]
        paragraphs.append(
            f"The renderer's true effect on the same subjects: {truth['mean_shift']:+.4g} {result.units} (CI "
            f"{truth['ci_low']:+.4g} to {truth['ci_high']:+.4g}); model / truth = {_number(summary['shift_ratio'])}. "
            f"Correlation of the two maps: {_number(summary['map_correlation'])} over every "
            f"{'voxel' if result.effect_map.ndim == 3 else 'pixel'}, {_number(summary['map_correlation_inside'])} "
            "inside the mask."
        )
    method = (
        "Each pair is one base patient rendered twice, with the low and with the high edit: same initial noise and "
        "all other fields equal, so their difference is the attribute's effect (DGM-VLC, Xing et al. 2024). The map "
        f"is the mean of those differences, in {result.units_note}."
    )
    table = [{"quantity": key, "value": value} for key, value in {**result.summary(), **settings}.items()]
    return [
        Section(
            f"Effect of {result.attribute}",
            paragraphs=paragraphs,
            figures=[("effect_map.png", "Mean images and signed mean difference (red: brighter with the high edit)")],
        ),
        Section("Convergence", figures=[("convergence.png", "Running mean shift inside the mask")]),
        Section("Method", paragraphs=[method], table=table),
    ]


def _finding(result: EffectResult) -> str:
    low, high = result.interval
    return (
        f"Mean shift inside the anatomy mask, {result.high} minus {result.low}: {result.mean_shift:+.4g} "
        f"{result.units} ({result.confidence:.0%} CI {low:+.4g} to {high:+.4g}, percentile bootstrap over "
        f"{result.n} pairs, {result.n_bootstrap} resamples). Outside the mask: {result.outside_shift:+.4g}. "
        f"Share of the absolute effect inside the mask: {result.inside_fraction:.1%}."
    )


def _number(value: object) -> str:
    return "undefined" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"
