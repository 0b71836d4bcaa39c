"""NIfTI through medcf.data.io: RAS+ slicing, radiological display, volume-wide window, writing, errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medcf.data.io import read_image, read_images, write_image

SHAPE = (20, 24, 16)
# Voxel axes stored as Left, Posterior, Superior (a common scanner layout): i → x = 19 − 2i (right → left),
# j → y = 34.5 − 3j (anterior → posterior), k → z = 4k − 30 (inferior → superior).
AFFINE = np.array([[-2.0, 0, 0, 19], [0, -3.0, 0, 34.5], [0, 0, 4.0, -30], [0, 0, 0, 1]])


def _world(affine: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    return voxels @ affine[:3, :3].T + affine[:3, 3]


@pytest.fixture
def asymmetric(tmp_path: Path) -> Path:
    """Background 100 + a gentle ramp; a 1000 marker in the patient's left-anterior-superior octant."""
    grid = np.indices(SHAPE).reshape(3, -1).T.astype(float)
    x, y, z = _world(AFFINE, grid).T
    data = (100 + grid.sum(axis=1)).reshape(SHAPE)
    data[((x < -5) & (y > 5) & (z > 5)).reshape(SHAPE)] = 1000
    path = tmp_path / "asymmetric.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), path)
    return path


@pytest.fixture(scope="module")
def mni(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nilearn.datasets import load_mni152_template

    path = tmp_path_factory.mktemp("mni") / "mni152.nii.gz"
    load_mni152_template(resolution=1).to_filename(path)
    return path


def _marker_centre(pixels: np.ndarray) -> tuple[float, float]:
    rows, columns = np.nonzero(pixels > 0.99)
    return rows.mean() / pixels.shape[0], columns.mean() / pixels.shape[1]


@pytest.mark.parametrize(
    ("axis", "index", "count", "shape", "spacing", "top_half", "right_half"),
    [
        ("axial", 12, 16, (24, 20), (3.0, 2.0), True, True),  # z = 18: anterior at top, patient left on right
        ("coronal", 20, 24, (16, 20), (4.0, 2.0), True, True),  # y = 25.5: superior at top, left on right
        ("sagittal", 3, 20, (16, 24), (4.0, 3.0), True, False),  # x = −13: superior at top, anterior on left
    ],
)  # fmt: skip
def test_slices_are_displayed_in_radiological_convention(
    asymmetric: Path, axis: str, index: int, count: int, shape: tuple, spacing: tuple, top_half: bool,
    right_half: bool,
) -> None:  # fmt: skip
    images = read_images(asymmetric, axis=axis)
    assert len(images) == count and all(image.shape == shape for image in images)
    image = images[index]
    assert image.provenance.spacing == spacing and image.provenance.slice_index == index
    assert image.provenance.axis == axis and image.provenance.format == "nifti"
    row, column = _marker_centre(image.pixels)
    assert (row < 0.5) == top_half and (column > 0.5) == right_half
    assert image.pixels.flags["C_CONTIGUOUS"] and image.values.flags["C_CONTIGUOUS"]


def test_display_axes_follow_the_documented_world_directions(asymmetric: Path) -> None:
    image = read_image(asymmetric, index=12)
    canonical = image.header
    height, width = image.shape
    rows, columns = np.mgrid[0:height, 0:width]
    voxels = np.stack([width - 1 - columns, height - 1 - rows, np.full_like(rows, 12)], axis=-1)
    world = _world(canonical.affine, voxels.reshape(-1, 3).astype(float)).reshape(height, width, 3)
    assert (np.diff(world[..., 0], axis=1) < 0).all()  # rightwards on screen = towards the patient's left
    assert (np.diff(world[..., 1], axis=0) < 0).all()  # downwards on screen = towards posterior
    np.testing.assert_allclose(world[..., 2], 18.0)
    original = nib.load(asymmetric).get_fdata()
    inverse = np.linalg.inv(AFFINE)
    source_voxels = np.rint(_world(inverse, world.reshape(-1, 3))).astype(int)
    np.testing.assert_array_equal(image.values.ravel(), original[tuple(source_voxels.T)])


def test_window_is_shared_by_the_whole_volume(asymmetric: Path) -> None:
    volume = nib.load(asymmetric).get_fdata()
    low, high = np.percentile(volume, [0.5, 99.5])
    for image in read_images(asymmetric, slices=[0, 7, 15]):
        np.testing.assert_allclose(image.pixels, np.clip((image.values - low) / (high - low), 0, 1), atol=1e-6)
    explicit = read_image(asymmetric, index=3, window=(150, 100))
    np.testing.assert_allclose(explicit.pixels, np.clip((explicit.values - 150) / 100 + 0.5, 0, 1), atol=1e-6)


def test_header_display_range_and_units_are_honoured(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6), np.diag([500, 250, 100, 1]))
    image.header["cal_min"], image.header["cal_max"] = 10.0, 50.0
    image.header.set_xyzt_units("micron")
    nib.save(image, tmp_path / "cal.nii")
    slice_ = read_image(tmp_path / "cal.nii", index=2)
    np.testing.assert_allclose(slice_.pixels, np.clip((slice_.values - 10) / 40, 0, 1), atol=1e-6)
    assert slice_.provenance.spacing == pytest.approx((0.25, 0.5))  # microns → mm


def test_mni152_template(mni: Path) -> None:
    images = read_images(mni)
    assert len(images) == 189 and images[0].shape == (233, 197)
    assert images[0].provenance.spacing == (1.0, 1.0)
    middle = images[94].pixels
    brain, corners = (
        middle[80:150, 60:140].mean(),
        np.r_[middle[:20, :20].ravel(), middle[-20:, -20:].ravel()],
    )
    assert brain > 0.4 and corners.max() < 0.05
    with pytest.raises(ValueError, match=r"mni152\.nii\.gz holds 189 axial slices; pass index=0\.\.188"):
        read_image(mni)
    with pytest.raises(ValueError, match=r"axial slices \[189\] out of range; the file holds 189 axial slices"):
        read_images(mni, slices=range(187, 190))


def test_four_dimensional_volume_needs_an_index(tmp_path: Path) -> None:
    data = np.stack([np.full((4, 5, 6), 10.0 * v) + np.arange(6) for v in range(3)], axis=-1)
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), tmp_path / "fmri.nii.gz")
    with pytest.raises(ValueError, match=r"fmri\.nii\.gz: 4-D NIfTI with 3 volumes; pick one: volume=0\.\.2"):
        read_images(tmp_path / "fmri.nii.gz")
    second = read_image(tmp_path / "fmri.nii.gz", volume=1, index=4)
    np.testing.assert_array_equal(second.values, np.full((5, 4), 14.0))
    with pytest.raises(ValueError, match=r"volume=3 out of range; the file holds volumes 0\.\.2"):
        read_images(tmp_path / "fmri.nii.gz", volume=3)


def test_write_slice_back_at_its_world_position(asymmetric: Path, tmp_path: Path) -> None:
    for axis, index in (("axial", 12), ("sagittal", 3)):
        source = read_image(asymmetric, axis=axis, index=index)
        path = write_image(tmp_path / f"{axis}.nii.gz", source.pixels, like=source)
        back = read_image(path, axis=axis)
        assert back.provenance.slice_index == 0 and back.provenance.spacing == source.provenance.spacing
        assert np.abs(back.pixels - source.pixels).max() < 1e-5
        inside = (source.pixels > 0) & (source.pixels < 1)
        np.testing.assert_allclose(back.values[inside], source.values[inside], rtol=1e-5)
        written = nib.load(path)
        assert written.header["descrip"].tobytes().rstrip(b"\x00") == b"synthetic image generated by medcf"
        assert written.shape[("sagittal", "coronal", "axial").index(axis)] == 1
        original = nib.load(asymmetric)
        marker_in = np.argwhere(original.get_fdata() == 1000)
        marker_world = _world(AFFINE, marker_in.astype(float))
        plane = 2 if axis == "axial" else 0
        plane_value = _world(source.header.affine, np.array([[index, index, index]], float))[0, plane]
        expected = {tuple(p) for p in np.round(marker_world[np.isclose(marker_world[:, plane], plane_value)], 3)}
        found = _world(written.affine, np.argwhere(written.get_fdata() > 999).astype(float))
        assert expected and {tuple(p) for p in np.round(found, 3)} == expected


def test_bad_nifti_files(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32)
    data[3, 4, 5] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii")
    with pytest.raises(ValueError, match=r"nan\.nii: 1 NaN/Inf voxels; replace them"):
        read_images(tmp_path / "nan.nii")
    data[3, 4, 5] = 0
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "whole.nii.gz")
    whole = (tmp_path / "whole.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cut\.nii\.gz: truncated or corrupt NIfTI data"):
        read_images(tmp_path / "cut.nii.gz")
    (tmp_path / "text.nii").write_text("not a nifti file " * 40)
    with pytest.raises(ValueError, match=r"text\.nii: not a readable NIfTI"):
        read_images(tmp_path / "text.nii")
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.nii\.gz: empty file \(0 bytes\)"):
        read_images(tmp_path / "empty.nii.gz")


def test_oversize_volume_is_refused_from_the_header(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), tmp_path / "huge.nii")
    raw = bytearray((tmp_path / "huge.nii").read_bytes())
    raw[42:44] = np.int16(20000).tobytes()  # dim[1] of the NIfTI-1 header: claim 20000 voxels along i
    (tmp_path / "huge.nii").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"huge\.nii: image of 20000 x 2 pixels is over medcf's limit"):
        read_images(tmp_path / "huge.nii")
