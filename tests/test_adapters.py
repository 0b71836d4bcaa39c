"""The chest X-ray adapters (COVID-19 Radiography, CheXpert, MIMIC-CXR-JPG, NIH) read tiny real layouts."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from medcf.data.adapters import chexpert, covid_radiography, mimic_cxr, nih_chestxray14


def by_id(records: pd.DataFrame) -> dict[str, dict[str, object]]:
    return {row["id"]: row for row in records.to_dict("records")}


def value(cell: object) -> object:
    return None if pd.isna(cell) else cell


# --- COVID-19 Radiography ----------------------------------------------------------------------------


def test_covid_radiography_maps_class_folders_to_findings_and_masks(covid_root):
    cohort = covid_radiography(covid_root)
    rows = by_id(cohort.records)
    assert len(cohort) == 6 and cohort.has_masks and cohort.resize_masks and cohort.modality == "chest X-ray"
    assert rows["COVID-1"]["covid19"] == 1 and rows["COVID-1"]["no_finding"] == 0
    assert value(rows["COVID-1"]["lung_opacity"]) is None  # COVID images show opacities: not asserted absent
    assert rows["Normal-2"]["no_finding"] == 1 and rows["Normal-2"]["lung_opacity"] == 0
    assert rows["Lung_Opacity-1"]["lung_opacity"] == 1 and rows["Viral Pneumonia-1"]["viral_pneumonia"] == 1
    assert rows["COVID-2"]["patient_id"] == "COVID-2"
    assert rows["COVID-2"]["mask_path"] == str(covid_root / "COVID" / "masks" / "COVID-2.png")
    assert str(cohort.records["covid19"].dtype) == "Int64"


def test_covid_radiography_errors(covid_root, tmp_path):
    (covid_root / "Normal" / "masks" / "Normal-1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"Normal/masks: 1 mask\(s\) missing.*Normal-1.png"):
        covid_radiography(covid_root)
    shutil.rmtree(covid_root / "Normal" / "masks")
    with pytest.raises(ValueError, match=r"\['Normal'\] have no masks/ folder"):
        covid_radiography(covid_root)
    (tmp_path / "other" / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"none of the class folders \['COVID', 'Lung_Opacity'"):
        covid_radiography(tmp_path / "other")


def test_covid_radiography_checks_the_metadata_sheet(covid_root):
    pd.DataFrame({"FILE NAME": ["COVID-1"], "FORMAT": "PNG", "SIZE": "256*256", "URL": "u"}).to_excel(
        covid_root / "COVID.metadata.xlsx", index=False
    )
    with pytest.raises(ValueError, match=r"COVID.metadata.xlsx: 1 image\(s\) not listed under FILE NAME.*COVID-2.png"):
        covid_radiography(covid_root)
    pd.DataFrame({"FILE NAME": ["COVID-1"]}).to_excel(covid_root / "COVID.metadata.xlsx", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['FORMAT', 'SIZE', 'URL'\]"):
        covid_radiography(covid_root)


# --- CheXpert -----------------------------------------------------------------------------------------


def test_chexpert_reads_the_release_layout(chexpert_csv):
    cohort = chexpert(chexpert_csv)
    rows = by_id(cohort.records)
    frontal = rows["CheXpert-v1.0-small/train/patient00001/study1/view1_frontal"]
    assert frontal["path"] == str(chexpert_csv.parent / "train/patient00001/study1/view1_frontal.jpg")
    assert frontal["patient_id"] == "patient00001" and frontal["sex"] == "F" and frontal["age"] == 68.0
    assert frontal["view"] == "AP" and frontal["no_finding"] == 1 and frontal["support_devices"] == 1
    assert value(frontal["edema"]) is None
    lateral = rows["CheXpert-v1.0-small/train/patient00001/study1/view2_lateral"]
    assert lateral["view"] == "lateral" and lateral["cardiomegaly"] == 1
    assert value(lateral["pleural_effusion"]) is None  # uncertain → ignore (not mentioned) by default
    other = rows["CheXpert-v1.0-small/train/patient00003/study2/view1_frontal"]
    assert value(other["sex"]) is None and value(other["fracture"]) is None
    assert rows["CheXpert-v1.0-small/train/patient00002/study1/view1_frontal"]["view"] == "PA"


def test_chexpert_uncertainty_policies_and_frontal_filter(chexpert_csv):
    zeros = by_id(chexpert(chexpert_csv, uncertain="zeros").records)
    ones = by_id(chexpert(chexpert_csv, uncertain="ones", frontal_only=True).records)
    key = "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal"
    assert zeros[key]["pneumonia"] == 0 and ones[key]["pneumonia"] == 1
    assert zeros[key]["pleural_effusion"] == 0 and ones[key]["pleural_effusion"] == 0  # a real 0 stays 0
    assert len(ones) == 3 and all(row["view"] != "lateral" for row in ones.values())
    with pytest.raises(ValueError, match="uncertain='maybe' unknown; use one of ignore, zeros, ones"):
        chexpert(chexpert_csv, uncertain="maybe")


def test_chexpert_paths_relative_to_the_csv_folder_or_an_explicit_root(chexpert_csv, tmp_path):
    table = pd.read_csv(chexpert_csv, dtype=str)
    table["Path"] = table["Path"].str.removeprefix("CheXpert-v1.0-small/")
    table.to_csv(chexpert_csv.parent / "relative.csv", index=False)
    cohort = chexpert(chexpert_csv.parent / "relative.csv")
    assert cohort.records["path"].iloc[0] == str(chexpert_csv.parent / "train/patient00001/study1/view1_frontal.jpg")
    (tmp_path / "tables").mkdir()
    moved = shutil.copy(chexpert_csv, tmp_path / "tables" / "elsewhere.csv")
    assert len(chexpert(moved, root=chexpert_csv.parent.parent)) == 4
    with pytest.raises(FileNotFoundError, match=r"elsewhere.csv: 4 image file\(s\) not found"):
        chexpert(moved)


@pytest.mark.parametrize(
    ("column", "bad", "message"),
    [
        ("Edema", "2.0", r"train.csv: line 3, column 'Edema': label '2.0' is not 1.0, 0.0, -1.0 or blank"),
        ("Age", "old", r"train.csv: line 3, column 'Age': age value 'old' is not a number"),
        ("Sex", "X", r"line 3, column 'Sex': sex 'X' not understood"),
        ("AP/PA", "OBL", r"line 3, column 'AP/PA': projection 'OBL' not understood"),
        ("Path", "CheXpert-v1.0-small/train/p1/view1.jpg", r"line 3, column 'Path'.*no 'patientNNNNN'"),
    ],
)
def test_chexpert_rejects_bad_values_naming_line_and_column(chexpert_csv, column, bad, message):
    table = pd.read_csv(chexpert_csv, dtype=str)
    table.loc[1, column] = bad
    table.to_csv(chexpert_csv, index=False)
    with pytest.raises(ValueError, match=message):
        chexpert(chexpert_csv)


def test_chexpert_missing_columns_are_listed(chexpert_csv):
    pd.read_csv(chexpert_csv, dtype=str).drop(columns=["Fracture", "Sex"]).to_csv(chexpert_csv, index=False)
    with pytest.raises(ValueError, match=r"train.csv: missing column\(s\) \['Sex', 'Fracture'\]; the table has"):
        chexpert(chexpert_csv)


# --- MIMIC-CXR-JPG ----------------------------------------------------------------------------------------


def test_mimic_cxr_joins_images_study_labels_and_patients(mimic_root):
    with pytest.warns(UserWarning, match=r"1 image\(s\) of patients over 89 \(anchor_age 91"):
        cohort = mimic_cxr(mimic_root, reports=True)
    rows = by_id(cohort.records)
    assert set(rows) == {"d1", "d2", "d3", "d4"} and rows["d1"]["patient_id"] == "10000032"
    assert rows["d1"]["path"] == str(mimic_root / "files/p10/p10000032/s50414267/d1.jpg")
    assert rows["d1"]["view"] == "PA" and rows["d2"]["view"] == "lateral" and value(rows["d4"]["view"]) is None
    assert rows["d1"]["no_finding"] == 1 and rows["d2"]["no_finding"] == 1  # labels are per study
    assert rows["d3"]["cardiomegaly"] == 1 and value(rows["d3"]["edema"]) is None
    assert rows["d4"]["pneumothorax"] == 0
    assert rows["d1"]["sex"] == "F" and rows["d4"]["sex"] == "M" and value(rows["d4"]["age"]) is None  # 91: "> 89"
    assert rows["d1"]["age"] == 52.0 and rows["d3"]["age"] == 55.0  # anchor_age + study year − anchor_year
    assert rows["d3"]["report"] == "FINDINGS: study 53189527.\n"
    assert "subject_id" not in cohort.records and "study_id" not in cohort.records
    assert by_id(mimic_cxr(mimic_root, uncertain="ones").records)["d3"]["edema"] == 1
    assert "report" not in mimic_cxr(mimic_root).records


def test_mimic_cxr_errors(mimic_root):
    (mimic_root / "files/p10/p10000032/s50414267.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 report file\(s\) not found.*s50414267.txt"):
        mimic_cxr(mimic_root, reports=True)
    (mimic_root / "files/p10/p10000898/s50771383/d4.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 image file\(s\) not found.*d4.jpg"):
        mimic_cxr(mimic_root)
    (mimic_root / "mimic-cxr-2.0.0-chexpert.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"mimic-cxr-2.0.0-chexpert.csv\(.gz\) not found"):
        mimic_cxr(mimic_root)


# --- NIH ChestX-ray14 ------------------------------------------------------------------------------------


def test_nih_finds_images_in_every_images_folder_and_expands_labels(nih_csv):
    cohort = nih_chestxray14(nih_csv)
    rows = by_id(cohort.records)
    assert rows["00000001_000"]["path"] == str(nih_csv.parent / "images_001/images/00000001_000.png")
    assert rows["00000002_000"]["path"] == str(nih_csv.parent / "images_002/images/00000002_000.png")
    first = rows["00000001_000"]
    assert first["cardiomegaly"] == 1 and first["pleural_effusion"] == 1 and first["hernia"] == 0
    assert first["no_finding"] == 0 and first["patient_id"] == "1" and first["age"] == 58.0
    assert rows["00000001_001"]["no_finding"] == 1 and rows["00000001_001"]["view"] == "AP"
    assert rows["00000002_000"]["sex"] == "F" and rows["00000002_000"]["hernia"] == 1
    assert not {"Follow-up #", "lung_opacity", "fracture"} & set(cohort.records.columns)


def test_nih_rejects_unknown_labels_and_reports_missing_images(nih_csv):
    table = pd.read_csv(nih_csv, dtype=str)
    table.loc[2, "Finding Labels"] = "Hernia|Pneumonitis"
    table.to_csv(nih_csv, index=False)
    with pytest.raises(
        ValueError, match=r"line 4, column 'Finding Labels': unknown label\(s\) \['Pneumonitis'\].*Effusion"
    ):
        nih_chestxray14(nih_csv)
    table.loc[2, "Finding Labels"] = "Hernia"
    table.to_csv(nih_csv, index=False)
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) listed in Data_Entry_2017.csv not found.*00000002_000"):
        nih_chestxray14(nih_csv, images=nih_csv.parent / "images_001")


def test_nih_impossible_ages_become_unknown_with_a_warning(nih_csv):
    table = pd.read_csv(nih_csv, dtype=str)
    table.loc[0, "Patient Age"] = "414"
    table.to_csv(nih_csv, index=False)
    with pytest.warns(UserWarning, match="1 age.*above 130 years.*414"):
        cohort = nih_chestxray14(nih_csv)
    assert value(cohort.records["age"].iloc[0]) is None and cohort.records["age"].iloc[1] == 59.0
