"""Fuzzing the readers (hypothesis): valid PNG, JPEG, DICOM and NIfTI files, truncated or with bytes
overwritten or inserted, either read as a proper image or fail with medcf's error naming the file first.
Any other exception type (IndexError, struct.error, ...) would reach the CLI as an "unexpected" error."""

from __future__ import annotations

import gzip
import io
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_file

from medcf.data import read_image


def _png(mode: str) -> bytes:
    pixels = np.add.outer(np.arange(24), np.arange(20)) * (2000 if mode == "I;16" else 9)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint16 if mode == "I;16" else np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.add.outer(np.arange(24), np.arange(20)) * 9).astype(np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _nifti() -> bytes:
    image = nib.Nifti1Image(np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4), np.diag([0.9, 0.9, 2.0, 1.0]))
    return image.to_bytes()


SEEDS = {  # suffix → a valid file's bytes
    ".png": _png("L"),
    ".16.png": _png("I;16"),
    ".jpg": _jpeg(),
    ".dcm": Path(get_testdata_file("CT_small.dcm")).read_bytes(),
    ".nii": _nifti(),
    ".nii.gz": gzip.compress(_nifti(), mtime=0),
}


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed file, truncated, overwritten at a few places, or with bytes inserted."""
    suffix = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[suffix])
    damage = draw(st.sampled_from(["truncate", "overwrite", "insert"]))
    if damage == "truncate":
        return suffix, bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if damage == "overwrite":
            data[at : at + len(chunk)] = chunk
        else:
            data[at:at] = chunk
    return suffix, bytes(data)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_files_read_cleanly_or_fail_with_one_line_naming_the_file(case: tuple[str, bytes]) -> None:
    suffix, data = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"scan{suffix.removeprefix('.16')}"
        path.write_bytes(data)
        try:
            image = read_image(path, index=0)
        except (ValueError, OSError) as error:  # the CLI prints these as one line (whitespace collapsed)
            assert str(error).startswith(str(path)), error
            return
    assert image.pixels.ndim == 2 and np.isfinite(image.pixels).all()
    assert image.pixels.min() >= 0 and image.pixels.max() <= 1


@pytest.mark.parametrize("suffix", sorted(SEEDS))
def test_the_undamaged_seeds_read(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"scan{suffix.removeprefix('.16')}"
    path.write_bytes(SEEDS[suffix])
    assert read_image(path, index=0).pixels.size > 1  # so that damage, not a bad seed, is what the fuzzer explores
