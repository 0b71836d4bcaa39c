"""PNG and JPEG: read any Pillow grey/colour mode into medcf's convention, write 8/16-bit grey PNG.

Grey rule: RGB becomes ITU-R BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B (the coefficients sum to 1, so
a grey RGB image keeps its value); alpha is ignored (a transparent pixel keeps its colour); a palette
image is converted to RGB through its palette first. Bit depths below 8 are expanded to 8 bits as Pillow
does (1-bit: 0 / 255). `pixels` = code / 255 (8-bit) or code / 65535 (16-bit); `values` = the code
values (luma for colour). 16-bit colour or grey+alpha PNGs are refused: Pillow decodes them at 8 bits.
An RGB file whose channels differ by more than COLOUR_SPREAD codes on average is flagged
`provenance.colour`: reading it is fine, but model inputs and masks refuse it (a photo or a coloured
overlay, not a scan); JPEG chroma noise on a grey X-ray stays far below the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image, ImageOps, UnidentifiedImageError

from medcf.atomic import atomic_path
from medcf.data.image import MedicalImage, Provenance
from medcf.data.intensity import window_level

MAX_SIDE = 16384  # pixels per side: beyond this an image is not a 2-D medical image we can train on
MAX_PIXELS = 2**28  # pixels per image (1 GiB as float32), checked from the header before decoding
LUMA_BT601 = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma weights of R, G, B
PNG_COLOUR_TYPES = {2: "RGB", 4: "grey+alpha", 6: "RGBA"}  # PNG IHDR colour types with several channels
COLOUR_SPREAD = 4.0  # mean (max − min) over R, G, B in 8-bit codes above which an RGB file is colour
GREY_16 = ("I;16", "I;16B", "I;16L", "I;16N")
Pick = Callable[[int, str], list[int]]  # (number of images in the file, their noun) → indices to return


def check_size(path: Path, height: int, width: int) -> None:
    """Refuse an image over medcf's size limit, from its header dimensions (before decoding)."""
    if max(height, width) > MAX_SIDE or height * width > MAX_PIXELS:
        raise size_error(path, f"{width} x {height} pixels")


def size_error(path: Path, detail: str) -> ValueError:
    """The one message for every too-large image."""
    return ValueError(
        f"{path}: image of {detail} is over medcf's limit ({MAX_SIDE} px per side, 2**28 pixels); "
        "crop or downscale it first"
    )


def read_raster(path: Path, *, window: tuple[float, float] | None, pick: Pick) -> list[MedicalImage]:
    """A PNG or JPEG as one MedicalImage (intensity rule in the module docstring).

    `window` = (center, width) in code values (LINEAR_EXACT) replaces the code / max scaling.
    """
    pick(1, "image")
    image = _open(path)
    try:
        codes, code_max, colour = _grey_codes(path, image)
        fmt = image.format.lower()
    finally:
        image.close()
    if window is None:
        pixels = (codes / code_max).astype(np.float32)
    else:
        pixels = window_level(codes, *window, function="LINEAR_EXACT")
    provenance = Provenance(source=path, format=fmt, colour=colour)
    return [MedicalImage(pixels, codes.astype(np.float32), provenance, header=None)]


def _open(path: Path) -> Image.Image:
    """Open lazily (header only), refuse bad content and oversize images before decoding."""
    try:
        image = Image.open(path, formats=["PNG", "JPEG"])
    except Image.DecompressionBombError as error:
        raise size_error(path, f"more pixels than Pillow's decompression-bomb guard allows ({error})") from None
    except UnidentifiedImageError:
        raise ValueError(
            f"{path}: not a readable PNG or JPEG (unrecognised or corrupt content); re-export it"
        ) from None
    except (OSError, SyntaxError) as error:
        raise ValueError(f"{path}: corrupt PNG/JPEG header ({error}); re-export the file") from None
    try:
        check_size(path, image.height, image.width)
        if image.format == "PNG":
            _refuse_16_bit_colour(path)
    except ValueError:
        image.close()
        raise
    return image


def _refuse_16_bit_colour(path: Path) -> None:
    """Pillow decodes 16-bit RGB, RGBA and grey+alpha PNGs at 8 bits; refuse rather than lose precision."""
    with open(path, "rb") as file:
        ihdr = file.read(26)  # signature (8) + chunk length and type (8) + width, height, depth, colour type
    if ihdr[24] == 16 and ihdr[25] in PNG_COLOUR_TYPES:
        raise ValueError(
            f"{path}: 16-bit {PNG_COLOUR_TYPES[ihdr[25]]} PNG; Pillow would decode it at 8 bits, so "
            "medcf refuses it: save it as 16-bit greyscale PNG (or 8-bit colour) first"
        )


def _grey_codes(path: Path, image: Image.Image) -> tuple[np.ndarray, float, bool]:
    """Decode to grey code values (H, W) float64, the code value of full brightness, and whether colour."""
    fmt = image.format
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # rows as viewers display them (EXIF Orientation)
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: truncated or corrupt {fmt} ({error}); re-export the file") from None
    mode = image.mode
    if mode in ("1", "P", "PA"):
        image = image.convert("L" if mode == "1" else "RGB")
        mode = image.mode
    if mode in ("L", "LA"):
        return np.asarray(image, dtype=np.float64).reshape(image.height, image.width, -1)[..., 0], 255.0, False
    if mode in ("RGB", "RGBA"):
        rgb = np.asarray(image, dtype=np.float64)[..., :3]
        spread = float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean()) if rgb.size else 0.0
        return rgb @ LUMA_BT601, 255.0, spread > COLOUR_SPREAD
    if mode in GREY_16:
        return np.asarray(image, dtype=np.float64), 65535.0, False
    if mode == "I":  # Pillow's 32-bit container; a PNG sample has at most 16 bits
        codes = np.asarray(image, dtype=np.float64)
        if codes.min() < 0 or codes.max() > 65535:
            raise ValueError(
                f"{path}: 32-bit integer image with values outside 0..65535; save it as 16-bit greyscale PNG"
            )
        return codes, 65535.0, False
    raise ValueError(f"{path}: unsupported {fmt} colour mode '{mode}'; convert it to greyscale or RGB")


def display_pixels(path: str | Path, pixels: ArrayLike) -> np.ndarray:
    """Check pixels (H, W) for writing to `path`: finite, then clipped to [0, 1] as float32."""
    array = np.asarray(pixels, dtype=np.float64)
    if array.ndim != 2 or min(array.shape) < 1:
        raise ValueError(f"{path}: pixels must be a non-empty 2-D (H, W) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        count = int((~np.isfinite(array)).sum())
        raise ValueError(f"{path}: pixels contain {count} NaN/Inf values; fix them (e.g. numpy.nan_to_num) first")
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def write_png(path: str | Path, pixels: ArrayLike, *, bit_depth: int = 16) -> Path:
    """Write display pixels (H, W) in [0, 1] (clipped; NaN refused) as a grey PNG, atomically.

    Code value = round(pixel × 255) for bit_depth 8, round(pixel × 65535) for 16, so medcf reads back
    `pixels` within half a code step.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"{path}: PNG bit_depth {bit_depth} unsupported; use 8 or 16")
    array = display_pixels(path, pixels)
    code_max, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    codes = np.rint(array * code_max).astype(dtype)
    with atomic_path(path) as temporary:
        Image.fromarray(codes).save(temporary, format="PNG")
    return Path(path)
