"""Pictures a person looks at: labelled panels and grids of images, signed heatmaps, overlays, line charts.

Images: numpy + Pillow. Line charts (loss and metric curves): matplotlib's non-interactive Agg backend.
Every image in is float (H, W) in [0, 1] (grey, display convention) or uint8 (H, W, 3) RGB; every figure
out is an RGB `PIL.Image`, saved atomically by `save_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from medcf.atomic import atomic_path

LABEL_HEIGHT = 16  # px of caption strip above each tile
BAR_HEIGHT = 14  # px of the colour-bar gradient
# Diverging map for signed maps (blue < 0 < red), anchored at white so zero change reads as "nothing".
_DIVERGING = np.array([[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]], float)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Grey float [0, 1] (H, W) or RGB uint8 (H, W, 3) → RGB uint8 (H, W, 3)."""
    if image.ndim == 3:
        return image.astype(np.uint8)
    grey = np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def signed_heatmap(values: np.ndarray, *, limit: float | None = None) -> np.ndarray:
    """Signed map (H, W) → RGB uint8; ±limit (default max |values|) map to full blue / red."""
    limit = float(np.abs(values).max()) if limit is None else limit
    scaled = np.clip(values / limit, -1.0, 1.0) if limit > 0 else np.zeros_like(values)
    position = (scaled + 1.0) / 2.0 * (len(_DIVERGING) - 1)
    low = np.floor(position).astype(int).clip(0, len(_DIVERGING) - 2)
    weight = (position - low)[..., None]
    rgb = _DIVERGING[low] * (1 - weight) + _DIVERGING[low + 1] * weight
    return np.round(rgb).astype(np.uint8)


def overlay(pixels: np.ndarray, heat_rgb: np.ndarray, mask: np.ndarray, *, alpha: float = 0.6) -> np.ndarray:
    """Blend a heatmap onto a grey image where `mask` (H, W, bool or [0, 1] weight) is set."""
    weight = alpha * np.clip(mask.astype(float), 0.0, 1.0)[..., None]
    blended = to_rgb(pixels) * (1 - weight) + heat_rgb * weight
    return np.round(blended).astype(np.uint8)


@cache
def caption_font(size: int = 11) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's data (it has −, δ, σ, ᾱ, ×, which Pillow's default font draws as boxes)."""
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), size) if path.is_file() else ImageFont.load_default()


def colour_bar(limit: float, width: int, *, label: str = "difference, display units") -> Image.Image:
    """The signed_heatmap scale as a strip: −limit (blue) … 0 (white) … +limit (red), with tick labels."""
    font = caption_font()
    strip = Image.new("RGB", (width, BAR_HEIGHT + 30), (255, 255, 255))
    values = np.linspace(-limit, limit, width - 8)[None, :].repeat(BAR_HEIGHT, axis=0)
    strip.paste(Image.fromarray(signed_heatmap(values, limit=limit)), (4, 2))
    draw = ImageDraw.Draw(strip)
    ticks = ((4, f"{-limit:+.3g}"), (width // 2, "0"), (width - 4, f"{limit:+.3g}"))
    for x, text in ticks:
        text_width = draw.textlength(text, font=font)
        left = min(max(x - text_width / 2, 0), width - text_width)
        draw.line([(x, BAR_HEIGHT + 2), (x, BAR_HEIGHT + 5)], fill=(0, 0, 0))
        draw.text((left, BAR_HEIGHT + 6), text, fill=(0, 0, 0), font=font)
    draw.text(((width - draw.textlength(label, font=font)) / 2, BAR_HEIGHT + 18), label, fill=(0, 0, 0), font=font)
    return strip


def with_colour_bar(figure: Image.Image, limit: float, *, label: str = "difference, display units") -> Image.Image:
    """`figure` with the signed colour bar of ±limit underneath."""
    bar = colour_bar(limit, figure.width, label=label)
    combined = Image.new("RGB", (figure.width, figure.height + bar.height), (255, 255, 255))
    combined.paste(figure, (0, 0))
    combined.paste(bar, (0, figure.height))
    return combined


def mask_outline(pixels: np.ndarray, mask: np.ndarray, *, colour: tuple[int, int, int] = (255, 200, 0)) -> np.ndarray:
    """Grey image with the boundary of a binary mask drawn in `colour`."""
    inside = mask > 0.5
    interior = inside.copy()
    for axis in (0, 1):
        for shift in (1, -1):
            interior &= np.roll(inside, shift, axis=axis)
    rgb = to_rgb(pixels)
    rgb[inside & ~interior] = colour
    return rgb


def panel(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[Sequence[str]], *, tile: int = 160) -> Image.Image:
    """Grid of tiles (each resized to `tile` px high, aspect kept) with a caption above each."""
    font = caption_font()
    rendered = [[_tile(image, tile) for image in row] for row in rows]
    width = max(sum(t.width for t in row) + 4 * (len(row) + 1) for row in rendered)
    height = len(rendered) * (tile + LABEL_HEIGHT + 4) + 4
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row_index, (row, row_titles) in enumerate(zip(rendered, titles, strict=True)):
        top = 4 + row_index * (tile + LABEL_HEIGHT + 4)
        left = 4
        for tile_image, title in zip(row, row_titles, strict=True):
            draw.text((left, top), title, fill=(0, 0, 0), font=font)
            canvas.paste(tile_image, (left, top + LABEL_HEIGHT))
            left += tile_image.width + 4
    return canvas


def grid(images: Sequence[np.ndarray], *, columns: int = 8, first_label: int = 0) -> Image.Image:
    """Images in rows of `columns`, each captioned with its number (first_label, first_label + 1, ...)."""
    rows = [list(images[start : start + columns]) for start in range(0, len(images), columns)]
    titles = [[str(first_label + row * columns + i) for i in range(len(images_))] for row, images_ in enumerate(rows)]
    return panel(rows, titles, tile=max(96, images[0].shape[0]))


def _tile(image: np.ndarray, height: int) -> Image.Image:
    picture = Image.fromarray(to_rgb(image))
    width = max(1, round(picture.width * height / picture.height))
    return picture.resize((width, height), Image.Resampling.LANCZOS)


def save_figure(figure: Image.Image, path: Path) -> Path:
    """Write a PNG atomically; the folder is created if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.save(temporary, format="PNG")
    return path


def line_chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log_y: bool = False,
    marker: tuple[float, float] | None = None,
) -> Path:
    """Curves {name: (x, y)} as a PNG, written atomically; `marker` (x, y) highlights one point (e.g. a best δ)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.6), dpi=110)
    for name, (x, y) in series.items():
        axes.plot(list(x), list(y), label=name, linewidth=1.2)
    if marker is not None:
        axes.plot([marker[0]], [marker[1]], "o", color="black", markersize=6)
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if log_y:
        axes.set_yscale("log")
    if len(series) > 1:
        axes.legend()
    axes.grid(alpha=0.3)
    return _save_plot(figure, path)


def bar_charts(panels: dict[str, dict[str, dict[str, float]]], path: Path, *, ylabel: str = "images") -> Path:
    """Side-by-side grouped bar charts {panel title: {series: {category: value}}} as one PNG (e.g. the age and
    sex counts of each split), written atomically; categories keep their first-seen order."""
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=110, squeeze=False)
    for axis, (title, series) in zip(axes[0], panels.items(), strict=True):
        categories = list(dict.fromkeys(category for values in series.values() for category in values))
        width = 0.8 / max(1, len(series))
        for number, (name, values) in enumerate(series.items()):
            positions = np.arange(len(categories)) + (number - (len(series) - 1) / 2) * width
            axis.bar(positions, [values.get(category, 0) for category in categories], width, label=name)
        axis.set_xticks(np.arange(len(categories)), categories, rotation=45 if len(categories) > 6 else 0)
        axis.set(title=title, ylabel=ylabel)
        axis.grid(axis="y", alpha=0.3)
        if len(series) > 1:
            axis.legend(fontsize=8)
    return _save_plot(figure, path)


def _save_plot(figure: matplotlib.figure.Figure, path: Path) -> Path:
    """A matplotlib figure as a PNG, written atomically, then closed (pyplot keeps every open figure)."""
    from matplotlib import pyplot

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    pyplot.close(figure)
    return path
