"""The brain MRI and generic image-folder adapters read tiny real-format layouts, and reject bad data."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medcf.data.adapters import brain_mri, image_folder


def by_id(records: pd.DataFrame) -> dict[str, dict[str, object]]:
    return {row["id"]: row for row in records.to_dict("records")}


def value(cell: object) -> object:
    return None if pd.isna(cell) else cell


# --- Brain MRI --------------------------------------------------------------------------------


def test_brain_mri_oasis_slices_and_cdr_mapping(oasis):
    root, csv = oasis
    cohort = brain_mri(root, csv, id_column="ID")
    records = cohort.records
    assert cohort.modality == "brain MRI" and cohort.axis == "axial"
    assert list(records["slice_index"][records["patient_id"] == "OAS1_0001_MR1"]) == [
        2,
        3,
        4,
        5,
    ]  # central half of 8
    first = by_id(records)["OAS1_0001_MR1_axial002"]
    assert first["path"] == str(root / "OAS1_0001_MR1.nii.gz")
    assert first["sex"] == "F" and first["age"] == 74.0 and first["diagnosis"] == "AD"
    assert first["dementia_severity"] == "very mild" and first["alzheimers_disease"] == 1
    second = by_id(records)["OAS1_0002_MR1_axial003"]
    assert second["path"].endswith("OAS1_0002_MR1/PROCESSED/brain.nii.gz") and second["diagnosis"] == "CN"
    assert second["alzheimers_disease"] == 0 and second["mild_cognitive_impairment"] == 0
    assert value(second["dementia_severity"]) is None
    sagittal = brain_mri(root, csv, id_column="ID", axis="sagittal", slices=[0, 11])
    assert len(sagittal) == 4 and sagittal.axis == "sagittal" and set(sagittal.records["slice_index"]) == {0, 11}


def test_brain_mri_counts_slices_in_ras_orientation(tmp_path):
    root = tmp_path / "adni"
    affine = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float)  # voxel j is S
    root.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((5, 9, 4), np.float32), affine), root / "s1.nii.gz")
    (root / "vols").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((6, 6, 6), np.float32), np.eye(4)), root / "vols" / "s2.nii")
    pd.DataFrame(
        {"subject_id": ["s1", "s2"], "path": ["s1.nii.gz", "vols/s2.nii"], "Group": ["MCI", "LMCI"],
         "PTGENDER": ["Male", "Female"], "Age": ["70.5", "80"], "RID": ["1", "1"]}
    ).to_csv(root / "adni.csv", index=False)  # fmt: skip
    cohort = brain_mri(root, root / "adni.csv", slices=None, patient_column="RID")
    s1 = cohort.records[cohort.records["id"].str.startswith("s1")]
    assert list(s1["slice_index"]) == [2, 3, 4, 5, 6]  # axial count = 9 (voxel axis 1 points superior)
    assert set(cohort.records["patient_id"]) == {"1"} and set(cohort.records["diagnosis"]) == {"MCI"}
    assert set(cohort.records["mild_cognitive_impairment"]) == {1} and set(cohort.records["sex"]) == {
        "M",
        "F",
    }


def test_brain_mri_errors(oasis, tmp_path):
    root, csv = oasis
    with pytest.raises(ValueError, match=r"slice\(s\) \[8\] outside 0–7 along axial"):
        brain_mri(root, csv, id_column="ID", slices=[0, 8])
    with pytest.raises(ValueError, match="axis 'oblique' unknown"):
        brain_mri(root, csv, id_column="ID", axis="oblique")
    table = pd.read_csv(csv, dtype=str)
    table.loc[1, "CDR"] = "4"
    table.to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"line 3, column 'CDR': CDR '4' is not a Clinical Dementia Rating"):
        brain_mri(root, csv, id_column="ID")
    table.loc[1, "CDR"] = "0"
    table.loc[2] = ["OAS1_0003_MR1", "F", "70", "0"]
    table.to_csv(csv, index=False)
    with pytest.raises(FileNotFoundError, match="line 4: subject OAS1_0003_MR1 needs exactly one NIfTI volume"):
        brain_mri(root, csv, id_column="ID")
    table.drop(index=2).assign(Group="Demented?").to_csv(csv, index=False)
    with pytest.raises(ValueError, match="column 'Group': diagnosis 'Demented\\?' unknown; use one of CN"):
        brain_mri(root, csv, id_column="ID")
    (root / "broken.nii.gz").write_bytes(b"not nifti")
    pd.DataFrame({"subject_id": ["b"], "path": ["broken.nii.gz"]}).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ValueError, match="broken.nii.gz: not a readable NIfTI volume"):
        brain_mri(root, tmp_path / "b.csv")


# --- generic image folder ---------------------------------------------------------------------------------


def test_image_folder_reads_the_generic_layout(folder_root):
    cohort = image_folder(folder_root, modality="chest X-ray")
    rows = by_id(cohort.records)
    assert list(cohort.records.columns) == [
        "id", "patient_id", "path", "mask_path", "age", "sex", "smoking", "nodule", "pack_years",
        "slice_index",
    ]  # fmt: skip
    assert rows["img1"]["path"] == str(folder_root / "images/img1.png") and rows["img1"]["patient_id"] == "p1"
    assert rows["img1"]["mask_path"] == str(folder_root / "masks/img1.png") and cohort.has_masks
    assert rows["img2"]["age"] == 62.0 and rows["img2"]["nodule"] == 1 and rows["img2"]["smoking"] == "current"
    assert value(rows["img3"]["smoking"]) is None and value(rows["img3"]["nodule"]) is None
    assert rows["img2"]["pack_years"] == "20" and str(cohort.records["nodule"].dtype) == "Int64"
    chosen = image_folder(folder_root, "metadata.csv", patient_column="id", mask_column=None, fields=["age"])
    assert list(chosen.records.columns) == ["id", "patient_id", "path", "mask_path", "age", "slice_index"]
    assert set(chosen.records["patient_id"]) == {"img0", "img1", "img2", "img3"}


def test_image_folder_without_patient_and_mask_columns(folder_root):
    table = pd.read_csv(folder_root / "metadata.csv", dtype=str).drop(columns=["patient_id", "mask_path"])
    table.to_csv(folder_root / "plain.csv", index=False)
    cohort = image_folder(folder_root, folder_root / "plain.csv", modality="brain MRI")
    assert not cohort.has_masks and list(cohort.records["patient_id"]) == list(cohort.records["id"])


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda t: t.drop(columns="path"), ValueError, r"metadata.csv: missing column\(s\) \['path'\]"),
        (
            lambda t: t.assign(id="same"),
            ValueError,
            r"duplicate value\(s\) in id column 'id' \(e.g. 'same'\)",
        ),
        (
            lambda t: t.assign(age=["60", "61", "sixty-two", "63"]),
            ValueError,
            r"line 4, column 'age': age value",
        ),
        (
            lambda t: t.assign(nodule=["0", "2", "1", "1"]),
            ValueError,
            r"line 3, column 'nodule'.*'2' not understood",
        ),
        (lambda t: t.assign(sex=["F", "F", "W", "M"]), ValueError, r"line 4, column 'sex': sex value 'W'"),
        (lambda t: t.iloc[:0], ValueError, "metadata.csv: table has a header but no rows"),
        (
            lambda t: t.assign(path=["images/img0.png", "images/gone.png", "images/img2.png", "x.png"]),
            FileNotFoundError,
            r"metadata.csv: 2 image file\(s\) not found \(e.g. .*gone.png, .*x.png\)",
        ),
    ],
)
def test_image_folder_rejects_bad_tables(folder_root, edit, error, message):
    edit(pd.read_csv(folder_root / "metadata.csv", dtype=str)).to_csv(folder_root / "metadata.csv", index=False)
    with pytest.raises(error, match=message):
        image_folder(folder_root)


def test_image_folder_rejects_non_utf8_csv(folder_root):
    text = (folder_root / "metadata.csv").read_text().replace("current", "fumeur actuel é")
    (folder_root / "metadata.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=r"not UTF-8 text \(line 4, byte 0xE9\); re-save the file as UTF-8"):
        image_folder(folder_root, fields=["age"])


def test_image_folder_lists_missing_masks(folder_root):
    Path(folder_root / "masks/img2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 mask file\(s\) not found.*img2.png"):
        image_folder(folder_root)
