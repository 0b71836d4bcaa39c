"""PNG/JPEG through medcf.data.io: grey rules, bit depths, writing, and one-line errors on bad input."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcf.data import raster
from medcf.data.io import IMAGE_SUFFIXES, read_image, read_images, write_image, write_png

LUMA = np.array([0.299, 0.587, 0.114])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bytes(samples: np.ndarray, bit_depth: int, colour_type: int, *, size: tuple[int, int] | None = None) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit colour); `size` fakes the header (width, height)."""
    height, width = samples.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = b"".join(b"\x00" + samples[row].astype(dtype).tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", *(size or (width, height)), bit_depth, colour_type, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _save(path: Path, image: Image.Image, **options: object) -> Path:
    image.save(path, **options)
    return path


@pytest.fixture
def ramp8() -> np.ndarray:
    return np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)


def test_grey_8_bit(tmp_path: Path, ramp8: np.ndarray) -> None:
    image = read_image(_save(tmp_path / "grey.png", Image.fromarray(ramp8)))
    assert image.pixels.dtype == np.float32 and image.values.dtype == np.float32
    np.testing.assert_array_equal(image.values, ramp8)
    np.testing.assert_allclose(image.pixels, ramp8 / 255.0, atol=1e-7)
    assert image.provenance.format == "png" and image.provenance.spacing is None and image.header is None


def test_grey_16_bit(tmp_path: Path) -> None:
    codes = (np.arange(64 * 16).reshape(16, 64) * 63).astype(np.uint16)
    image = read_image(_save(tmp_path / "grey16.png", Image.fromarray(codes)))
    np.testing.assert_array_equal(image.values, codes)
    np.testing.assert_allclose(image.pixels, codes / 65535.0, atol=1e-7)


def test_grey_alpha_ignores_alpha(tmp_path: Path, ramp8: np.ndarray) -> None:
    alpha = np.zeros_like(ramp8)  # fully transparent: still the grey value
    image = read_image(_save(tmp_path / "la.png", Image.fromarray(np.dstack([ramp8, alpha]), mode="LA")))
    np.testing.assert_array_equal(image.values, ramp8)


def test_rgb_and_rgba_become_bt601_luma(tmp_path: Path) -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [90, 90, 90]]], dtype=np.uint8)
    expected = rgb @ LUMA
    np.testing.assert_allclose(expected[0, :3], [76.245, 149.685, 29.07])
    for mode, array in [("RGB", rgb), ("RGBA", np.dstack([rgb, np.full((1, 4), 7, np.uint8)]))]:
        image = read_image(_save(tmp_path / f"{mode}.png", Image.fromarray(array, mode=mode)))
        np.testing.assert_allclose(image.values, expected, atol=1e-4)
        np.testing.assert_allclose(image.pixels, expected / 255, atol=1e-6)
    assert read_image(tmp_path / "RGB.png").values[0, 3] == pytest.approx(90.0)  # grey RGB keeps its value


def test_colour_content_is_flagged_and_grey_rgb_or_jpeg_noise_is_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = np.repeat((rng.random((32, 32, 1)) * 255).astype(np.uint8), 3, axis=2)
    photo = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    _save(tmp_path / "grey.jpg", Image.fromarray(grey), quality=75)  # chroma noise from lossy coding
    flags = {name: read_image(_save(tmp_path / f"{name}.png", Image.fromarray(array))).provenance.colour
             for name, array in [("grey", grey), ("photo", photo)]}  # fmt: skip
    assert flags == {"grey": False, "photo": True}
    assert not read_image(tmp_path / "grey.jpg").provenance.colour


def test_palette_is_converted_through_its_palette(tmp_path: Path) -> None:
    image = Image.fromarray(np.array([[0, 1], [2, 1]], dtype=np.uint8), mode="P")
    image.putpalette([255, 0, 0, 10, 20, 30, 200, 200, 200])
    values = read_image(_save(tmp_path / "palette.png", image, transparency=0)).values
    np.testing.assert_allclose(values, [[76.245, 18.15], [200.0, 18.15]], atol=1e-3)


def test_one_bit_png_expands_to_0_and_255(tmp_path: Path) -> None:
    image = read_image(_save(tmp_path / "bits.png", Image.fromarray(np.eye(5, dtype=bool))))
    np.testing.assert_array_equal(image.values, np.eye(5) * 255)
    np.testing.assert_array_equal(image.pixels, np.eye(5))


def test_32_bit_integer_mode_is_16_bit_or_refused(tmp_path: Path) -> None:
    # Pillow cannot write mode "I" as PNG; older Pillow opened 16-bit grey PNG in this mode
    codes, code_max, colour = raster._grey_codes(tmp_path / "x.png", Image.fromarray(np.array([[0, 40000]], np.int32)))
    assert code_max == 65535.0 and codes.tolist() == [[0.0, 40000.0]] and not colour
    with pytest.raises(ValueError, match=r"x\.png: 32-bit integer image with values outside 0\.\.65535"):
        raster._grey_codes(tmp_path / "x.png", Image.fromarray(np.array([[0, 70000]], np.int32)))


@pytest.mark.parametrize(("colour_type", "channels", "name"), [(2, 3, "RGB"), (4, 2, "grey\\+alpha"), (6, 4, "RGBA")])
def test_16_bit_colour_png_is_refused(tmp_path: Path, colour_type: int, channels: int, name: str) -> None:
    path = tmp_path / "colour16.png"
    path.write_bytes(_png_bytes(np.full((4, 5, channels), 40000, np.uint16), 16, colour_type))
    with pytest.raises(ValueError, match=rf"colour16\.png: 16-bit {name} PNG; Pillow would decode it at 8 bits"):
        read_image(path)


def test_jpeg_grey_and_exif_orientation(tmp_path: Path) -> None:
    grey = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    image = read_image(_save(tmp_path / "grey.JPG", Image.fromarray(grey), quality=100))
    assert image.provenance.format == "jpeg" and image.shape == (16, 32)
    assert np.abs(image.values - grey).max() <= 2  # lossy, but close at quality 100
    np.testing.assert_allclose(image.pixels, image.values / 255, atol=1e-7)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    rotated = read_image(_save(tmp_path / "rotated.jpeg", Image.fromarray(grey), quality=100, exif=exif))
    assert rotated.shape == (32, 16)
    assert rotated.values[0, :].mean() < 20 and rotated.values[-1, :].mean() > 235  # left edge is now at the top


def test_cmyk_jpeg_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "print.jpg", Image.new("CMYK", (8, 8)))
    with pytest.raises(ValueError, match=r"print\.jpg: unsupported JPEG colour mode 'CMYK'; convert it to greyscale"):
        read_image(path)


def test_explicit_window_overrides_code_scaling(tmp_path: Path, ramp8: np.ndarray) -> None:
    image = read_image(_save(tmp_path / "grey.png", Image.fromarray(ramp8)), window=(100, 50))
    np.testing.assert_allclose(image.pixels, np.clip((ramp8.astype(float) - 100) / 50 + 0.5, 0, 1), atol=1e-6)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_write_png_round_trip(tmp_path: Path, bit_depth: int) -> None:
    pixels = np.random.default_rng(0).uniform(-0.2, 1.2, (17, 23)).astype(np.float32)
    path = write_png(tmp_path / "out.png", pixels, bit_depth=bit_depth)
    back = read_image(path)
    step = 1 / (2**bit_depth - 1)
    assert np.abs(back.pixels - np.clip(pixels, 0, 1)).max() <= step / 2 + 1e-7
    assert back.values.max() == 2**bit_depth - 1  # clipped values saturate
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left behind


def test_write_image_png_is_16_bit(tmp_path: Path) -> None:
    pixels = np.linspace(0, 1, 50, dtype=np.float32).reshape(5, 10)
    back = read_image(write_image(tmp_path / "out.png", pixels))
    assert np.abs(back.pixels - pixels).max() <= 0.5 / 65535 + 1e-7


def test_write_refuses_nan_and_bad_arguments(tmp_path: Path) -> None:
    pixels = np.zeros((4, 4))
    pixels[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"bad\.png: pixels contain 1 NaN/Inf values"):
        write_png(tmp_path / "bad.png", pixels)
    assert not (tmp_path / "bad.png").exists()
    with pytest.raises(ValueError, match=r"bit_depth 12 unsupported; use 8 or 16"):
        write_png(tmp_path / "x.png", np.zeros((4, 4)), bit_depth=12)
    with pytest.raises(ValueError, match=r"must be a non-empty 2-D \(H, W\) array, got shape \(2, 4, 4\)"):
        write_png(tmp_path / "x.png", np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"x\.jpg: medcf does not write JPEG \(lossy\); write \.png instead"):
        write_image(tmp_path / "x.jpg", np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"x\.dcm: DICOM output needs its geometry from a reference image"):
        write_image(tmp_path / "x.dcm", np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"x\.nii\.gz: NIFTI output needs its geometry from a reference image"):
        write_image(tmp_path / "x.nii.gz", np.zeros((4, 4)))


def test_write_image_checks_like_shape_and_format(tmp_path: Path, ramp8: np.ndarray) -> None:
    like = read_image(_save(tmp_path / "like.png", Image.fromarray(ramp8)))
    with pytest.raises(ValueError, match=r"out\.png: pixels are \(5, 5\) but like image .*like\.png is \(12, 20\)"):
        write_image(tmp_path / "out.png", np.zeros((5, 5)), like=like)
    with pytest.raises(ValueError, match=r"out\.dcm: like= must be a dicom image read by medcf, got a png image"):
        write_image(tmp_path / "out.dcm", like.pixels, like=like)


def test_missing_empty_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.png: no such file"):
        read_image(tmp_path / "nowhere.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png: empty file \(0 bytes\); re-export or re-download it"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "scan.tif").write_bytes(b"II*\x00" + bytes(200))
    with pytest.raises(ValueError, match=r"scan\.tif: unsupported file type '\.tif'; medcf reads \.png, \.jpg"):
        read_image(tmp_path / "scan.tif")
    assert IMAGE_SUFFIXES == (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".nii", ".nii.gz")


def test_corrupt_and_truncated_raster_files(tmp_path: Path, ramp8: np.ndarray) -> None:
    (tmp_path / "text.png").write_text("this is not an image")
    with pytest.raises(ValueError, match=r"text\.png: not a readable PNG or JPEG"):
        read_image(tmp_path / "text.png")
    for name in ("cut.png", "cut.jpg"):
        noise = np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)
        whole = _save(tmp_path / f"whole{Path(name).suffix}", Image.fromarray(noise))
        (tmp_path / name).write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}: truncated or corrupt (PNG|JPEG)"):
            read_image(tmp_path / name)


def test_oversize_images_are_refused_from_the_header(tmp_path: Path) -> None:
    samples = np.zeros((1, 1), np.uint8)
    (tmp_path / "wide.png").write_bytes(_png_bytes(samples, 8, 0, size=(20000, 10)))
    with pytest.raises(ValueError, match=r"wide\.png: image of 20000 x 10 pixels is over medcf's limit"):
        read_image(tmp_path / "wide.png")
    (tmp_path / "bomb.png").write_bytes(_png_bytes(samples, 8, 0, size=(15000, 15000)))
    with pytest.raises(ValueError, match=r"bomb\.png: image of more pixels than Pillow's decompression-bomb"):
        read_image(tmp_path / "bomb.png")


def test_index_slices_and_arguments_are_checked(tmp_path: Path, ramp8: np.ndarray) -> None:
    path = _save(tmp_path / "grey.png", Image.fromarray(ramp8))
    assert len(read_images(path, slices=[0])) == 1
    with pytest.raises(ValueError, match=r"slices=0 must be a list or range of indices; use read_image\(index"):
        read_images(path, slices=0)
    with pytest.raises(ValueError, match=r"grey\.png: image \[1\] out of range; the file holds 1 image \(0\.\.0\)"):
        read_image(path, index=1)
    with pytest.raises(ValueError, match=r"volume= applies to 4-D NIfTI files only"):
        read_image(path, volume=0)
    with pytest.raises(ValueError, match=r"axis 'transverse' unknown; use one of sagittal, coronal, axial"):
        read_image(path, axis="transverse")
    with pytest.raises(ValueError, match=r"window=\(10, 0\) invalid; pass window=\(center, width\) with width > 0"):
        read_image(path, window=(10, 0))
