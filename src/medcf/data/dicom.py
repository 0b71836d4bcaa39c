"""DICOM: pydicom reading through the Modality LUT and VOI into medcf's convention (writing: dicom_writer).

Reading, per frame (PS3.3 C.11; enhanced multi-frame objects take these attributes from their shared and
per-frame functional groups, C.7.6.16):
- `values` = Modality LUT output (pydicom `apply_modality_lut`: RescaleSlope/Intercept, HU for CT, or
  a Modality LUT Sequence). Colour (RGB, YBR, PALETTE COLOR) becomes BT.601 luma of the RGB code values.
- `pixels` = the VOI transform of `values`, in this order of precedence: an explicit `window=(center, width)`
  (LINEAR_EXACT); the file's VOI LUT Sequence (first item, pydicom `apply_voi`, output / (2**bits − 1));
  the file's WindowCenter/WindowWidth (first value when several, with its VOILUTFunction LINEAR,
  LINEAR_EXACT or SIGMOID); else a robust 0.5–99.5 % percentile window over every frame of the file, so
  frames share one scale. Colour images without `window` use luma / (2**BitsStored − 1).
- MONOCHROME1 is inverted afterwards (1 = bright). Presentation LUT Shape is not applied: DX objects pair
  INVERSE with MONOCHROME1 to state that same inversion.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, get_decoder

from medcf.data.image import MedicalImage, Provenance
from medcf.data.intensity import percentile_window, window_level
from medcf.data.raster import COLOUR_SPREAD, LUMA_BT601, Pick, check_size

PIXEL_DATA = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Frame-level attributes: top level in classic objects, functional-group macros in enhanced ones.
FRAME_KEYWORDS = (
    "RescaleSlope", "RescaleIntercept", "ModalityLUTSequence", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "VOILUTSequence", "PixelSpacing", "ImagerPixelSpacing", "ImageOrientationPatient",
    "ImagePositionPatient", "SliceThickness",
)  # fmt: skip
FRAME_MACROS = (
    "PixelValueTransformationSequence", "FrameVOILUTSequence", "PixelMeasuresSequence",
    "PlaneOrientationSequence", "PlanePositionSequence",
)  # fmt: skip


def read_dicom(path: Path, *, window: tuple[float, float] | None, pick: Pick) -> list[MedicalImage]:
    """One MedicalImage per frame (intensity rules in the module docstring); `header` is the Dataset."""
    dataset = _open(path)
    stack, colour_max = _decode(path, dataset)
    try:
        return _frames(path, dataset, stack, colour_max, window=window, pick=pick)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, ArithmeticError) as error:
        if str(error).startswith(str(path)):  # medcf's own message already
            raise
        raise ValueError(
            f"{path}: a header value medcf cannot interpret ({type(error).__name__}: {error}); fix the attribute "
            "or re-export the file"
        ) from None


def _frames(
    path: Path,
    dataset: Dataset,
    stack: np.ndarray,
    colour_max: float | None,
    *,
    window: tuple[float, float] | None,
    pick: Pick,
) -> list[MedicalImage]:
    """The decoded frames through the Modality LUT and VOI, with their provenance."""
    indices = pick(len(stack), "frames")
    attributes = [frame_attributes(dataset, index) for index in range(len(stack))]
    if colour_max is None:
        values = np.stack([apply_modality_lut(frame, attributes[i]) for i, frame in enumerate(stack)])
    else:
        values = stack @ LUMA_BT601
    values = values.astype(np.float32)
    shared_window = cache(lambda: percentile_window(values))  # over every frame, computed only if needed
    inverted = dataset.get("PhotometricInterpretation") == "MONOCHROME1"
    images = []
    for index in indices:
        if colour_max is not None and window is None:
            pixels = values[index] / np.float32(colour_max)
        else:
            pixels = _voi(path, values[index], attributes[index], window or shared_window)
        provenance = Provenance(
            source=path,
            format="dicom",
            slice_index=index if len(stack) > 1 else None,
            spacing=_spacing(attributes[index]),
            modality=str(dataset.get("Modality") or "") or None,
            colour=colour_max is not None and _is_colour(stack[index], colour_max),
        )
        pixels = 1.0 - pixels if inverted else pixels
        images.append(MedicalImage(pixels.astype(np.float32), values[index], provenance, header=dataset))
    return images


def _is_colour(rgb: np.ndarray, code_max: float) -> bool:
    """Channels that differ like a photo's, by PNG/JPEG's rule (data/raster.py) on the 8-bit scale: an RGB or YBR
    DICOM of a grey scan stays usable, a colour one is flagged for model inputs to refuse."""
    spread = (rgb.max(axis=-1).astype(np.float64) - rgb.min(axis=-1)).mean() * 255.0 / code_max if rgb.size else 0.0
    return bool(spread > COLOUR_SPREAD)


def frame_attributes(dataset: Dataset, index: int) -> Dataset:
    """Attributes of frame `index` (FRAME_KEYWORDS): top level, then shared, then per-frame groups."""
    flat = Dataset()
    flat.file_meta = getattr(dataset, "file_meta", FileMetaDataset())  # VOI LUT data endianness
    for keyword in FRAME_KEYWORDS:
        if keyword in dataset:
            flat.add(dataset[keyword])
    shared = dataset.get("SharedFunctionalGroupsSequence") or []
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence") or []
    for group in [*shared[:1], *per_frame[index : index + 1]]:
        for macro in FRAME_MACROS:
            for element in (group.get(macro) or [Dataset()])[0]:
                flat.add(element)
    return flat


def _open(path: Path) -> Dataset:
    """dcmread with one-line errors; checks pixel data and size before anything is decoded."""
    try:
        dataset = pydicom.dcmread(path)
        _parse_elements(dataset)
    except InvalidDicomError:
        raise ValueError(f"{path}: not a DICOM file (no 'DICM' file meta header); re-export it as DICOM") from None
    except Exception as error:  # damaged headers raise struct.error, BytesLengthException, TypeError, ...
        raise ValueError(f"{path}: corrupt DICOM header ({type(error).__name__}: {error}); re-export it") from None
    if "TransferSyntaxUID" not in getattr(dataset, "file_meta", {}):
        raise ValueError(f"{path}: DICOM file meta lacks a Transfer Syntax UID (truncated?); re-export the file")
    if not any(keyword in dataset for keyword in PIXEL_DATA):
        raise ValueError(
            f"{path}: DICOM has no pixel data (a non-image object, or a file truncated before its pixels); "
            "pass an image DICOM"
        )
    if not (dataset.get("Rows") and dataset.get("Columns")):
        raise ValueError(f"{path}: DICOM lacks Rows/Columns; re-export the file")
    check_size(path, int(dataset.Rows), int(dataset.Columns))
    return dataset


def _parse_elements(dataset: Dataset) -> None:
    """pydicom converts raw element values lazily, on first access; walking every element (sequences too)
    converts them now, so a damaged header fails here, inside the error handling, not wherever a value is
    first read. Pixel data stays raw bytes until decoded."""
    for _ in dataset.iterall():
        pass


def _decode(path: Path, dataset: Dataset) -> tuple[np.ndarray, float | None]:
    """Frames (F, H, W) grey, or (F, H, W, 3) RGB with the code value of full brightness."""
    syntax = dataset.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ValueError(
            f"{path}: pydicom has no decoder for transfer syntax '{syntax.name}'; convert the file to an "
            "uncompressed transfer syntax (e.g. gdcmconv --raw)"
        ) from None
    if not decoder.is_available:
        raise ValueError(
            f"{path}: transfer syntax '{syntax.name}' needs a decoder plugin "
            f"({'; '.join(decoder.missing_dependencies)}); install one of them"
        )
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    try:
        array = dataset.pixel_array  # pydicom converts YBR to RGB
        if photometric == "PALETTE COLOR":
            array = apply_color_lut(array, dataset)
    except Exception as error:  # pydicom's decoders raise many types on damaged data; report them as one
        raise ValueError(f"{path}: cannot decode the pixel data ({error}); the file may be truncated") from None
    frames = int(dataset.get("NumberOfFrames") or 1)
    if photometric == "PALETTE COLOR":
        bits = int(dataset.RedPaletteColorLookupTableDescriptor[2])
        return array.reshape(frames, dataset.Rows, dataset.Columns, 3), 2.0**bits - 1
    if int(dataset.get("SamplesPerPixel", 1)) == 3:
        return array.reshape(frames, dataset.Rows, dataset.Columns, 3), 2.0 ** int(dataset.BitsStored) - 1
    return array.reshape(frames, dataset.Rows, dataset.Columns), None


def _voi(
    path: Path,
    values: np.ndarray,
    attributes: Dataset,
    window: tuple[float, float] | Callable[[], tuple[float, float]],
) -> np.ndarray:
    """Display pixels of one grey frame: explicit window, else VOI LUT, else file window, else percentile."""
    if isinstance(window, tuple):
        return window_level(values, *window, function="LINEAR_EXACT")
    if attributes.get("VOILUTSequence"):
        bits = int(attributes.VOILUTSequence[0].LUTDescriptor[2])
        lut_input = np.rint(values).astype(np.int64)  # the LUT is indexed by integer modality values
        full_scale = 2.0**bits - 1  # VOI LUT output range is 0..2**bits − 1 (PS3.3 C.11.2.1.1)
        return apply_voi(lut_input, attributes, 0) / full_scale
    if attributes.get("WindowCenter") is not None and attributes.get("WindowWidth") is not None:
        center, width = _first(attributes.WindowCenter), _first(attributes.WindowWidth)
        function = str(attributes.get("VOILUTFunction") or "LINEAR")
        try:
            return window_level(values, center, width, function=function)
        except ValueError as error:
            raise ValueError(f"{path}: the file's window is unusable ({error}); pass window=(center, width)") from None
    return window_level(values, *window(), function="LINEAR_EXACT")


def _first(value: object) -> float:
    """First value of a possibly multi-valued DS (the default view, PS3.3 C.11.2.1.2)."""
    return float(value[0]) if isinstance(value, MultiValue) else float(value)


def _spacing(attributes: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, else ImagerPixelSpacing; zero or absent → None."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = attributes.get(keyword)
        if spacing is not None and len(spacing) == 2 and min(float(value) for value in spacing) > 0:
            return float(spacing[0]), float(spacing[1])
    return None


_AGE_UNITS = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}  # DICOM AS value representation


def clinical_fields(dataset: Dataset | None) -> dict[str, object]:
    """Canonical row fields a DICOM header states: age (PatientAge "063Y"), sex (PatientSex) and view
    (ViewPosition); absent or malformed values are left out rather than guessed."""
    if dataset is None:
        return {}
    fields: dict[str, object] = {}
    age = str(dataset.get("PatientAge", "") or "").strip().upper()
    if len(age) == 4 and age[:3].isdigit() and age[3] in _AGE_UNITS:
        fields["age"] = round(int(age[:3]) * _AGE_UNITS[age[3]], 1)
    if (sex := str(dataset.get("PatientSex", "") or "").strip().upper()) in ("M", "F"):
        fields["sex"] = sex
    if (view := str(dataset.get("ViewPosition", "") or "").strip().upper()) in ("PA", "AP", "LL", "RL", "LATERAL"):
        fields["view"] = "lateral" if view in ("LL", "RL", "LATERAL") else view
    return fields
