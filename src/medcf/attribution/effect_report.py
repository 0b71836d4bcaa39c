"""Files of a population effect: effect map figure with colour bar, arrays, per-pair table, JSON and report.

out/
  effect_map.png     mean low | mean high | signed mean difference (anatomy outlined) + colour bar
  convergence.png    running mean shift as pairs accumulate
  effect.npy         (H, W) float32 signed mean difference, display units
  pairs.csv          pair, shift_inside, shift_outside
  effect.json        mean shift, CI, n, attribute, edits, inside fraction (EffectResult.summary)
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

TILE = 192  # px per figure tile
OUTLINE = (40, 40, 40)  # anatomy outline on the heatmap: dark, to read on white (zero) and on both hues


def effect_figure(result: EffectResult, anatomy_mask: np.ndarray) -> Image.Image:
    """Mean low and high images, the signed effect map with the anatomy outlined, its overlay; a colour bar under."""
    limit = float(np.abs(result.effect_map).max())
    heat = signed_heatmap(result.effect_map, limit=limit)
    tiles = [
        mask_outline(result.mean_low, anatomy_mask),
        mask_outline(result.mean_high, anatomy_mask),
        mask_outline(heat, anatomy_mask, colour=OUTLINE),
        overlay(result.mean_low, heat, np.ones_like(anatomy_mask, dtype=float), alpha=0.7),
    ]
    titles = [f"mean {result.low}", f"mean {result.high}", "high - low", "overlay"]
    grid = panel([tiles], [titles], tile=TILE)
    bar = colour_bar(limit, grid.width, label="high - low, display units")
    figure = Image.new("RGB", (grid.width, grid.height + bar.height), (255, 255, 255))
    figure.paste(grid, (0, 0))
    figure.paste(bar, (0, grid.height))
    return figure


def write_effect(
    result: EffectResult, out: str | Path, *, anatomy_mask: np.ndarray, settings: dict[str, object] | None = None
) -> Path:
    """Write the files listed in the module docstring into `out` (created if needed), each atomically;
    `settings` (how the pairs were made: device, precision, ...) join effect.json and the report's method."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if np.shape(anatomy_mask) != result.effect_map.shape:
        shapes = f"anatomy_mask {np.shape(anatomy_mask)}, effect map {result.effect_map.shape}"
        raise ValueError(f"{shapes}: pass the mask the effect was measured in")
    save_figure(effect_figure(result, np.asarray(anatomy_mask) > 0.5), folder / "effect_map.png")
    pairs = np.arange(1, result.n + 1)
    line_chart(
        {"mean shift inside mask": (pairs, np.cumsum(result.pair_shifts) / pairs)},
        folder / "convergence.png",
        xlabel="pairs",
        ylabel="mean shift (display units)",
        title=f"{result.attribute}: {result.low} → {result.high}",
    )
    with atomic_path(folder / "effect.npy") as temporary, temporary.open("wb") as handle:
        np.save(handle, result.effect_map.astype(np.float32))
    with atomic_path(folder / "pairs.csv") as temporary:
        temporary.write_text(_pairs_csv(result))
    with atomic_path(folder / "effect.json") as temporary:
        temporary.write_text(json.dumps({**result.summary(), **(settings or {})}, indent=2) + "\n")
    write_report(folder, f"Population effect of {result.attribute}", _sections(result, settings or {}))
    return folder


def _pairs_csv(result: EffectResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["pair", "shift_inside", "shift_outside"])
    rows = zip(result.pair_shifts, result.outside_shifts, strict=True)
    writer.writerows([index, f"{inside:.8g}", f"{outside:.8g}"] for index, (inside, outside) in enumerate(rows))
    return buffer.getvalue()


def _sections(result: EffectResult, settings: dict[str, object]) -> list[Section]:
    low, high = result.interval
    finding = (
        f"Mean shift inside the anatomy mask, {result.high} minus {result.low}: {result.mean_shift:+.4f} display "
        f"units ({result.confidence:.0%} CI {low:+.4f} to {high:+.4f}, percentile bootstrap over {result.n} pairs, "
        f"{result.n_bootstrap} resamples). Outside the mask: {result.outside_shift:+.4f}. "
        f"Share of the absolute effect inside the mask: {result.inside_fraction:.1%}."
    )
    method = (
        "Each pair is one base patient rendered twice, with the low and with the high edit: same initial noise and "
        "all other fields equal, so their difference is the attribute's effect (DGM-VLC, Xing et al. 2024). The map "
        "is the pixel-wise mean of those differences; 1 display unit is black to white."
    )
    table = [{"quantity": key, "value": value} for key, value in {**result.summary(), **settings}.items()]
    return [
        Section(
            f"Effect of {result.attribute}",
            paragraphs=[finding],
            figures=[("effect_map.png", "Mean images and signed mean difference (red: brighter with the high edit)")],
        ),
        Section("Convergence", figures=[("convergence.png", "Running mean shift inside the mask")]),
        Section("Method", paragraphs=[method], table=table),
    ]
