"""Semi-synthetic 3-D brain MRI (`medcf synth brain --3d`): T1 look, 3-D effects and their locality, purity,
NIfTI geometry and storage, the written cohort and the CLI."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from medcf.cli import app, main
from medcf.data.synthetic import BRAIN_FACTORS, EFFECT_THRESHOLD, counterfactual_values, effect_mask, synthesize
from medcf.data.synthetic.brain3d import AD_REGIONS_MM, render_brain3d
from medcf.data.synthetic.brain3d_anatomy import SLICE_SIDE_MM, brain3d_shape, brain3d_spacing, lesion_center_mm
from medcf.data.synthetic.brain3d_pose import subject_pose
from medcf.data.synthetic.brain_subject import brain_row, sample_brain_subject
from medcf.data.synthetic.kinds import get_kind
from medcf.data.volume import dataset_value_range, read_volume

SIZE = 32  # 32x32x24 voxels of 7.5 mm: renders take ~10 ms
SPACING = brain3d_spacing(brain3d_shape(SIZE))
SUBJECTS = [sample_brain_subject(0, index) for index in range(3)]
HEALTHY = {"lesion": 0, "alzheimers_disease": 0}
BRAIN_COLUMNS = ["id", "patient_id", "path", "mask_path", *list(brain_row(SUBJECTS[0]))[2:]]


def test_volume_is_a_t1_head_in_ras_shape_with_brain_and_ventricle_masks():
    render = render_brain3d(SUBJECTS[0], SIZE)
    volume, brain, ventricles = render.image, render.masks["brain"], render.masks["ventricles"]
    assert volume.shape == brain3d_shape(SIZE) == (32, 32, 24) and volume.dtype == np.float32
    assert SPACING == (7.5, 7.5, 7.5) and volume.min() >= 0.0 and volume.max() <= 1.0
    assert list(render.masks)[:2] == ["brain", "ventricles"] and all(m.dtype == bool for m in render.masks.values())
    assert 0.15 < brain.mean() < 0.5 and ventricles.sum() > 15 and not (ventricles & ~brain).any()
    assert volume[:3, :3, :3].mean() < 0.15  # air in the corner is dark
    assert volume[ventricles].mean() < volume[brain & ~ventricles].mean() - 0.2  # CSF is dark on T1
    brain_center, ventricle_center = (np.argwhere(render.masks[name]).mean(axis=0) for name in ("brain", "ventricles"))
    assert abs(ventricle_center[0] - SIZE / 2) < 2  # lateral ventricles straddle the midline


def test_renders_are_pure_and_subjects_differ():
    subject = SUBJECTS[1]
    sampled = {factor.name: getattr(subject, factor.name) for factor in BRAIN_FACTORS}
    factual = render_brain3d(subject, SIZE)
    assert np.array_equal(factual.image, render_brain3d(sample_brain_subject(0, 1), SIZE, **sampled).image)
    assert sample_brain_subject(0, 1) == subject and sample_brain_subject(1, 1) != subject
    assert np.abs(render_brain3d(SUBJECTS[0], SIZE).image - factual.image).mean() > 0.02


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_ventricles_enlarge_monotonically_with_age_and_further_with_alzheimers(subject):
    volumes = [render_brain3d(subject, SIZE, age=age, **HEALTHY).masks["ventricles"].sum() for age in (20, 50, 80, 95)]
    assert all(earlier < later for earlier, later in zip(volumes, volumes[1:], strict=False)), volumes
    assert volumes[-1] > 1.3 * volumes[0]  # x1.3 per axis, x2.2 in volume: 7.5 mm voxels quantise it
    with_ad = render_brain3d(subject, SIZE, age=80, lesion=0, alzheimers_disease=1)
    assert with_ad.masks["ventricles"].sum() > volumes[2]
    atrophy = with_ad.masks["alzheimers_disease"]
    assert atrophy.any() and not (atrophy & ~with_ad.masks["brain"]).any()


def ad_region_weight(subject) -> np.ndarray:
    """Per voxel, the largest exp(-rho²) of the temporo-parietal AD regions at the voxel's atlas point."""
    points = subject_pose(subject.anatomy, SIZE, subject.sex).points
    rho2 = [sum(((points[a] - c[a]) / r[a]) ** 2 for a in range(3)) for c, r in AD_REGIONS_MM]
    return np.exp(-np.minimum(*rho2))


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_alzheimers_darkens_the_temporo_parietal_cortex_not_the_frontal_lobe(subject):
    without = render_brain3d(subject, SIZE, age=75, **HEALTHY)
    with_ad = render_brain3d(subject, SIZE, age=75, lesion=0, alzheimers_disease=1)
    difference = with_ad.image - without.image
    brain = without.masks["brain"] & ~ndimage.binary_dilation(with_ad.masks["ventricles"], iterations=3)
    weight = ad_region_weight(subject)
    regions, elsewhere = brain & (weight > 0.5), brain & (weight < 0.01)
    assert difference[regions].mean() < -0.01  # cortex thinned towards CSF signal
    assert np.abs(difference[regions]).mean() > 5 * np.abs(difference[elsewhere]).mean()
    thinned = with_ad.masks["alzheimers_disease"] & ~without.masks["ventricles"]
    assert weight[thinned].mean() > 0.3 and np.percentile(weight[thinned], 10) > 0.1


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_cortex_and_white_matter_darken_with_age(subject):
    young, old = render_brain3d(subject, SIZE, age=20, **HEALTHY), render_brain3d(subject, SIZE, age=90, **HEALTHY)
    brain = young.masks["brain"] & old.masks["brain"] & ~old.masks["ventricles"]
    assert old.image[brain].mean() < young.image[brain].mean() - 0.02


def test_a_female_counterfactual_has_a_smaller_head():
    subject = dataclasses.replace(SUBJECTS[0], sex="M")
    male, female = render_brain3d(subject, SIZE), render_brain3d(subject, SIZE, sex="F")
    ratio = female.masks["brain"].sum() / male.masks["brain"].sum()
    assert 0.8 < ratio < 0.93  # x0.95 per axis: ~0.86 in volume


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_the_lesion_is_a_dark_sphere_in_the_brain_that_changes_only_its_neighbourhood(subject):
    healthy, ill = render_brain3d(subject, SIZE, lesion=0), render_brain3d(subject, SIZE, lesion=1)
    lesion = ill.masks["lesion"]
    assert "lesion" not in healthy.masks and lesion.any() and not (lesion & ~ill.masks["brain"]).any()
    assert ill.image[lesion].mean() < healthy.image[lesion].mean() - 0.1  # T1-hypointense core
    radius_mm = subject.geometry.lesion_radius * SLICE_SIDE_MM
    reach_mm = 2.5 * radius_mm * 1.12 / 0.95 + 2 * max(SPACING)  # mass-effect support at the largest pose scale
    far = ndimage.distance_transform_edt(~lesion, sampling=SPACING) > reach_mm
    assert far.mean() > 0.8 and np.abs(ill.image - healthy.image)[far].max(initial=0.0) == 0.0
    changed = effect_mask(healthy, ill, "lesion")
    assert not (lesion & ~changed).any()
    assert np.abs(ill.image - healthy.image)[~changed].max(initial=0.0) <= EFFECT_THRESHOLD


def test_the_lesion_sits_where_the_2d_cohort_puts_it():
    subject = SUBJECTS[0]
    x, y, z = lesion_center_mm(subject.geometry, subject.anatomy.slice)
    assert -70 < x < 70 and -100 < y < 70 and z == subject.anatomy.slice - 72  # inside the MNI brain, on its slice
    pose = subject_pose(subject.anatomy, SIZE, subject.sex)
    lesion = render_brain3d(subject, SIZE, lesion=1).masks["lesion"]
    atlas_points = pose.points[:, lesion]  # before the mass effect: a lesion voxel looks near the centre
    distance = np.sqrt(((atlas_points - np.array([[x], [y], [z]])) ** 2).sum(axis=0))
    assert distance.min() < max(SPACING)


def test_every_counterfactual_changes_something_and_nothing_outside_its_mask():
    subject = SUBJECTS[2]
    factual = render_brain3d(subject, SIZE)
    for factor, value in counterfactual_values(subject, BRAIN_FACTORS):
        changed = render_brain3d(subject, SIZE, **{factor: value})
        mask = effect_mask(factual, changed, factor)
        assert mask.any() and mask.mean() < 0.6, (factor, value)
        assert np.abs(changed.image - factual.image)[~mask].max(initial=0.0) <= EFFECT_THRESHOLD
        outside = ~ndimage.binary_dilation(factual.masks["brain"] | changed.masks["brain"], iterations=3)
        if factor != "sex":  # only head size changes the scalp; every other effect is in the (blurred) brain
            assert np.abs(changed.image - factual.image)[outside].max() < 0.1 * EFFECT_THRESHOLD, (factor, value)


def test_bad_overrides_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="lesion=2 is not a level of lesion"):
        render_brain3d(SUBJECTS[0], SIZE, lesion=2)
    with pytest.raises(ValueError, match="unknown factor"):
        render_brain3d(SUBJECTS[0], SIZE, smoking="current")


@pytest.fixture(scope="module")
def brain3d_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("brain3d", tmp_path_factory.mktemp("brain3d") / "data", n=3, size=SIZE, seed=0, progress=False)


def test_written_nifti_round_trips_values_spacing_and_ras_affine(brain3d_dataset: Path):
    metadata = pd.read_csv(brain3d_dataset / "metadata.csv")
    assert list(metadata.columns) == BRAIN_COLUMNS and list(metadata["id"]) == [
        "brain00000",
        "brain00001",
        "brain00002",
    ]
    for record in metadata.itertuples():
        image = nib.load(brain3d_dataset / record.path)
        assert image.get_data_dtype() == np.uint16 and image.shape == (32, 32, 24)
        assert np.isclose(image.dataobj.slope, 1 / 65535) and image.dataobj.inter == 0
        assert np.allclose(image.affine, np.diag([*SPACING, 1.0])) and np.allclose(image.header.get_zooms(), SPACING)
        assert image.header.get_xyzt_units()[0] == "mm" and nib.aff2axcodes(image.affine) == ("R", "A", "S")
        assert int(image.header["sform_code"]) == 1 and int(image.header["qform_code"]) == 1
        expected = render_brain3d(sample_brain_subject(0, int(record.id[5:])), SIZE).image
        values = read_volume(brain3d_dataset / record.path)  # medcf's 3-D reader applies the slope
        assert values.min() >= 0.0 and values.max() <= 1.0 and np.abs(values - expected).max() <= 0.5 / 65535 + 1e-7
        mask = nib.load(brain3d_dataset / record.mask_path)
        assert mask.get_data_dtype() == np.uint8 and set(np.unique(np.asanyarray(mask.dataobj))) == {0, 1}
        assert np.allclose(mask.affine, image.affine) and record.mask_path.endswith("_brain.nii.gz")


def test_tables_effect_masks_and_dataset_card(brain3d_dataset: Path):
    masks = pd.read_csv(brain3d_dataset / "masks.csv")
    changes = pd.read_csv(brain3d_dataset / "counterfactuals.csv", dtype=str)
    metadata = pd.read_csv(brain3d_dataset / "metadata.csv")
    paths = [*metadata["path"], *metadata["mask_path"], *masks["path"], *changes["path"], *changes["effect_mask_path"]]
    assert all((brain3d_dataset / path).is_file() for path in paths) and len(changes) >= 3 * 3
    assert {"brain", "ventricles"} <= set(masks["name"]) and set(changes["factor"]) == {f.name for f in BRAIN_FACTORS}
    change = changes[(changes["id"] == "brain00000") & (changes["factor"] == "lesion")].iloc[0]
    subject = sample_brain_subject(0, 0)
    factual, changed = render_brain3d(subject, SIZE), render_brain3d(subject, SIZE, lesion=int(change["value"]))
    written = np.asanyarray(nib.load(brain3d_dataset / change["effect_mask_path"]).dataobj)
    assert np.array_equal(written, effect_mask(factual, changed, "lesion").astype(np.uint8))
    card = json.loads((brain3d_dataset / "dataset.json").read_text())
    assert card["kind"] == "brain3d" and card["modality"] == "brain MRI" and card["modality_key"] == "brain_mri"
    assert card["dims"] == 3 and card["shape"] == [32, 32, 24] and card["spacing_mm"] == [7.5, 7.5, 7.5]
    assert card["orientation"] == "RAS+" and card["effect_threshold"] == EFFECT_THRESHOLD
    assert "MNI152" in card["anatomy"] and "nilearn" in card["anatomy"] and "uint16" in card["storage"]
    assert dataset_value_range(brain3d_dataset) == (0.0, 1.0)
    kind = get_kind("brain3d")
    assert kind.modality == get_kind("brain").modality and kind.row is get_kind("brain").row  # same prompts, rows


def test_cli_synth_brain_3d_writes_volumes_tables_and_a_preview(tmp_path: Path):
    out = tmp_path / "brain3d"
    args = ["synth", "brain", "--3d", "--n", "3", "--size", "32", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (out / "volumes").iterdir()) == [f"brain0000{i}.nii.gz" for i in range(3)]
    assert json.loads((out / "dataset.json").read_text())["kind"] == "brain3d"
    assert (out / "preview.png").stat().st_size > 0 and (out / "masks" / "brain00000_ventricles.nii.gz").is_file()
    for table in ("metadata.csv", "masks.csv", "counterfactuals.csv"):
        assert len(pd.read_csv(out / table)) >= 3, table


def test_cli_3d_with_cxr_is_one_line_error_and_a_nonzero_exit(tmp_path: Path, monkeypatch, capsys):
    out = tmp_path / "cxr"
    monkeypatch.setattr(sys, "argv", ["medcf", "synth", "cxr", "--3d", "--n", "1", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    error = capsys.readouterr().err
    assert exit_info.value.code == 1 and len(error.strip().splitlines()) == 1
    assert "--3d: 'cxr' has no 3-D cohort" in error and "drop --3d" in error and not out.exists()
