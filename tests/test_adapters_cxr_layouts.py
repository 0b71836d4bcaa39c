"""The chest X-ray adapters read each published layout as downloaded: CheXpert (Stanford and Kaggle copies),
MIMIC-CXR-JPG 2.0.0 with MIMIC-IV patients and MIMIC-CXR reports, NIH ChestX-ray14 (2017, v2020, Kaggle sample).

Every fixture copies one release's folder nesting, file names, compression, exact header (every column, in
order) and value formats; the values themselves are invented. Each fixture names the public source of its
layout.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcf.data.adapters import chexpert, mimic_cxr, nih_chestxray14


def write_image(path: Path, seed: int) -> None:
    """A tiny real 8-bit grayscale image in the format the suffix names (JPEG or PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 20), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_text(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_gz(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def rows(cohort) -> dict[str, dict[str, object]]:
    return {row["id"]: row for row in cohort.records.to_dict("records")}


def value(cell: object) -> object:
    return None if pd.isna(cell) else cell


# --- CheXpert -----------------------------------------------------------------------------------------
# Layout: CheXpert-v1.0-small.zip (https://stanfordmlgroup.github.io/competitions/chexpert/) unpacks to
# CheXpert-v1.0-small/{train.csv, valid.csv, train/, valid/}. The Kaggle copy (kaggle.com/datasets/ashery/chexpert,
# fetched by kagglehub in github.com/sidharrth2002/LaBo scripts/download_chexpert.py) holds the same files under
# archive/ with the CSVs unchanged; github.com/deepMD-io/Chest-X-Ray README shows the unzipped
# {train/, valid/, train.csv, valid.csv}, and public loaders rewrite "CheXpert-v1.0-small" in Path to read it.

CHEXPERT_HEADER = (
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,"
    "Support Devices"
)
CHEXPERT_TRAIN = [
    "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0",
    "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,,,-1.0,1.0,,-1.0,-1.0,,"
    "-1.0,,-1.0,,1.0,",
    "CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg,Female,83,Lateral,,,,,1.0,,,-1.0,,,,,,1.0,",
    "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,41,Frontal,PA,,,,,,1.0,,,,0.0,,,,",
]
CHEXPERT_VALID = [  # valid.csv: radiologist consensus, 1.0 / 0.0 only
    "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,0.0,1.0,1.0,1.0,0.0,0.0,"
    "0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
    "CheXpert-v1.0-small/valid/patient64542/study1/view2_lateral.jpg,Male,70,Lateral,,0.0,0.0,0.0,0.0,0.0,0.0,0.0,"
    "0.0,0.0,0.0,0.0,0.0,0.0,1.0",
]


def chexpert_release(folder: Path, release: str = "CheXpert-v1.0-small") -> Path:
    """train.csv, valid.csv and their JPEGs under `folder`, the CSV paths as released; returns `folder`."""
    for name, lines in (("train.csv", CHEXPERT_TRAIN), ("valid.csv", CHEXPERT_VALID)):
        lines = [line.replace("CheXpert-v1.0-small", release) for line in lines]
        write_text(folder / name, [CHEXPERT_HEADER.replace("CheXpert-v1.0-small", release), *lines])
        for number, line in enumerate(lines):
            write_image(folder / line.split(",")[0].removeprefix(f"{release}/"), number)
    return folder


@pytest.fixture
def chexpert_kaggle(tmp_path: Path) -> Path:
    """The Kaggle copy: archive/{train.csv, valid.csv, train/, valid/}, paths still CheXpert-v1.0-small/..."""
    return chexpert_release(tmp_path / "archive")


def test_chexpert_kaggle_copy_reads_with_the_released_csv(chexpert_kaggle):
    train = rows(chexpert(chexpert_kaggle / "train.csv"))
    first = train["CheXpert-v1.0-small/train/patient00001/study1/view1_frontal"]  # ids keep the released path
    assert first["path"] == str(chexpert_kaggle / "train/patient00001/study1/view1_frontal.jpg")
    assert first["sex"] == "F" and first["age"] == 68.0 and first["view"] == "AP"
    assert first["patient_id"] == "patient00001"
    assert first["no_finding"] == 1 and first["pneumothorax"] == 0 and first["support_devices"] == 1
    lateral = train["CheXpert-v1.0-small/train/patient00002/study1/view2_lateral"]
    assert lateral["path"] == str(chexpert_kaggle / "train/patient00002/study1/view2_lateral.jpg")
    assert lateral["view"] == "lateral" and lateral["age"] == 83.0 and lateral["fracture"] == 1
    assert value(lateral["consolidation"]) is None  # uncertain (-1.0) → not mentioned by default
    assert train["CheXpert-v1.0-small/train/patient00003/study1/view1_frontal"]["sex"] == "M"
    valid = rows(chexpert(chexpert_kaggle / "valid.csv"))
    case = valid["CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal"]
    assert case["path"] == str(chexpert_kaggle / "valid/patient64541/study1/view1_frontal.jpg")
    assert case["cardiomegaly"] == 1 and case["no_finding"] == 0 and case["age"] == 73.0


def test_chexpert_stanford_layout_and_full_size_release_folder(tmp_path):
    stanford = chexpert_release(tmp_path / "CheXpert-v1.0-small")
    valid = chexpert(stanford / "valid.csv").records
    assert valid["path"].iloc[0] == str(stanford / "valid/patient64541/study1/view1_frontal.jpg")
    full = chexpert_release(tmp_path / "kaggle-full", release="CheXpert-v1.0")  # full-resolution paths
    first = chexpert(full / "train.csv").records["path"].iloc[0]
    assert first == str(full / "train/patient00001/study1/view1_frontal.jpg")


def test_chexpert_root_overrides_and_csv_beside_the_release_folder(chexpert_kaggle, tmp_path):
    (tmp_path / "data").mkdir()
    shutil.copytree(chexpert_kaggle, tmp_path / "data" / "CheXpert-v1.0-small")
    moved = shutil.copy(chexpert_kaggle / "train.csv", tmp_path / "tables.csv")
    cohort = chexpert(moved, root=tmp_path / "data")  # root: the folder holding the release folder
    release = tmp_path / "data" / "CheXpert-v1.0-small"
    assert cohort.records["path"].iloc[0] == str(release / "train/patient00001/study1/view1_frontal.jpg")
    beside = shutil.copy(chexpert_kaggle / "train.csv", tmp_path / "data" / "train.csv")
    assert chexpert(beside).records["path"].iloc[3] == str(release / "train/patient00003/study1/view1_frontal.jpg")


def test_chexpert_kaggle_copy_names_the_images_really_missing(chexpert_kaggle):
    (chexpert_kaggle / "train/patient00003/study1/view1_frontal.jpg").unlink()
    missing = re.escape(str(chexpert_kaggle / "train/patient00003/study1/view1_frontal.jpg"))
    with pytest.raises(FileNotFoundError, match=rf"train.csv: 1 image file\(s\) not found \(e.g. {missing}\)"):
        chexpert(chexpert_kaggle / "train.csv")


def test_chexpert_refuses_a_table_mixing_path_forms(chexpert_kaggle):
    lines = (chexpert_kaggle / "train.csv").read_text().splitlines()
    lines[1] = lines[1].removeprefix("CheXpert-v1.0-small/")
    write_text(chexpert_kaggle / "train.csv", lines)
    with pytest.raises(ValueError, match=r"train.csv: column 'Path' mixes paths that start with CheXpert-v1.0-small, "
                                         r"train; .* all start with CheXpert-v1.0-small/"):  # fmt: skip
        chexpert(chexpert_kaggle / "train.csv")


# --- MIMIC-CXR-JPG 2.0.0 ---------------------------------------------------------------------------------
# Layout: https://physionet.org/content/mimic-cxr-jpg/2.0.0/ (gzipped tables beside files/pNN/pSUBJECT/sSTUDY/);
# metadata columns as in sunlabuiuc/PyHealth pyhealth/datasets/configs/mimic4_cxr.yaml; chexpert.csv.gz in the
# release's alphabetical label order. MIMIC-IV hosp/patients.csv.gz:
# https://mimic.mit.edu/docs/iv/modules/hosp/patients/. Reports: mimic-cxr-reports.zip of
# https://physionet.org/content/mimic-cxr/2.0.0/ unpacks to files/p10/p10000032/s50414267.txt.

METADATA_HEADER = (
    "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,"
    "ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning"
)
MIMIC_LABELS_HEADER = (
    "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,"
    "Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices"
)
# (dicom_id, subject_id, study_id, ViewPosition, StudyDate, split)
MIMIC_IMAGES = [
    ("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "10000032", "50414267", "PA", "21800506", "train"),
    ("174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "10000032", "50414267", "LATERAL", "21800506", "train"),
    ("2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "10000764", "57375967", "AP", "21351015", "validate"),
    ("9f8e7d6c-5b4a3928-17069f8e-7d6c5b4a-39281706", "10000898", "50771383", "", "21550312", "test"),
]
# ViewPosition → (PerformedProcedureStepDescription, ViewCodeSequence_CodeMeaning, PatientOrientation...)
MIMIC_VIEWS = {
    "PA": ("CHEST (PA AND LAT)", "postero-anterior", "Erect"),
    "LATERAL": ("CHEST (PA AND LAT)", "lateral", "Erect"),
    "AP": ("CHEST (PORTABLE AP)", "antero-posterior", ""),
    "": ("CHEST (PORTABLE AP)", "", ""),
}


def metadata_line(dicom: str, subject: str, study: str, view: str, date: str, _: str) -> str:
    procedure, meaning, orientation = MIMIC_VIEWS[view]
    return (
        f"{dicom},{subject},{study},{procedure},{view},3056,2544,{date},213014.531,{procedure},{meaning},{orientation}"
    )


@pytest.fixture
def mimic_download(tmp_path: Path) -> Path:
    """physionet.org/files/mimic-cxr-jpg/2.0.0/ with three patients; returns that folder."""
    root = tmp_path / "physionet.org/files/mimic-cxr-jpg/2.0.0"
    for number, (dicom, subject, study, *_) in enumerate(MIMIC_IMAGES):
        write_image(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg", number)
    metadata = [METADATA_HEADER, *(metadata_line(*image) for image in MIMIC_IMAGES)]
    write_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", metadata)
    write_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", [
        MIMIC_LABELS_HEADER,
        "10000032,50414267,,,,,,,,,1.0,,,,,",
        "10000764,57375967,,1.0,-1.0,,,,,1.0,,0.0,,,,",
        "10000898,50771383,,,,,,,,,,,,,0.0,",
    ])  # fmt: skip
    write_gz(root / "mimic-cxr-2.0.0-split.csv.gz", [
        "dicom_id,study_id,subject_id,split", *(f"{d},{t},{s},{split}" for d, s, t, _, _, split in MIMIC_IMAGES)
    ])  # fmt: skip
    return root


@pytest.fixture
def mimic_iv_patients(tmp_path: Path) -> Path:
    """mimic-iv/hosp/patients.csv.gz (its own PhysioNet download) for the three MIMIC-CXR patients."""
    return write_gz(tmp_path / "mimic-iv/hosp/patients.csv.gz", [
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod",
        "10000032,F,52,2180,2014 - 2016,2180-09-09",
        "10000764,M,86,2132,2014 - 2016,",
        "10000898,F,91,2150,2008 - 2010,",
    ])  # fmt: skip


@pytest.fixture
def mimic_reports(tmp_path: Path) -> Path:
    """mimic-cxr-reports.zip unpacked: <folder>/files/p10/p10000032/s50414267.txt; returns <folder>."""
    folder = tmp_path / "mimic-cxr-reports"
    for _, subject, study, *_ in MIMIC_IMAGES:
        report = ["                                 FINAL REPORT", f" EXAMINATION:  CHEST ({study})", " IMPRESSION: "]
        write_text(folder / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt", report)
    return folder


def test_mimic_age_at_the_study_split_and_sex(mimic_download, mimic_iv_patients):
    with pytest.warns(UserWarning, match=r"patients.csv.gz: 1 image\(s\) of patients over 89 \(anchor_age 91"):
        cohort = mimic_cxr(mimic_download, patients=mimic_iv_patients)
    images = rows(cohort)
    pa = images["02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"]
    study = mimic_download / "files/p10/p10000032/s50414267"
    assert pa["path"] == str(study / "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg")
    assert pa["age"] == 52.0 and pa["sex"] == "F" and pa["split"] == "train" and pa["view"] == "PA"
    assert pa["no_finding"] == 1 and images["174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962"]["view"] == "lateral"
    later = images["2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab"]
    assert later["age"] == 89.0 and later["sex"] == "M"  # 86 in anchor year 2132, study in 2135 (not anchor_age 86)
    assert later["split"] == "validate" and later["cardiomegaly"] == 1 and value(later["consolidation"]) is None
    capped = images["9f8e7d6c-5b4a3928-17069f8e-7d6c5b4a-39281706"]
    assert value(capped["age"]) is None and capped["sex"] == "F" and capped["split"] == "test"  # over 89: unknown
    assert value(capped["view"]) is None and capped["pneumothorax"] == 0
    assert list(cohort.records["split"]) == ["train", "train", "validate", "test"]
    assert not {"subject_id", "study_id", "study_year", "anchor_age", "report"} & set(cohort.records.columns)


def test_mimic_reports_from_their_own_download(mimic_download, mimic_reports):
    cohort = mimic_cxr(mimic_download, reports=True, reports_root=mimic_reports)
    report = rows(cohort)["174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962"]["report"]
    assert report.startswith("                                 FINAL REPORT\n EXAMINATION:  CHEST (50414267)")
    assert "split" in cohort.records and "age" not in cohort.records  # no patients table: no age, no sex
    missing = mimic_reports / "files/p10/p10000764/s57375967.txt"
    missing.unlink()
    message = rf"1 report file\(s\) not found \(e.g. {re.escape(str(missing))}\); the reports come in MIMIC-CXR's "
    with pytest.raises(FileNotFoundError, match=message + r"mimic-cxr-reports.zip: unpack it into"):
        mimic_cxr(mimic_download, reports=True, reports_root=mimic_reports)
    with pytest.raises(FileNotFoundError, match=r"2.0.0/files: 3 report file\(s\) not found.*mimic-cxr-reports.zip"):
        mimic_cxr(mimic_download, reports=True)  # default: reports under root, where the JPG download has none
    with pytest.raises(ValueError, match="reports_root= says where the reports are, but reports=False"):
        mimic_cxr(mimic_download, reports_root=mimic_reports)


def test_mimic_refuses_a_patients_table_from_another_date_shift(mimic_download, tmp_path):
    other = write_text(tmp_path / "patients.csv", [
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod",
        "10000032,F,18,2199,2014 - 2016,", "10000764,M,30,2100,2014 - 2016,", "10000898,F,40,2150,2008 - 2010,",
    ])  # fmt: skip
    with pytest.raises(ValueError, match=r"patients.csv: image 02aa804e-bde0afdd-112c0b34-7bc16630-4e384014 would be "
                                         r"-1 years old .* use MIMIC-IV's hosp/patients.csv.gz") as error:  # fmt: skip
        mimic_cxr(mimic_download, patients=other)
    assert "\n" not in str(error.value)


def test_mimic_subjects_missing_from_the_patients_table_are_counted(mimic_download, mimic_iv_patients):
    lines = gzip.decompress(mimic_iv_patients.read_bytes()).decode().splitlines()
    write_gz(mimic_iv_patients, lines[:-1])
    with pytest.warns(UserWarning, match=r"1 image\(s\) of subjects not in this table .*\(e.g. subject 10000898\)"):
        images = rows(mimic_cxr(mimic_download, patients=mimic_iv_patients))
    assert value(images["9f8e7d6c-5b4a3928-17069f8e-7d6c5b4a-39281706"]["sex"]) is None


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [
        ("mimic-cxr-2.0.0-split.csv.gz", "{d},{t},{s},val", r"split.csv.gz: line 3, column 'split': split 'val' is"),
        ("mimic-cxr-2.0.0-metadata.csv.gz", "{m}", r"metadata.csv.gz: line 3, column 'StudyDate': StudyDate '2180-"),
    ],
)
def test_mimic_rejects_bad_release_values_naming_file_line_and_column(mimic_download, table, line, message):
    dicom, subject, study, view, _, _ = MIMIC_IMAGES[1]
    bad = line.format(d=dicom, t=study, s=subject, m=metadata_line(dicom, subject, study, view, "2180-05-06", ""))
    lines = gzip.decompress((mimic_download / table).read_bytes()).decode().splitlines()
    write_gz(mimic_download / table, [*lines[:2], bad, *lines[3:]])
    with pytest.raises(ValueError, match=message):
        mimic_cxr(mimic_download)


def test_mimic_images_missing_from_the_split_table_are_named(mimic_download):
    lines = gzip.decompress((mimic_download / "mimic-cxr-2.0.0-split.csv.gz").read_bytes()).decode().splitlines()
    write_gz(mimic_download / "mimic-cxr-2.0.0-split.csv.gz", lines[:-1])
    with pytest.raises(ValueError, match=r"split.csv.gz: 1 image\(s\) of the metadata have no split "
                                         r"\(e.g. 9f8e7d6c-5b4a3928-17069f8e-7d6c5b4a-39281706\)"):  # fmt: skip
        mimic_cxr(mimic_download)


# --- NIH ChestX-ray14 ------------------------------------------------------------------------------------
# Layouts: https://nihcc.app.box.com/v/ChestXray-NIHCC (Data_Entry_2017_v2020.csv, images_001.tar.gz ... all
# unpacking into images/, train_val_list.txt, test_list.txt); the v2020 header and rows with their trailing comma
# as quoted from that source in sunlabuiuc/PyHealth tests/core/test_chestxray14.py. Kaggle nih-chest-xrays/data:
# Data_Entry_2017.csv ("Patient Gender", same trailing comma) and images_001/images ... images_012/images.
# Kaggle nih-chest-xrays/sample: sample_labels.csv with OriginalImageWidth ... columns, ages "060Y", images in
# sample/images/ (as public notebooks read it, e.g. glob('sample/images/*.png') + pd.read_csv('sample_labels.csv')).

NIH_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,{sex},View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")  # fmt: skip
NIH_ROWS = [  # Image Index, Finding Labels, Follow-up #, Patient ID, age, sex, view, width, height, spacing
    ("00000001_000.png", "Cardiomegaly", "0", "1", "57", "M", "PA", "2682", "2749", "0.14300000000000002"),
    ("00000001_001.png", "Cardiomegaly|Emphysema", "1", "1", "58", "M", "PA", "2894", "2729", "0.14300000000000002"),
    ("00000002_000.png", "No Finding", "0", "2", "80", "M", "PA", "2500", "2048", "0.171"),
    ("00000003_001.png", "Hernia", "0", "3", "74", "F", "AP", "2500", "2048", "0.168"),
]
NIH_LISTS = {"train_val_list.txt": ["00000001_000.png", "00000001_001.png", "00000002_000.png"],
             "test_list.txt": ["00000003_001.png"]}  # fmt: skip


def nih_table(sex: str) -> list[str]:
    return [NIH_HEADER.format(sex=sex), *(",".join([*row[:9], row[9], row[9]]) + "," for row in NIH_ROWS)]


def write_lists(folder: Path) -> None:
    for name, images in NIH_LISTS.items():
        write_text(folder / name, images)


@pytest.fixture
def nih_v2020(tmp_path: Path) -> Path:
    """The NIH Box download: Data_Entry_2017_v2020.csv, the two list files, every PNG in images/."""
    root = tmp_path / "ChestXray-NIHCC"
    for number, row in enumerate(NIH_ROWS):
        write_image(root / "images" / row[0], number)
    write_lists(root)
    return write_text(root / "Data_Entry_2017_v2020.csv", nih_table("Patient Sex"))


@pytest.fixture
def nih_kaggle(tmp_path: Path) -> Path:
    """Kaggle nih-chest-xrays/data: Data_Entry_2017.csv, the lists, images_001/images and images_002/images."""
    root = tmp_path / "nih-chest-xrays"
    for number, row in enumerate(NIH_ROWS):
        write_image(root / ("images_001" if number < 3 else "images_002") / "images" / row[0], number)
    write_lists(root)
    return write_text(root / "Data_Entry_2017.csv", nih_table("Patient Gender"))


@pytest.fixture
def nih_sample(tmp_path: Path) -> Path:
    """Kaggle nih-chest-xrays/sample: sample_labels.csv (ages "060Y", no trailing comma) and sample/images/."""
    root = tmp_path / "sample"
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
             "OriginalImageWidth,OriginalImageHeight,OriginalImagePixelSpacing_x,OriginalImagePixelSpacing_y",
             "00000013_005.png,Emphysema|Infiltration|Pleural_Thickening|Pneumothorax,5,13,060Y,M,AP,3056,2544,0.139,0.139",
             "00000013_026.png,Cardiomegaly|Emphysema,26,13,057Y,M,AP,2500,2048,0.168,0.168",
             "00000017_001.png,No Finding,1,17,077Y,M,AP,2500,2048,0.168,0.168"]  # fmt: skip
    for number, line in enumerate(lines[1:]):
        write_image(root / "sample" / "images" / line.split(",")[0], number)
    return write_text(root / "sample_labels.csv", lines)


def test_nih_v2020_reads_patient_sex_images_folder_and_official_split(nih_v2020):
    cohort = nih_chestxray14(nih_v2020)
    images = rows(cohort)
    first = images["00000001_000"]
    assert first["path"] == str(nih_v2020.parent / "images/00000001_000.png") and first["sex"] == "M"
    assert first["age"] == 57.0 and first["cardiomegaly"] == 1 and first["split"] == "train"
    assert images["00000001_001"]["emphysema"] == 1 and images["00000002_000"]["no_finding"] == 1
    hernia = images["00000003_001"]
    assert hernia["sex"] == "F" and hernia["view"] == "AP" and hernia["hernia"] == 1 and hernia["split"] == "test"
    assert set(cohort.records["split"]) == {"train", "test"}
    assert not {"Unnamed: 11", "Height]", "y]", "Follow-up #"} & set(cohort.records.columns)


def test_nih_2017_table_reads_patient_gender_and_kaggle_images_folders(nih_kaggle):
    images = rows(nih_chestxray14(nih_kaggle))
    assert images["00000001_001"]["path"] == str(nih_kaggle.parent / "images_001/images/00000001_001.png")
    assert images["00000003_001"]["path"] == str(nih_kaggle.parent / "images_002/images/00000003_001.png")
    assert images["00000003_001"]["sex"] == "F" and images["00000003_001"]["split"] == "test"
    assert images["00000002_000"]["age"] == 80.0 and images["00000002_000"]["split"] == "train"


def test_nih_sample_reads_dicom_age_strings_without_a_split(nih_sample):
    cohort = nih_chestxray14(nih_sample)
    images = rows(cohort)
    assert images["00000013_005"]["age"] == 60.0 and images["00000013_026"]["age"] == 57.0
    assert images["00000013_005"]["pneumothorax"] == 1 and images["00000013_005"]["pleural_thickening"] == 1
    assert images["00000017_001"]["path"] == str(nih_sample.parent / "sample/images/00000017_001.png")
    assert "split" not in cohort.records  # the sample ships no lists


@pytest.mark.parametrize(
    ("age", "years"), [("011M", 11 / 12), ("003W", 21 / 365.25), ("010D", 10 / 365.25), ("058", 58.0)]
)
def test_nih_age_forms(nih_sample, age, years):
    nih_sample.write_text(nih_sample.read_text().replace("060Y", age))
    assert nih_chestxray14(nih_sample).records["age"].iloc[0] == pytest.approx(years)


def test_nih_rejects_an_age_in_no_known_form(nih_sample):
    nih_sample.write_text(nih_sample.read_text().replace("057Y", "57 years"))
    message = r"sample_labels.csv: line 3, column 'Patient Age': age '57 years' is neither years \(63\) nor a DICOM"
    with pytest.raises(ValueError, match=message + r" age string \(063Y, 011M, 003W, 010D\)"):
        nih_chestxray14(nih_sample)


def test_nih_sex_column_must_be_the_one_of_a_release(nih_v2020):
    nih_v2020.write_text(nih_v2020.read_text().replace("Patient Sex", "Sex"))
    releases = (
        r"'Patient Gender' in Data_Entry_2017.csv, sample_labels.csv; 'Patient Sex' in Data_Entry_2017_v2020.csv"
    )
    with pytest.raises(ValueError, match=rf"v2020.csv: neither of the sex columns \({releases}\)"):
        nih_chestxray14(nih_v2020)
    nih_v2020.write_text(nih_v2020.read_text().replace(",Sex,", ",Patient Sex,").replace("y]", "Patient Gender"))
    with pytest.raises(ValueError, match="v2020.csv: both of the sex columns"):
        nih_chestxray14(nih_v2020)


def test_nih_official_split_errors(nih_v2020):
    folder = nih_v2020.parent
    write_text(folder / "test_list.txt", ["00000003_001.png", "00000002_000.png"])
    with pytest.raises(ValueError, match=r"test_list.txt: line 2: 00000002_000.png is in both lists"):
        nih_chestxray14(nih_v2020)
    write_text(folder / "test_list.txt", ["00000099_000.png"])
    with pytest.raises(ValueError, match=r"v2020.csv: 1 image\(s\) in neither train_val_list.txt nor test_list.txt "
                                         r"\(e.g. 00000003_001.png\)"):  # fmt: skip
        nih_chestxray14(nih_v2020)
    (folder / "test_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_list.txt: not found beside train_val_list.txt; the official "
                                                r"split needs both lists"):  # fmt: skip
        nih_chestxray14(nih_v2020)
