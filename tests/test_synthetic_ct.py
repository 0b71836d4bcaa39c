"""Semi-synthetic 3-D chest CT: tissue HU, effect direction and locality, RAS geometry, NIfTI files, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from medcf.cli import app
from medcf.data.io import read_image
from medcf.data.nifti import display_slice
from medcf.data.synthetic import (
    CT_FACTORS,
    counterfactual_values,
    effect_mask,
    render_ct,
    sample_ct_subject,
    synthesize,
)
from medcf.data.synthetic.ct import CT_EFFECT_THRESHOLD_HU
from medcf.data.synthetic.ct_anatomy import ct_shape, ct_spacing, thorax
from medcf.data.synthetic.ct_subject import ct_row
from medcf.data.synthetic.kinds import unseen_patients

SIZE = 64  # the default 64x64x32 volume: renders take ~40 ms
SUBJECTS = [sample_ct_subject(0, index) for index in range(3)]
FINDINGS = ("nodule", "consolidation", "pleural_effusion")
HEALTHY = dict.fromkeys(FINDINGS, 0)
SMOKING = ("never", "former", "current")
CT_COLUMNS = [
    "id", "patient_id", "path", "mask_path", "age", "sex", "smoking", "nodule", "consolidation", "pleural_effusion"
]  # fmt: skip


def centroid(mask: np.ndarray) -> np.ndarray:
    """Mean voxel index (i, j, k): i toward patient Right, j Anterior, k Superior (RAS+)."""
    return np.argwhere(mask).mean(axis=0)


def test_volume_is_whole_hu_in_ras_shape_with_the_anatomy_masks():
    render = render_ct(SUBJECTS[0], SIZE)
    assert render.image.shape == ct_shape(SIZE) == (64, 64, 32) and render.image.dtype == np.float32
    assert np.array_equal(render.image, np.round(render.image))
    assert render.image.min() >= -1024 and render.image.max() <= 3071
    assert list(render.masks)[:4] == ["lungs", "heart", "airways", "bone"]
    for name in ("lungs", "heart", "airways", "bone"):
        assert render.masks[name].dtype == bool and render.masks[name].shape == render.image.shape
    assert 0.03 < render.masks["lungs"].mean() < 0.3 and render.masks["airways"].any()


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_each_tissue_has_its_hounsfield_units_inside_its_mask(subject):
    render = render_ct(subject, SIZE, smoking="never", **HEALTHY)
    hu, masks = render.image, render.masks
    aerated = ndimage.binary_erosion(masks["lungs"])  # away from the pleural partial volume
    assert -900 < hu[aerated].mean() < -780
    assert 20 < hu[ndimage.binary_erosion(masks["heart"])].mean() < 60
    assert hu[masks["airways"]].mean() < -700
    assert hu[masks["bone"]].mean() > 300
    anatomy = thorax(subject.anatomy, ct_shape(SIZE), subject.sex)
    outside, fat = anatomy.body < 0.01, (anatomy.body > 0.99) & (anatomy.soft_tissue < 0.01)
    assert abs(hu[outside].mean() + 1000) < 15 and -140 < hu[fat].mean() < -60
    assert 10 < hu[outside].std() < 30  # CT noise of 15-25 HU


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_smoking_lowers_lung_hu_and_grows_upper_lobe_emphysema_never_former_current(subject):
    renders = [render_ct(subject, SIZE, smoking=level, **HEALTHY) for level in SMOKING]
    lungs = renders[0].masks["lungs"]
    means = [render.image[lungs].mean() for render in renders]
    low_attenuation = [(render.image[lungs] < -950).mean() for render in renders]  # LAA-950 (COPDGene)
    assert means[0] > means[1] > means[2] and low_attenuation[0] < low_attenuation[1] < low_attenuation[2]
    assert "emphysema" not in renders[0].masks
    former, current = renders[1].masks["emphysema"], renders[2].masks["emphysema"]
    assert former.any() and not (former & ~current).any()  # nested: a current smoker has the former's and more
    assert renders[2].image[current].mean() < -950
    upper = np.zeros_like(lungs)
    upper[:, :, int(centroid(lungs)[2]) :] = True
    assert (current & upper).sum() / (lungs & upper).sum() > (current & ~upper).sum() / (lungs & ~upper).sum()


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_age_lowers_lung_and_bone_attenuation(subject):
    young, old = render_ct(subject, SIZE, age=40, **HEALTHY), render_ct(subject, SIZE, age=80, **HEALTHY)
    lungs, bone = young.masks["lungs"], ndimage.binary_erosion(young.masks["bone"])
    assert young.image[lungs].mean() - old.image[lungs].mean() > 30  # -1 HU per year over 40, partial volume
    assert young.image[bone].mean() - old.image[bone].mean() > 60  # -2 HU per year over 30


def test_a_female_counterfactual_has_a_smaller_body_and_lungs():
    subject = dataclasses.replace(SUBJECTS[2], sex="M")
    male, female = render_ct(subject, SIZE), render_ct(subject, SIZE, sex="F")
    assert (female.image > -500).sum() < 0.9 * (male.image > -500).sum()
    assert female.masks["lungs"].sum() < male.masks["lungs"].sum()


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda subject: subject.id)
def test_finding_masks_appear_only_when_present_inside_the_lungs_with_their_hu(subject):
    healthy = render_ct(subject, SIZE, **HEALTHY)
    assert not set(FINDINGS) & set(healthy.masks)
    lung_mean = healthy.image[healthy.masks["lungs"]].mean()
    for finding, (low, high) in zip(FINDINGS, [(-400, 80), (-120, 60), (-80, 40)], strict=True):
        render = render_ct(subject, SIZE, **{**HEALTHY, finding: 1})
        mask = render.masks[finding]
        assert mask.any() and not (mask & ~render.masks["lungs"]).any(), finding
        assert low < np.median(render.image[mask]) < high, finding
        assert render.image[mask].mean() > lung_mean + 300, finding
        assert set(render.masks) - set(healthy.masks) == {finding}


@pytest.mark.parametrize("side", ["right", "left", "both"])
def test_pleural_effusion_is_dependent_posterior_basal_on_its_side(side):
    subject = dataclasses.replace(SUBJECTS[0], geometry=dataclasses.replace(SUBJECTS[0].geometry, effusion_side=side))
    render = render_ct(subject, SIZE, pleural_effusion=1)
    fluid, lungs = render.masks["pleural_effusion"], render.masks["lungs"]
    fluid_center, lung_center = centroid(fluid), centroid(lungs)
    assert fluid_center[1] < lung_center[1] - 2  # posterior: gravity in a supine patient
    assert fluid_center[2] < lung_center[2]  # basal
    right = fluid[SIZE // 2 :].sum() / fluid.sum()  # RAS+: higher i is the patient's right
    assert {"right": right > 0.95, "left": right < 0.05, "both": 0.2 < right < 0.8}[side]


def test_ras_orientation_heart_left_anterior_spine_posterior():
    render = render_ct(SUBJECTS[1], SIZE)
    heart, lungs, bone = (centroid(render.masks[name]) for name in ("heart", "lungs", "bone"))
    assert heart[0] < SIZE / 2 - 1 and heart[1] > lungs[1]  # patient's left, anterior
    spine = render.masks["bone"][SIZE // 2 - 2 : SIZE // 2 + 2]
    assert centroid(spine)[1] < lungs[1] and bone[1] < heart[1]


@pytest.mark.parametrize("subject", SUBJECTS[:2], ids=lambda subject: subject.id)
def test_counterfactuals_change_the_volume_only_inside_their_effect_mask(subject):
    factual = render_ct(subject, SIZE)
    lung_field = ndimage.binary_dilation(factual.masks["lungs"], iterations=2)  # lung-only mechanisms
    for factor, value in counterfactual_values(subject, CT_FACTORS):
        changed = render_ct(subject, SIZE, **{factor: value})
        difference = np.abs(changed.image - factual.image)
        mask = effect_mask(factual, changed, factor, threshold=CT_EFFECT_THRESHOLD_HU)
        assert mask.any(), (factor, value)
        assert difference[~mask].max(initial=0.0) <= CT_EFFECT_THRESHOLD_HU, (factor, value)
        if factor in ("smoking", *FINDINGS):
            assert difference[~lung_field].max(initial=0.0) == 0.0, (factor, value)
        if factor in FINDINGS:
            assert (mask & lung_field).sum() == mask.sum() and mask.mean() < 0.05, (factor, value)


def test_renders_are_deterministic_and_subjects_differ():
    assert sample_ct_subject(0, 2) == SUBJECTS[2] and sample_ct_subject(1, 2) != SUBJECTS[2]
    sampled = {factor.name: getattr(SUBJECTS[1], factor.name) for factor in CT_FACTORS}
    factual, again = render_ct(SUBJECTS[1], SIZE), render_ct(sample_ct_subject(0, 1), SIZE, **sampled)
    assert np.array_equal(factual.image, again.image)
    assert np.abs(render_ct(SUBJECTS[0], SIZE).image - render_ct(SUBJECTS[1], SIZE).image).mean() > 20


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"smoking": "sometimes"}, "smoking='sometimes' is not a level"), ({"cardiomegaly": 1}, "unknown factor")],
)
def test_bad_factor_overrides_are_refused_with_the_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        render_ct(SUBJECTS[0], SIZE, **overrides)


def test_causal_graph_smoking_raises_nodule_prevalence_and_rows_are_canonical():
    cohort = [sample_ct_subject(3, index) for index in range(1500)]
    rate = {level: np.mean([s.nodule for s in cohort if s.smoking == level]) for level in ("never", "current")}
    assert rate["current"] > rate["never"]
    assert list(ct_row(cohort[0])) == [column for column in CT_COLUMNS if column not in ("path", "mask_path")]


def tree_digest(root: Path) -> dict[str, str]:
    files = sorted(path for path in root.rglob("*") if path.is_file())
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


@pytest.fixture(scope="module")
def ct_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("ct", tmp_path_factory.mktemp("ct") / "data", n=3, size=32, seed=0, progress=False)


def test_written_nifti_round_trips_hu_spacing_and_affine(ct_dataset: Path):
    metadata = pd.read_csv(ct_dataset / "metadata.csv")
    assert list(metadata.columns) == CT_COLUMNS and list(metadata["id"]) == ["ct00000", "ct00001", "ct00002"]
    spacing = ct_spacing(ct_shape(32))
    for record in metadata.itertuples():
        image = nib.load(ct_dataset / record.path)
        assert image.get_data_dtype() == np.int16 and image.shape == (32, 32, 16)
        assert np.allclose(image.affine, np.diag([*spacing, 1.0])) and np.allclose(image.header.get_zooms(), spacing)
        assert image.header.get_xyzt_units()[0] == "mm" and nib.aff2axcodes(image.affine) == ("R", "A", "S")
        assert int(image.header["sform_code"]) > 0 and int(image.header["qform_code"]) > 0
        expected = render_ct(sample_ct_subject(0, int(record.id[2:])), 32).image
        assert np.array_equal(np.asanyarray(image.dataobj), expected.astype(np.int16))
        mask = nib.load(ct_dataset / record.mask_path)
        assert mask.get_data_dtype() == np.uint8 and set(np.unique(np.asanyarray(mask.dataobj))) <= {0, 1}
        assert np.allclose(mask.affine, image.affine)
    axial = read_image(ct_dataset / metadata["path"][0], index=8, axis="axial")  # medcf's own NIfTI reader
    volume = np.asanyarray(nib.load(ct_dataset / metadata["path"][0]).dataobj)
    assert np.array_equal(axial.values, display_slice(volume[:, :, 8]).astype(np.float32))


def test_every_table_path_exists_and_effect_masks_match_the_renders(ct_dataset: Path):
    masks = pd.read_csv(ct_dataset / "masks.csv")
    changes = pd.read_csv(ct_dataset / "counterfactuals.csv", dtype=str)
    metadata = pd.read_csv(ct_dataset / "metadata.csv")
    paths = [*metadata["path"], *metadata["mask_path"], *masks["path"], *changes["path"], *changes["effect_mask_path"]]
    assert all((ct_dataset / path).is_file() for path in paths)
    assert {"lungs", "heart", "airways", "bone"} <= set(masks["name"])
    change = changes[(changes["id"] == "ct00000") & (changes["factor"] == "nodule")].iloc[0]
    subject = sample_ct_subject(0, 0)
    factual, changed = render_ct(subject, 32), render_ct(subject, 32, nodule=int(change["value"]))
    written = np.asanyarray(nib.load(ct_dataset / change["effect_mask_path"]).dataobj)
    assert np.array_equal(written, effect_mask(factual, changed, "nodule", threshold=10.0).astype(np.uint8))
    description = json.loads((ct_dataset / "dataset.json").read_text())
    assert description["kind"] == "ct" and description["modality"] == "chest CT" and description["dims"] == 3
    assert description["shape"] == [32, 32, 16] and description["value_range"] == [-1024, 1024]
    assert description["effect_threshold"] == 10.0 and description["effect_threshold_units"] == "HU"
    assert description["anatomy"].startswith("analytic phantom") and description["spacing_mm"] == [11.25, 11.25, 18.75]


def test_same_seed_gives_byte_identical_files_in_processes_too(ct_dataset: Path, tmp_path: Path):
    again = synthesize("ct", tmp_path / "again", n=3, size=32, seed=0, progress=False, workers=2)
    assert tree_digest(again) == tree_digest(ct_dataset)


def test_cli_synth_ct_writes_the_folder_and_a_preview(tmp_path: Path):
    result = CliRunner().invoke(app, ["synth", "ct", "--n", "2", "--size", "32", "--out", str(tmp_path / "ct")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ct" / "preview.png").stat().st_size > 0
    assert len(list((tmp_path / "ct" / "volumes").glob("*.nii.gz"))) == 2
    refused = CliRunner().invoke(app, ["synth", "ct", "--n", "1", "--size", "512", "--out", str(tmp_path / "big")])
    assert refused.exit_code != 0 and "size=512" in str(refused.exception)


def test_unseen_patients_are_held_out_ct_volumes():
    patients = unseen_patients("ct", 2, seed=0, size=32)
    assert [row["id"] for _, _, row in patients] == ["ct100000", "ct100001"]
    assert all(render.image.shape == (32, 32, 16) for _, render, _ in patients)
