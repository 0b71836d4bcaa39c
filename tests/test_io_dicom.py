"""DICOM through medcf.data.io on pydicom's real test files: Modality LUT, VOI, MONOCHROME1, writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_voi, apply_windowing
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medcf.data.intensity import window_level
from medcf.data.io import read_image, read_images, write_image

LUMA = np.array([0.299, 0.587, 0.114])
IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyDate",
    "InstitutionAddress",
    "OperatorsName",
)


def _file(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"{name} missing from pydicom's test data"
    return Path(path)


def _dicom(path: Path, stored: np.ndarray, **attributes: object) -> Path:
    """A minimal 16-bit grey DICOM with identifying attributes, for the cases pydicom ships no file for."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID, dataset.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", generate_uid()
    dataset.PatientName, dataset.PatientID, dataset.InstitutionName = "Doe^Jane", "MRN-0042", "St Elsewhere"
    dataset.Modality, dataset.PhotometricInterpretation, dataset.SamplesPerPixel = "DX", "MONOCHROME2", 1
    dataset.Rows, dataset.Columns = stored.shape
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.PixelData = stored.astype("<u2").tobytes()
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def radiograph() -> object:
    return read_image(_file("RG1_UNCR.dcm"))


def test_chest_radiograph_monochrome1_follows_display_convention(radiograph) -> None:
    pixels = radiograph.pixels
    height, width = pixels.shape
    assert (height, width) == (1955, 1841) and radiograph.header.PhotometricInterpretation == "MONOCHROME1"
    rows = slice(int(0.30 * height), int(0.60 * height))
    lungs = np.r_[pixels[rows, int(0.15 * width) : int(0.35 * width)].ravel(),
                  pixels[rows, int(0.65 * width) : int(0.85 * width)].ravel()]  # fmt: skip
    mediastinum = pixels[rows, int(0.45 * width) : int(0.55 * width)]
    assert lungs.mean() < mediastinum.mean() - 0.15  # lungs dark, spine / mediastinum bright
    # MONOCHROME1: a larger stored value is darker; the file's window 15000/30000 (LINEAR) is applied first
    expected = 1 - window_level(radiograph.header.pixel_array.astype(float), 15000, 30000)
    np.testing.assert_allclose(pixels, expected, atol=1e-6)
    assert radiograph.provenance.spacing is None  # PixelSpacing is "0\0" and there is no ImagerPixelSpacing
    assert radiograph.provenance.modality == "CR" and isinstance(radiograph.header, Dataset)


def test_ct_values_are_hounsfield_units() -> None:
    image = read_image(_file("CT_small.dcm"))
    stored = image.header.pixel_array.astype(np.float32)
    np.testing.assert_array_equal(image.values, stored - 1024)  # RescaleIntercept -1024, slope 1
    values = image.values
    # CT_small is a crop around a thoracic vertebra: its corners are lung, not air outside the body
    for corner in (values[:16, :16], values[:16, -16:]):
        assert -900 < np.median(corner) < -750
    assert 0 < np.median(values[84:100, 16:40]) < 100  # paraspinal muscle (soft tissue)
    assert np.median(values[16:40, 50:72]) > 150  # vertebral body (bone)
    assert image.provenance.modality == "CT" and image.provenance.spacing == (0.661468, 0.661468)
    low, high = np.percentile(values, [0.5, 99.5])  # no window in the file → robust percentile window
    np.testing.assert_allclose(image.pixels, np.clip((values - low) / (high - low), 0, 1), atol=1e-6)


def test_file_window_and_explicit_override() -> None:
    path = _file("MR_small.dcm")
    image = read_image(path)
    dataset = pydicom.dcmread(path)
    bits, signed = dataset.BitsStored, dataset.PixelRepresentation == 1
    low = -(2 ** (bits - 1)) if signed else 0  # pydicom's output range is the stored value range
    expected = (apply_windowing(dataset.pixel_array, dataset) - low) / (2**bits - 1)  # 600/1600 LINEAR
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    override = read_image(path, window=(1000, 200))
    np.testing.assert_allclose(override.pixels, np.clip((image.values - 1000) / 200 + 0.5, 0, 1), atol=1e-6)


def test_first_of_several_windows_is_used() -> None:
    image = read_image(_file("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    assert list(image.header.WindowCenter) == [450, 200]
    np.testing.assert_allclose(image.pixels, window_level(image.values, 450, 790), atol=1e-6)


def test_voi_lut_sequence_is_applied() -> None:
    image = read_image(_file("vlut_04.dcm"))
    dataset = image.header
    bits = dataset.VOILUTSequence[0].LUTDescriptor[2]
    expected = apply_voi(dataset.pixel_array, dataset) / (2**bits - 1)
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)


def test_sigmoid_voi_function(tmp_path: Path) -> None:
    stored = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)
    path = _dicom(tmp_path / "sigmoid.dcm", stored, WindowCenter=2000, WindowWidth=800, VOILUTFunction="SIGMOID")
    expected = 1 / (1 + np.exp(-4 * (stored - 2000.0) / 800))
    np.testing.assert_allclose(read_image(path).pixels, expected, atol=1e-6)


def test_enhanced_ct_takes_rescale_window_and_spacing_from_functional_groups() -> None:
    images = read_images(_file("eCT_Supplemental.dcm"))
    assert [image.provenance.slice_index for image in images] == [0, 1]
    image = images[0]
    np.testing.assert_array_equal(image.values, image.header.pixel_array[0].astype(np.float32) - 1024)
    np.testing.assert_allclose(image.pixels, window_level(image.values, 49, 102), atol=1e-6)
    assert image.provenance.spacing == (0.388672, 0.388672) and image.provenance.modality == "CT"


def test_multi_frame_shares_one_scale_and_compressed_twins_decode_equal() -> None:
    frames = read_images(_file("emri_small.dcm"))
    assert len(frames) == 10 and [f.provenance.slice_index for f in frames] == list(range(10))
    values = np.stack([frame.values for frame in frames])
    low, high = np.percentile(values, [0.5, 99.5])  # one window over every frame
    for frame in frames:
        np.testing.assert_allclose(frame.pixels, np.clip((frame.values - low) / (high - low), 0, 1), atol=1e-6)
    for twin in ("emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm"):
        np.testing.assert_array_equal(np.stack([f.values for f in read_images(_file(twin))]), values)
    single = read_image(_file("MR_small.dcm")).values
    for twin in ("MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"):
        np.testing.assert_array_equal(read_image(_file(twin)).values, single)
    assert read_image(_file("emri_small.dcm"), index=3).provenance.slice_index == 3
    assert read_image(_file("JPEG2000.dcm")).shape == (1024, 256)


def test_colour_dicom_becomes_luma() -> None:
    rgb = read_image(_file("SC_rgb.dcm"))
    expected = rgb.header.pixel_array @ LUMA
    np.testing.assert_allclose(rgb.values, expected, atol=1e-3)
    np.testing.assert_allclose(rgb.pixels, expected / 255, atol=1e-6)
    ybr = read_image(_file("SC_ybr_full_uncompressed.dcm"))  # the same picture stored as YBR_FULL
    assert np.abs(ybr.values - rgb.values).max() < 3
    lossless = read_image(_file("US1_J2KR.dcm"))  # JPEG 2000 lossless YBR_RCT vs its uncompressed twin
    np.testing.assert_allclose(lossless.values, read_image(_file("US1_UNCR.dcm")).values, atol=1e-3)
    assert rgb.provenance.colour and ybr.provenance.colour  # a colour picture: model inputs refuse it, as for PNG
    assert not read_image(_file("CT_small.dcm")).provenance.colour


def test_a_colour_dicom_is_refused_as_a_model_input_like_a_colour_png() -> None:
    from medcf.editing.files import load_model_input

    with pytest.raises(ValueError, match="SC_ybr_full_uncompressed.dcm: a colour image, not a greyscale scan"):
        load_model_input(_file("SC_ybr_full_uncompressed.dcm"), 64)


def test_file_without_suffix_is_sniffed_as_dicom(tmp_path: Path) -> None:
    path = tmp_path / "1.2.840.113619.2.55.3"  # named by its UID: suffix ".3"
    path.write_bytes(_file("CT_small.dcm").read_bytes())
    assert read_image(path).provenance.modality == "CT"
    (tmp_path / "README").write_text("no image here" * 20)
    with pytest.raises(ValueError, match=r"README: unsupported file type ''"):
        read_image(tmp_path / "README")


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_bad_dicom_files(tmp_path: Path) -> None:
    (tmp_path / "text.dcm").write_text("not dicom at all")
    with pytest.raises(ValueError, match=r"text\.dcm: not a DICOM file \(no 'DICM' file meta header\)"):
        read_image(tmp_path / "text.dcm")
    dataset = pydicom.dcmread(_file("CT_small.dcm"))
    del dataset.PixelData
    dataset.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(ValueError, match=r"nopixels\.dcm: DICOM has no pixel data"):
        read_image(tmp_path / "nopixels.dcm")
    whole = _file("MR_small.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(whole[: len(whole) - 4000])
    with pytest.raises(ValueError, match=r"cut\.dcm: cannot decode the pixel data \(.*\); the file may be truncated"):
        read_image(tmp_path / "cut.dcm")
    with pytest.raises(ValueError, match=r"too_short\.dcm: DICOM has no pixel data .*truncated before its pixels"):
        read_image(_file("emri_small_jpeg_2k_lossless_too_short.dcm"))


def test_oversize_unknown_codec_and_unusable_window(tmp_path: Path) -> None:
    path = _dicom(tmp_path / "huge.dcm", np.zeros((2, 2), np.uint16), Rows=20000, Columns=10)
    with pytest.raises(ValueError, match=r"huge\.dcm: image of 10 x 20000 pixels is over medcf's limit"):
        read_image(path)
    path = _dicom(tmp_path / "mpeg.dcm", np.zeros((2, 2), np.uint16))
    dataset = pydicom.dcmread(path)
    dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no pydicom decoder exists
    dataset.PixelData = encapsulate([bytes(8)])
    dataset.save_as(path)
    with pytest.raises(ValueError, match=r"mpeg\.dcm: pydicom has no decoder for transfer syntax 'MPEG2"):
        read_image(path)
    path = _dicom(tmp_path / "narrow.dcm", np.zeros((2, 2), np.uint16), WindowCenter=5, WindowWidth=0.5)
    with pytest.raises(
        ValueError, match=r"narrow\.dcm: the file's window is unusable .*pass window=\(center, width\)"
    ):
        read_image(path)
    with pytest.raises(ValueError, match=r"emri_small\.dcm holds 10 frames; pass index=0\.\.9"):
        read_image(_file("emri_small.dcm"))


def test_write_ct_round_trips_pixels_and_hounsfield_units(tmp_path: Path) -> None:
    source = read_image(_file("CT_small.dcm"), window=(40, 400))
    back = read_image(write_image(tmp_path / "ct.dcm", source.pixels, like=source))
    assert np.abs(back.pixels - source.pixels).max() <= 0.5 / 65535 + 1e-6
    inside = (source.values > -160) & (source.values < 240)  # HU round-trip holds within the window
    assert inside.sum() > 1000
    assert np.abs(back.values - source.values)[inside].max() <= 400 / 65535 + 1e-3
    written = back.header
    assert written.Modality == "CT" and written.RescaleType == "HU"
    assert written.BitsStored == 16 and written.PhotometricInterpretation == "MONOCHROME2"
    for keyword in ("PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient"):
        assert list(written[keyword].value) == list(source.header[keyword].value)


def test_written_dicom_is_derived_and_anonymous(tmp_path: Path) -> None:
    path = _dicom(tmp_path / "src.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8) * 100,
                  OtherPatientIDs="OLD-7", ReferringPhysicianName="House^Greg", AccessionNumber="ACC99",
                  StudyDate="20240101", PatientBirthDate="19600101", StudyInstanceUID=generate_uid(),
                  SeriesInstanceUID=generate_uid(), ImagerPixelSpacing=[0.14, 0.14])  # fmt: skip
    source = read_image(path)
    written = pydicom.dcmread(write_image(tmp_path / "out.dcm", source.pixels, like=source))
    assert written.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    assert list(written.ImageType) == ["DERIVED", "SECONDARY"] and written.BurnedInAnnotation == "NO"
    assert written.DerivationDescription == "synthetic image generated by medcf"
    assert written.PatientName == "ANONYMOUS" and written.PatientID == "ANONYMOUS"
    for keyword in IDENTIFYING[2:]:
        assert not written.get(keyword), keyword
    text = " ".join(str(element.value) for element in written.iterall())
    for secret in ("Doe", "MRN-0042", "Elsewhere", "OLD-7", "House", "ACC99", "20240101", "19600101"):
        assert secret not in text
    original = source.header
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        assert written[keyword].value != original[keyword].value
    assert list(written.ImagerPixelSpacing) == [0.14, 0.14]
    assert read_image(tmp_path / "out.dcm").provenance.spacing == (0.14, 0.14)


def test_write_monochrome1_and_multi_frame_likes(tmp_path: Path) -> None:
    stored = np.arange(100, dtype=np.uint16).reshape(10, 10) * 300
    source = read_image(_dicom(tmp_path / "m1.dcm", stored, PhotometricInterpretation="MONOCHROME1"))
    assert source.pixels[0, 0] > source.pixels[-1, -1]  # inverted: high stored value is dark
    back = read_image(write_image(tmp_path / "m1_out.dcm", source.pixels, like=source))
    assert back.header.PhotometricInterpretation == "MONOCHROME2"
    assert np.abs(back.pixels - source.pixels).max() <= 0.5 / 65535 + 1e-6
    mirrored = back.values + source.values  # values mirrored about the window centre
    assert np.ptp(mirrored[(source.pixels > 0) & (source.pixels < 1)]) < 1.0
    frame = read_image(_file("emri_small.dcm"), index=3)
    back = read_image(write_image(tmp_path / "frame.dcm", frame.pixels, like=frame))
    assert np.abs(back.pixels - frame.pixels).max() <= 0.5 / 65535 + 1e-6


def test_write_dicom_refuses_a_different_size(tmp_path: Path) -> None:
    source = read_image(_file("CT_small.dcm"))
    with pytest.raises(
        ValueError, match=r"out\.dcm: pixels are \(64, 64\) but like image .*CT_small\.dcm is \(128, 128\)"
    ):
        write_image(tmp_path / "out.dcm", np.zeros((64, 64)), like=source)
    with pytest.raises(ValueError, match=r"out\.nii: like= must be a nifti image read by medcf, got a dicom image"):
        write_image(tmp_path / "out.nii", source.pixels, like=source)
