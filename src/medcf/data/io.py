"""Read and write 2-D medical images by file suffix: PNG / JPEG, DICOM, NIfTI.

Every reader returns `MedicalImage`s in medcf's intensity convention (see medcf.data.image): `pixels` in
[0, 1] for display, `values` in modality units. The per-format rules live in medcf.data.raster (PNG/JPEG),
medcf.data.dicom and medcf.data.nifti. The suffix decides the format (case-insensitive); a file with no
or an unknown suffix is read as DICOM when it carries the 'DICM' marker at byte 128 (DICOM PS3.10 7.1),
which covers files named by their UID (".../1.2.840.113619.2.55.3"). Analyze 7.5 / NIfTI-pair volumes (.img with
its .hdr, or the .hdr), as OASIS ships them, are read like NIfTI but never written (write .nii or .nii.gz).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from numpy.typing import ArrayLike

from medcf.data.dicom import read_dicom
from medcf.data.dicom_writer import write_dicom
from medcf.data.image import MedicalImage
from medcf.data.nifti import AXES, read_nifti, write_nifti
from medcf.data.raster import Pick, display_pixels, read_raster, write_png

__all__ = ["IMAGE_SUFFIXES", "read_image", "read_images", "write_image", "write_png"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".nii", ".nii.gz")
FORMATS = {".png": "raster", ".jpg": "raster", ".jpeg": "raster", ".dcm": "dicom", ".dicom": "dicom"}
FORMATS |= {".nii": "nifti", ".nii.gz": "nifti"}
ANALYZE_SUFFIXES = (".img", ".hdr")  # read through nibabel as NIfTI; not in IMAGE_SUFFIXES since never written
FORMATS |= dict.fromkeys(ANALYZE_SUFFIXES, "nifti")


def read_images(
    path: str | Path,
    *,
    axis: str = "axial",
    slices: Sequence[int] | None = None,
    window: tuple[float, float] | None = None,
    volume: int | None = None,
) -> list[MedicalImage]:
    """Every 2-D image in the file, or those at `slices`: a PNG/JPEG → 1, a DICOM → one per frame, a NIfTI →
    one per slice along `axis` ("axial" | "coronal" | "sagittal", indices along RAS+ as in medcf.data.nifti).

    `window` = (center, width) in `values` units overrides the file's display window (LINEAR_EXACT, DICOM
    PS3.3 C.11.2.1.3.2). `volume` picks the volume of a 4-D NIfTI (required when it has several).
    """
    if isinstance(slices, int):
        raise ValueError(f"{path}: slices={slices} must be a list or range of indices; use read_image(index=...)")
    return _read(path, partial(_pick_slices, path, slices), axis=axis, window=window, volume=volume)


def read_image(
    path: str | Path,
    *,
    index: int | None = None,
    axis: str = "axial",
    window: tuple[float, float] | None = None,
    volume: int | None = None,
) -> MedicalImage:
    """Exactly one 2-D image: the file's only one, or frame / slice `index` (arguments as read_images)."""
    return _read(path, partial(_pick_one, path, index), axis=axis, window=window, volume=volume)[0]


def write_image(path: str | Path, pixels: ArrayLike, *, like: MedicalImage | None = None) -> Path:
    """Write display pixels (H, W) in [0, 1] (clipped; NaN/Inf refused), atomically, by suffix.

    .png: 16-bit grey (write_png). .dcm/.dicom: a derived Secondary Capture with the geometry of `like`
    (medcf.data.dicom_writer.write_dicom). .nii/.nii.gz: a one-slice volume at the world position of the slice
    `like` (medcf.data.nifti.write_nifti). DICOM and NIfTI need `like`: their geometry comes from it.
    """
    path = Path(path)
    suffix = _suffix(path)
    array = display_pixels(path, pixels)
    if like is not None and array.shape != like.shape:
        raise ValueError(
            f"{path}: pixels are {array.shape} but like image {like.provenance.source} is {like.shape}; "
            "resize the pixels to the reference size first"
        )
    if suffix in ANALYZE_SUFFIXES:
        raise ValueError(f"{path}: medcf reads Analyze .img/.hdr but does not write it; write .nii or .nii.gz")
    if suffix == ".png":
        return write_png(path, array, bit_depth=16)
    if FORMATS.get(suffix) == "dicom":
        return write_dicom(path, array, _reference(path, like, "dicom"))
    if FORMATS.get(suffix) == "nifti":
        return write_nifti(path, array, _reference(path, like, "nifti"))
    if suffix in (".jpg", ".jpeg"):
        raise ValueError(f"{path}: medcf does not write JPEG (lossy); write .png instead")
    raise ValueError(f"{path}: unsupported output suffix '{suffix}'; write .png, .dcm, .nii or .nii.gz")


def _read(
    path: str | Path, pick: Pick, *, axis: str, window: tuple[float, float] | None, volume: int | None
) -> list[MedicalImage]:
    """Check the file and the arguments, then hand over to the format's reader."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a folder, not an image file; pass one PNG, DICOM or NIfTI file in it")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; check the path")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes); re-export or re-download it")
    if axis not in AXES:
        raise ValueError(f"axis '{axis}' unknown; use one of {', '.join(AXES)}")
    if window is not None:
        if len(window) != 2 or not float(window[1]) > 0:
            raise ValueError(f"window={window} invalid; pass window=(center, width) with width > 0")
        window = (float(window[0]), float(window[1]))
    kind = _format(path)
    if volume is not None and kind != "nifti":
        raise ValueError(f"{path}: volume= applies to 4-D NIfTI files only; drop it")
    if kind == "dicom":
        return read_dicom(path, window=window, pick=pick)
    if kind == "nifti":
        return read_nifti(path, axis=axis, window=window, volume=volume, pick=pick)
    return read_raster(path, window=window, pick=pick)


def _suffix(path: Path) -> str:
    """Lower-case suffix, ".nii.gz" counted as one."""
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix.lower()


def _format(path: Path) -> str:
    """ "raster" | "dicom" | "nifti" from the suffix, else from the DICOM marker at byte 128."""
    suffix = _suffix(path)
    if suffix in FORMATS:
        return FORMATS[suffix]
    with open(path, "rb") as file:
        if file.read(132)[128:] == b"DICM":
            return "dicom"
    raise ValueError(
        f"{path}: unsupported file type '{suffix}'; medcf reads {', '.join(IMAGE_SUFFIXES)}, Analyze .img/.hdr and "
        "DICOM files with any suffix that carry the 'DICM' marker — rename or convert the file"
    )


def _pick_slices(path: str | Path, slices: Sequence[int] | None, count: int, noun: str) -> list[int]:
    """All indices, or the requested ones after a range check."""
    if slices is None:
        return list(range(count))
    indices = [int(index) for index in slices]
    if outside := [index for index in indices if not 0 <= index < count]:
        raise ValueError(f"{path}: {noun} {outside} out of range; the file holds {count} {noun} (0..{count - 1})")
    return indices


def _pick_one(path: str | Path, index: int | None, count: int, noun: str) -> list[int]:
    """The requested index, or the only image; a file holding several needs `index`."""
    if index is None and count != 1:
        raise ValueError(f"{path} holds {count} {noun}; pass index=0..{count - 1}")
    return _pick_slices(path, [0 if index is None else index], count, noun)


def _reference(path: Path, like: MedicalImage | None, kind: str) -> MedicalImage:
    """`like` checked as the source of a DICOM / NIfTI output's geometry."""
    if like is None:
        raise ValueError(
            f"{path}: {kind.upper()} output needs its geometry from a reference image; pass like=<the "
            f"{kind} MedicalImage these pixels derive from>, or write .png"
        )
    if like.provenance.format != kind or like.header is None:
        raise ValueError(
            f"{path}: like= must be a {kind} image read by medcf, got a {like.provenance.format} image from "
            f"{like.provenance.source}; write .png or pass a {kind} reference"
        )
    return like
