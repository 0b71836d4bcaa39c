"""OASIS-1/2/3 and ADNI read as distributed: tiny copies of each published layout, tables and file formats.

Each builder below copies its release's folder nesting, file naming, table header and value formats (the
sources are named in its docstring); volumes are 16×20×16 so the tests stay fast. The values are invented.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medcf.data.adapters.adni import adni
from medcf.data.adapters.brain import brain_mri
from medcf.data.adapters.oasis import oasis1, oasis2
from medcf.data.adapters.oasis3 import oasis3
from medcf.data.dataset import ImageTextDataset
from medcf.data.io import read_image, write_image
from medcf.data.split import split_by_patient
from medcf.prompts import PromptTemplate

SHAPE = (16, 20, 16)
SLICES = [7, 8]  # two axial slices per volume keep the cohorts small


def analyze(path: Path, seed: int, *, shape: tuple[int, ...] = (*SHAPE, 1)) -> Path:
    """An Analyze 7.5 .img/.hdr pair of int16 voxels, 4-D with a singleton last axis as OASIS ships them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).integers(0, 1000, shape).astype(np.int16)
    nib.save(nib.AnalyzeImage(data, np.diag([1.0, 1.0, 1.0, 1.0])), path)
    return path


def nifti(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).random(SHAPE, dtype=np.float32) * 500
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def write_csv(path: Path, header: str, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def write_oasis1(root: Path) -> Path:
    """OASIS-1 discs as unpacked from oasis_cross-sectional_disc<n>.tar.gz: disc<n>/<ID>/ with RAW/,
    PROCESSED/MPRAGE/{SUBJ_111,T88_111}/ and FSL_SEG/ (OASIS-1 fact sheet; clinica oasis_to_bids reads
    PROCESSED/MPRAGE/SUBJ_111/*.img); table oasis_cross-sectional.csv as on oasis-brains.org and Kaggle
    jboysen/mri-and-alzheimers (blank cells for the young participants' clinical scores, N/A Delay)."""
    sessions = {"disc1": ["OAS1_0001_MR1", "OAS1_0003_MR1", "OAS1_0004_MR1"], "disc2": ["OAS1_0061_MR1"]}
    sessions["disc12"] = ["OAS1_0061_MR2"]  # the reliability rescans come after the 416 first sessions
    for seed, (disc, session) in enumerate((disc, s) for disc, names in sessions.items() for s in names):
        folder, averaged = root / disc / session, "n3" if session == "OAS1_0004_MR1" else "n4"
        analyze(folder / "RAW" / f"{session}_mpr-1_anon.img", seed, shape=(16, 20, 12, 1))
        analyze(folder / "PROCESSED/MPRAGE/SUBJ_111" / f"{session}_mpr_{averaged}_anon_sbj_111.img", seed)
        t88 = folder / "PROCESSED/MPRAGE/T88_111"
        analyze(t88 / f"{session}_mpr_{averaged}_anon_111_t88_gfc.img", seed)
        analyze(t88 / f"{session}_mpr_{averaged}_anon_111_t88_masked_gfc.img", seed + 100)
        (t88 / f"{session}_mpr_{averaged}_anon_111_t88_gfc_tra_90.gif").write_bytes(b"GIF89a")
        analyze(folder / "FSL_SEG" / f"{session}_mpr_{averaged}_anon_111_t88_masked_gfc_fseg.img", seed)
        (folder / f"{session}.xml").write_text("<xnat:MRSession/>")
    return write_csv(
        root / "oasis_cross-sectional.csv",
        "ID,M/F,Hand,Age,Educ,SES,MMSE,CDR,eTIV,nWBV,ASF,Delay",
        [
            "OAS1_0001_MR1,F,R,74,2,3,29,0,1344,0.743,1.306,N/A",
            "OAS1_0002_MR1,F,R,55,4,1,29,0,1147,0.81,1.531,N/A",  # its disc is not downloaded
            "OAS1_0003_MR1,F,R,73,4,3,27,0.5,1454,0.708,1.207,N/A",
            "OAS1_0004_MR1,M,R,28,,,,,1588,0.803,1.105,N/A",
            "OAS1_0061_MR1,F,R,20,,,,,1324,0.827,1.326,N/A",
            "OAS1_0061_MR2,F,R,20,,,,,1318,0.828,1.331,10",
        ],
    )


def write_oasis2(root: Path) -> Path:
    """OASIS-2 as unpacked from OAS2_RAW_PART1/2.tar.gz: OAS2_RAW_PART<n>/<MRI ID>/RAW/mpr-<n>.nifti.img/.hdr
    (clinica oasis2_to_bids docstring; NrgXnat-era Analyze pairs); table oasis_longitudinal.csv (Kaggle
    jboysen/mri-and-alzheimers; first rows as published, SES blank for OAS2_0002). Session numbers can skip."""
    scans = {
        "OAS2_RAW_PART1/OAS2_0001_MR1": (1, 2, 3), "OAS2_RAW_PART1/OAS2_0001_MR2": (1, 2, 3),
        "OAS2_RAW_PART1/OAS2_0002_MR1": (1, 2, 3, 4), "OAS2_RAW_PART1/OAS2_0002_MR2": (1, 2, 3),
        "OAS2_RAW_PART2/OAS2_0002_MR3": (1, 2, 3), "OAS2_RAW_PART2/OAS2_0018_MR1": (1, 2, 3),
        "OAS2_RAW_PART2/OAS2_0018_MR3": (2, 3), "OAS2_RAW_PART2/OAS2_0018_MR4": (1, 2, 3),
    }  # fmt: skip
    for seed, (session, numbers) in enumerate(scans.items()):
        for number in numbers:
            analyze(root / session / "RAW" / f"mpr-{number}.nifti.img", 10 * seed + number)
    return write_csv(
        root / "oasis_longitudinal.csv",
        "Subject ID,MRI ID,Group,Visit,MR Delay,M/F,Hand,Age,EDUC,SES,MMSE,CDR,eTIV,nWBV,ASF",
        [
            "OAS2_0001,OAS2_0001_MR1,Nondemented,1,0,M,R,87,14,2,27,0,1987,0.696,0.883",
            "OAS2_0001,OAS2_0001_MR2,Nondemented,2,457,M,R,88,14,2,30,0,2004,0.681,0.876",
            "OAS2_0002,OAS2_0002_MR1,Demented,1,0,M,R,75,12,,23,0.5,1678,0.736,1.046",
            "OAS2_0002,OAS2_0002_MR2,Demented,2,560,M,R,76,12,,28,0.5,1738,0.713,1.01",
            "OAS2_0002,OAS2_0002_MR3,Demented,3,1895,M,R,80,12,,22,0.5,1698,0.701,1.034",
            "OAS2_0018,OAS2_0018_MR1,Converted,1,0,F,R,87,14,1,30,0,1406,0.715,1.248",
            "OAS2_0018,OAS2_0018_MR3,Converted,3,489,F,R,88,14,1,29,0,1398,0.713,1.255",
            "OAS2_0018,OAS2_0018_MR4,Converted,4,1933,F,R,92,14,1,27,0.5,1423,0.696,1.234",
        ],
    )


def write_oasis3(root: Path) -> Path:
    """OASIS-3 from NITRC-IR by NrgXnat/oasis-scripts: download_oasis_scans.sh gives <dir>/<MR label>/anat<n>/
    sub-<id>_ses-d<days>_run-<nn>_T1w.nii.gz (+ .json), download_oasis_scans_bids.sh gives
    <dir>/sub-<id>/ses-d<days>/anat/; the data-files tables under OASIS3_data_files/scans/<form>/resources/csv/
    files/ (paths as in clinica oasis3_to_bids and published analysis scripts). GENDER: 1 male, 2 female."""
    scans = root / "scans"
    nifti(scans / "OAS30001_MR_d0129/anat1/sub-OAS30001_ses-d0129_run-01_T1w.nii.gz", 1)
    nifti(scans / "OAS30001_MR_d0129/anat2/sub-OAS30001_ses-d0129_run-02_T1w.nii.gz", 2)
    (scans / "OAS30001_MR_d0129/anat1/sub-OAS30001_ses-d0129_run-01_T1w.json").write_text("{}")
    nifti(scans / "OAS30001_MR_d0757/anat3/sub-OAS30001_ses-d0757_run-01_T1w.nii.gz", 3)
    nifti(scans / "OAS30001_MR_d0757/anat5/sub-OAS30001_ses-d0757_acq-TSE_T2w.nii.gz", 4)
    bids = root / "bids"
    nifti(bids / "sub-OAS30002/ses-d0050/anat/sub-OAS30002_ses-d0050_T1w.nii.gz", 5)
    nifti(bids / "sub-OAS30002/ses-d1200/anat/sub-OAS30002_ses-d1200_run-01_T1w.nii.gz", 6)
    nifti(bids / "sub-OAS30003/ses-d2000/anat/sub-OAS30003_ses-d2000_run-01_T1w.nii.gz", 7)
    files = root / "OASIS3_data_files/scans"
    write_csv(
        files / "demo-demographics/resources/csv/files/OASIS3_demographics.csv",
        "OASISID,AgeatEntry,AgeatDeath,EDUC,SES,racecode,race,ETHNIC,HAND,GENDER,APOE",
        ["OAS30001,65.149895,,12,2,1,White,0,R,2,23", "OAS30002,67.206023,,18,1,1,White,0,R,1,34",
         "OAS30003,58.798084,,16,1,1,White,0,R,2,33"],
    )  # fmt: skip
    dx = ",".join(f"dx{n},dx{n}_code" for n in range(1, 6))
    form = "UDSb4-Form_B4__Global_Staging__CDR__Standard_and_Supplemental"
    return write_csv(
        files / form / "resources/csv/files/OASIS3_UDSb4_cdr.csv",
        f"OASISID,OASIS_session_label,days_to_visit,age at visit,MMSE,memory,orient,judgment,commun,homehobb,"
        f"perscare,CDRSUM,CDRTOT,{dx}",
        [
            "OAS30001,OAS30001_UDSb4_d0000,0,65.15,28,0,0,0,0,0,0,0,0,Cognitively normal,,,,,,,,,",
            "OAS30001,OAS30001_UDSb4_d0722,722,67.13,29,0,0,0,0,0,0,0,0,Cognitively normal,,,,,,,,,",
            "OAS30002,OAS30002_UDSb4_d0000,0,67.21,30,0,0,0,0,0,0,0,0,Cognitively normal,,,,,,,,,",
            "OAS30002,OAS30002_UDSb4_d1150,1150,70.35,24,1,0.5,0.5,0.5,0.5,0,3,0.5,AD Dementia,,,,,,,,,",
            "OAS30003,OAS30003_UDSb4_d0000,0,58.8,29,0,0,0,0,0,0,0,0,Cognitively normal,,,,,,,,,",
        ],
    )


ADNI_IMAGES = {  # Image Data ID → (PTID, IDA description folder, acquisition folder, series id)
    "I13722": ("002_S_0295", "MP-RAGE", "2006-04-18_08_20_30.0", "S13408"),
    "I13721": ("002_S_0295", "MP-RAGE_REPEAT", "2006-04-18_08_20_30.0", "S13407"),
    "I55275": ("002_S_0295", "MP-RAGE", "2007-05-25_09_11_02.0", "S32678"),
    "I100001": ("002_S_0295", "MP-RAGE", "2009-06-01_10_02_11.0", "S70001"),
    "I40657": ("002_S_0729", "MPR__GradWarp__B1_Correction__N3__Scaled", "2006-07-17_14_48_33.0", "S16874"),
    "I118671": ("002_S_0729", "MPR__GradWarp__B1_Correction__N3__Scaled", "2008-08-25_13_03_24.0", "S55412"),
    "I31143": ("011_S_0003", "MP-RAGE", "2005-09-12_11_34_50.0", "S9107"),
}


def write_adni(root: Path) -> tuple[Path, Path]:
    """ADNI from the LONI IDA: a collection unpacked as ADNI/<PTID>/<description>/<acquisition date-time>/
    <I-number>/ADNI_<PTID>_MR_<description>_br_raw_<timestamp>_1_<S-number>_<I-number>.nii (older downloads
    use the S-number folder), its collection CSV (clinica/ADNI_DB readers of IDA downloads), and
    ADNIMERGE_<date>.csv beside its ADNIMERGE_DICT_<date>.csv (IDA Study Files; EXAMDATE YYYY-MM-DD, AGE the
    baseline age on every visit, DX per visit, older releases writing conversions as "MCI to Dementia").
    Columns between MMSE and IMAGEUID (cognitive and biomarker scores) and the *_bl copies but EXAMDATE_bl
    are left out of this copy."""
    for image, (subject, description, acquired, series) in ADNI_IMAGES.items():
        folder = root / "ADNI" / subject / description / acquired / (series if image == "I31143" else image)
        stamp = acquired[:10].replace("-", "") + "120000000"
        nifti(folder / f"ADNI_{subject}_MR_{description}_br_raw_{stamp}_1_{series}_{image}.nii", int(image[1:]))
    collection = write_csv(
        root / "ADNI1_brain_ageing_6_13_2024.csv",
        "Image Data ID,Subject,Group,Sex,Age,Visit,Modality,Description,Type,Acq Date,Format,Downloaded",
        [
            "I13722,002_S_0295,CN,M,85,sc,MRI,MP-RAGE,Original,4/18/2006,NiFTI,6/13/2024",
            "I13721,002_S_0295,CN,M,85,sc,MRI,MP-RAGE REPEAT,Original,4/18/2006,NiFTI,6/13/2024",
            "I55275,002_S_0295,CN,M,86,m12,MRI,MP-RAGE,Original,5/25/2007,NiFTI,6/13/2024",
            "I100001,002_S_0295,CN,M,88,m36,MRI,MP-RAGE,Original,6/01/2009,NiFTI,6/13/2024",
            '"I40657","002_S_0729","LMCI","F","65.1","sc","MRI","MPR; GradWarp; B1 Correction; N3; Scaled",'
            '"Processed","7/17/2006","NiFTI","6/13/2024"',
            "I118671,002_S_0729,LMCI,F,67.2,m24,MRI,MPR; GradWarp; B1 Correction; N3; Scaled,Processed,8/25/2008,"
            "NiFTI,6/13/2024",
            "I31143,011_S_0003,AD,M,81.3,sc,MRI,MP-RAGE,Original,9/12/2005,NiFTI,6/13/2024",
        ],
    )
    merge = write_csv(
        root / "ADNIMERGE_18Feb2025.csv",
        "RID,COLPROT,ORIGPROT,PTID,SITE,VISCODE,EXAMDATE,DX_bl,AGE,PTGENDER,PTEDUCAT,PTETHCAT,PTRACCAT,PTMARRY,"
        "APOE4,FDG,PIB,AV45,FBB,ABETA,TAU,PTAU,CDRSB,ADAS11,ADAS13,ADASQ4,MMSE,IMAGEUID,Ventricles,Hippocampus,"
        "WholeBrain,Entorhinal,Fusiform,MidTemp,ICV,DX,EXAMDATE_bl,Years_bl,Month_bl,Month,M,update_stamp",
        [
            "295,ADNI1,ADNI1,002_S_0295,2,bl,2006-04-18,CN,84.8,Male,18,Not Hisp/Latino,White,Married,1,,,,,,,,0,"
            "5,9.67,2,28,13722,,,,,,,,CN,2006-04-18,0,0,0,0,2025-02-18 04:30:11.0",
            "295,ADNI1,ADNI1,002_S_0295,2,m06,2006-11-02,CN,84.8,Male,18,Not Hisp/Latino,White,Married,1,,,,,,,,0,"
            "3,4.67,1,29,,,,,,,,,CN,2006-04-18,0.539357,6.45902,6,6,2025-02-18 04:30:11.0",
            "295,ADNI1,ADNI1,002_S_0295,2,m12,2007-05-25,CN,84.8,Male,18,Not Hisp/Latino,White,Married,1,,,,,,,,0,"
            "4,7,2,28,55275,,,,,,,,CN,2006-04-18,1.10062,13.1803,12,12,2025-02-18 04:30:11.0",
            "729,ADNI1,ADNI1,002_S_0729,2,bl,2006-07-17,LMCI,65.1,Female,16,Not Hisp/Latino,White,Married,1,,,,,,"
            ",,1.5,8.67,14.67,5,27,40657,,,,,,,,MCI,2006-07-17,0,0,0,0,2025-02-18 04:30:11.0",
            "729,ADNI1,ADNI1,002_S_0729,2,m12,2007-07-23,LMCI,65.1,Female,16,Not Hisp/Latino,White,Married,1,,,,,"
            ",,,2,10,17,6,26,,,,,,,,,MCI,2006-07-17,1.01574,12.1639,12,12,2025-02-18 04:30:11.0",
            "729,ADNI1,ADNI1,002_S_0729,2,m24,2008-08-11,LMCI,65.1,Female,16,Not Hisp/Latino,White,Married,1,,,,,"
            ",,,4.5,19,30,9,22,,,,,,,,,MCI to Dementia,2006-07-17,2.06982,24.7869,24,24,2025-02-18 04:30:11.0",
            "3,ADNI1,ADNI1,011_S_0003,11,bl,2005-09-12,AD,81.3,Male,18,Not Hisp/Latino,White,Married,1,,,,,,,,4.5,"
            "22,31,8,20,31143,,,,,,,,,2005-09-12,0,0,0,0,2025-02-18 04:30:11.0",
        ],
    )
    write_csv(root / "ADNIMERGE_DICT_18Feb2025.csv", "FLDNAME,TBLNAME,CRFNAME,TEXT", ["DX,ADNIMERGE,,Diagnosis"])
    return collection, merge


@pytest.fixture
def oasis1_root(tmp_path: Path) -> Path:
    write_oasis1(tmp_path / "oasis1")
    return tmp_path / "oasis1"


@pytest.fixture
def oasis2_root(tmp_path: Path) -> Path:
    write_oasis2(tmp_path / "oasis2")
    return tmp_path / "oasis2"


@pytest.fixture
def oasis3_root(tmp_path: Path) -> Path:
    write_oasis3(tmp_path / "oasis3")
    return tmp_path / "oasis3"


@pytest.fixture
def adni_root(tmp_path: Path) -> Path:
    write_adni(tmp_path / "adni")
    return tmp_path / "adni"


def sessions(cohort) -> dict[str, dict[str, object]]:
    """One record per scan (its first slice row), by session_id, with pandas' missing values as None."""
    first = cohort.records.drop_duplicates("session_id").astype(object)
    return {row["session_id"]: row for row in first.where(first.notna(), None).to_dict("records")}


# --- OASIS-1 ---------------------------------------------------------------------------------------------


def test_oasis1_reads_the_t88_volumes_of_the_discs(oasis1_root):
    cohort = oasis1(oasis1_root, slices=SLICES)
    scans = sessions(cohort)
    assert sorted(scans) == ["OAS1_0001_MR1", "OAS1_0003_MR1", "OAS1_0004_MR1", "OAS1_0061_MR1", "OAS1_0061_MR2"]
    first = scans["OAS1_0001_MR1"]
    assert first["path"] == str(
        oasis1_root / "disc1/OAS1_0001_MR1/PROCESSED/MPRAGE/T88_111/OAS1_0001_MR1_mpr_n4_anon_111_t88_gfc.img"
    )
    assert scans["OAS1_0004_MR1"]["path"].endswith("OAS1_0004_MR1_mpr_n3_anon_111_t88_gfc.img")
    assert (first["patient_id"], first["age"], first["sex"], first["diagnosis"]) == ("OAS1_0001", 74.0, "F", "CN")
    assert first["alzheimers_disease"] == 0 and first["dementia_severity"] is None
    third = scans["OAS1_0003_MR1"]
    assert (third["diagnosis"], third["alzheimers_disease"], third["dementia_severity"]) == ("AD", 1, "very mild")
    assert list(cohort.records["id"][:2]) == ["OAS1_0001_MR1_axial007", "OAS1_0001_MR1_axial008"]
    masked = sessions(oasis1(oasis1_root, masked=True, slices=SLICES))
    assert masked["OAS1_0061_MR2"]["path"].endswith("T88_111/OAS1_0061_MR2_mpr_n4_anon_111_t88_masked_gfc.img")


def test_oasis1_rescans_are_one_patient_in_every_split(oasis1_root):
    cohort = oasis1(oasis1_root, slices=SLICES)
    scans = sessions(cohort)
    assert scans["OAS1_0061_MR1"]["patient_id"] == scans["OAS1_0061_MR2"]["patient_id"] == "OAS1_0061"
    assert cohort.records["patient_id"].nunique() == 4
    for seed in range(20):
        parts = split_by_patient(cohort, {"train": 0.5, "test": 0.5}, seed=seed)
        held = {name: set(part.records["session_id"]) for name, part in parts.items()}
        assert any({"OAS1_0061_MR1", "OAS1_0061_MR2"} <= sessions_of for sessions_of in held.values())


def test_oasis1_blank_cdr_stays_unknown_in_the_prompt(oasis1_root):
    records = oasis1(oasis1_root, slices=SLICES).records
    young = records[records["session_id"] == "OAS1_0004_MR1"].iloc[0]
    assert pd.isna(young["diagnosis"]) and pd.isna(young["alzheimers_disease"])
    assert pd.isna(young["mild_cognitive_impairment"]) and pd.isna(young["dementia_severity"])
    prompt = PromptTemplate("brain MRI", style="table").render(young.to_dict())  # the session id is no clinical field
    assert prompt == "Brain MRI: Patient age: 28. Gender: Male."


def test_oasis_analyze_slices_feed_the_training_dataset(oasis1_root):
    cohort = oasis1(oasis1_root, slices=SLICES)
    row = cohort.records.iloc[0]
    image = read_image(row["path"], index=int(row["slice_index"]), axis="axial")
    stored = np.asarray(nib.load(row["path"]).dataobj)[..., 0]  # (16, 20, 16, 1) on disk
    assert image.shape == (20, 16) and image.provenance.spacing == (1.0, 1.0)
    assert sorted(image.values.ravel()) == sorted(stored[:, :, int(row["slice_index"])].astype(np.float32).ravel())
    item = ImageTextDataset(cohort, PromptTemplate("brain MRI", style="table"), resolution=16)[0]
    assert tuple(item["pixel_values"].shape) == (1, 16, 16) and "Patient age: 74." in item["prompt"]


def test_oasis1_errors_name_the_file_and_the_fix(oasis1_root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no OASIS-1 table \(oasis_cross-sectional\*\.csv or .*pass table="):
        oasis1(empty)
    (empty / "oasis_cross-sectional.csv").write_text((oasis1_root / "oasis_cross-sectional.csv").read_text())
    with pytest.raises(FileNotFoundError, match=r"no OASIS-1 T88_111 gfc volume .*unpack the discs"):
        oasis1(empty)
    table = pd.read_csv(oasis1_root / "oasis_cross-sectional.csv", dtype=str, keep_default_na=False)
    table.drop(index=4).to_csv(oasis1_root / "oasis_cross-sectional.csv", index=False)
    with pytest.raises(ValueError, match=r"oasis_cross-sectional.csv: no row for session\(s\) OAS1_0061_MR1 found"):
        oasis1(oasis1_root)
    table.assign(CDR=["0", "0", "4", "", "", ""]).to_csv(oasis1_root / "oasis_cross-sectional.csv", index=False)
    with pytest.raises(ValueError, match=r"line 4, column 'CDR': CDR '4' is not a Clinical Dementia Rating"):
        oasis1(oasis1_root)
    table.to_csv(oasis1_root / "oasis_cross-sectional.csv", index=False)
    copy = oasis1_root / "disc3/OAS1_0001_MR1/PROCESSED/MPRAGE/T88_111/OAS1_0001_MR1_mpr_n4_anon_111_t88_gfc.img"
    analyze(copy, 0)
    with pytest.raises(ValueError, match=r"OAS1_0001_MR1: 2 T88_111 gfc files .*keep one copy"):
        oasis1(oasis1_root)


# --- OASIS-2 ---------------------------------------------------------------------------------------------


def test_oasis2_reads_one_raw_scan_per_visit_with_the_visit_diagnosis(oasis2_root):
    cohort = oasis2(oasis2_root, slices=SLICES)
    scans = sessions(cohort)
    assert len(scans) == 8 and cohort.records["patient_id"].nunique() == 3
    first = scans["OAS2_0001_MR1"]
    assert first["path"] == str(oasis2_root / "OAS2_RAW_PART1/OAS2_0001_MR1/RAW/mpr-1.nifti.img")
    assert scans["OAS2_0018_MR3"]["path"].endswith("OAS2_0018_MR3/RAW/mpr-2.nifti.img")  # no mpr-1 there
    assert (first["patient_id"], first["age"], first["sex"]) == ("OAS2_0001", 87.0, "M")
    assert [scans[f"OAS2_0002_MR{n}"]["age"] for n in (1, 2, 3)] == [75.0, 76.0, 80.0]
    converted = [scans[f"OAS2_0018_MR{n}"]["diagnosis"] for n in (1, 3, 4)]
    assert converted == ["CN", "CN", "AD"] and scans["OAS2_0018_MR4"]["dementia_severity"] == "very mild"
    assert {scans[f"OAS2_0002_MR{n}"]["diagnosis"] for n in (1, 2, 3)} == {"AD"}


def test_oasis2_table_override_and_errors(oasis2_root, tmp_path):
    moved = tmp_path / "tables" / "demographics.csv"
    moved.parent.mkdir()
    (oasis2_root / "oasis_longitudinal.csv").rename(moved)
    with pytest.raises(FileNotFoundError, match=r"no OASIS-2 table \(oasis_longitudinal\*\.csv or "):
        oasis2(oasis2_root)
    assert len(sessions(oasis2(oasis2_root, table=moved, slices=SLICES))) == 8
    (oasis2_root / "oasis_longitudinal.csv").write_text(moved.read_text())
    (oasis2_root / "old").mkdir()
    (oasis2_root / "old" / "oasis_longitudinal.csv").write_text(moved.read_text())
    with pytest.raises(ValueError, match=r"several OASIS-2 table files match .*pass table=<the one>"):
        oasis2(oasis2_root)
    with pytest.raises(ValueError, match=r"axis 'oblique' unknown"):
        oasis2(oasis2_root, axis="oblique")


# --- OASIS-3 ---------------------------------------------------------------------------------------------


def test_oasis3_reads_both_download_layouts_with_age_at_the_scan(oasis3_root):
    cohort = oasis3(oasis3_root, slices=SLICES)
    scans = sessions(cohort)
    assert sorted(scans) == [
        "OAS30001_MR_d0129", "OAS30001_MR_d0757", "OAS30002_MR_d0050", "OAS30002_MR_d1200", "OAS30003_MR_d2000",
    ]  # fmt: skip
    first = scans["OAS30001_MR_d0129"]
    assert first["path"].endswith("OAS30001_MR_d0129/anat1/sub-OAS30001_ses-d0129_run-01_T1w.nii.gz")
    assert scans["OAS30001_MR_d0757"]["path"].endswith("anat3/sub-OAS30001_ses-d0757_run-01_T1w.nii.gz")
    assert first["patient_id"] == "OAS30001" and first["sex"] == "F" and scans["OAS30002_MR_d0050"]["sex"] == "M"
    assert first["age"] == pytest.approx(65.149895 + 129 / 365.25)
    assert scans["OAS30002_MR_d1200"]["age"] == pytest.approx(67.206023 + 1200 / 365.25)
    diagnoses = {session: scan["diagnosis"] for session, scan in scans.items()}
    assert diagnoses == {
        "OAS30001_MR_d0129": "CN", "OAS30001_MR_d0757": "CN", "OAS30002_MR_d0050": "CN",
        "OAS30002_MR_d1200": "AD", "OAS30003_MR_d2000": None,  # its only rated visit is 2000 days earlier
    }  # fmt: skip
    assert sessions(oasis3(oasis3_root, slices=SLICES, max_days=30))["OAS30001_MR_d0757"]["diagnosis"] is None


def test_oasis3_errors(oasis3_root):
    table = oasis3_root / "OASIS3_data_files/scans/demo-demographics/resources/csv/files/OASIS3_demographics.csv"
    text = table.read_text()
    table.write_text(text.replace("White,0,R,1,34", "White,0,R,M,34"))
    with pytest.raises(ValueError, match=r"demographics.csv: line 3, column 'GENDER': GENDER 'M' not understood"):
        oasis3(oasis3_root)
    table.write_text("\n".join(line for line in text.splitlines() if not line.startswith("OAS30003")) + "\n")
    with pytest.raises(ValueError, match=r"OASIS3_demographics.csv: no row for participant OAS30003"):
        oasis3(oasis3_root)
    table.unlink()
    with pytest.raises(FileNotFoundError, match=r"no OASIS-3 demographics .*pass demographics=<its path>"):
        oasis3(oasis3_root)


# --- ADNI ------------------------------------------------------------------------------------------------


def test_adni_finds_each_image_by_its_id_and_merges_adnimerge_by_visit(adni_root):
    cohort = adni(adni_root, slices=SLICES)
    scans = sessions(cohort)
    assert len(scans) == 7 and cohort.records["patient_id"].nunique() == 3
    first = scans["002_S_0295_I13722"]
    assert first["path"] == str(
        adni_root / "ADNI/002_S_0295/MP-RAGE/2006-04-18_08_20_30.0/I13722/"
        "ADNI_002_S_0295_MR_MP-RAGE_br_raw_20060418120000000_1_S13408_I13722.nii"
    )
    assert scans["011_S_0003_I31143"]["path"].endswith("2005-09-12_11_34_50.0/S9107/" + (
        "ADNI_011_S_0003_MR_MP-RAGE_br_raw_20050912120000000_1_S9107_I31143.nii"))  # fmt: skip
    assert (first["patient_id"], first["sex"], first["age"], first["diagnosis"]) == ("002_S_0295", "M", 84.8, "CN")
    assert scans["002_S_0295_I55275"]["age"] == pytest.approx(84.8 + 1.10062)
    late = scans["002_S_0295_I100001"]  # 738 days after the last ADNIMERGE visit: age exact, diagnosis unknown
    assert late["age"] == pytest.approx(84.8 + 1.10062 + 738 / 365.25) and late["diagnosis"] is None
    converter = scans["002_S_0729_I118671"]  # 14 days after the m24 visit, DX "MCI to Dementia"
    assert converter["diagnosis"] == "AD" and converter["age"] == pytest.approx(65.1 + 2.06982 + 14 / 365.25)
    assert scans["002_S_0729_I40657"]["diagnosis"] == "MCI" and scans["002_S_0729_I40657"]["age"] == 65.1
    assert scans["002_S_0729_I40657"]["mild_cognitive_impairment"] == 1
    assert scans["011_S_0003_I31143"]["diagnosis"] == "AD"  # bl visit with DX blank: DX_bl


def test_adni_without_adnimerge_uses_the_collection(adni_root, tmp_path):
    (adni_root / "ADNIMERGE_18Feb2025.csv").rename(tmp_path / "ADNIMERGE_18Feb2025.csv")
    scans = sessions(adni(adni_root, slices=SLICES))
    assert scans["002_S_0729_I118671"]["diagnosis"] == "MCI" and scans["002_S_0729_I118671"]["age"] == 67.2
    merged = sessions(adni(adni_root, adnimerge=tmp_path / "ADNIMERGE_18Feb2025.csv", slices=SLICES))
    assert merged["002_S_0729_I118671"]["diagnosis"] == "AD"


def test_adni_errors_name_the_file_and_the_fix(adni_root, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no IDA collection CSV .*pass collection_csv=<its path>"):
        adni(tmp_path / "empty")
    collection = adni_root / "ADNI1_brain_ageing_6_13_2024.csv"
    text = collection.read_text()
    collection.write_text(text + "I999999,002_S_0295,CN,M,90,m48,MRI,MP-RAGE,Original,6/01/2010,DCM,6/13/2024\n")
    with pytest.raises(FileNotFoundError, match=r"1 listed image\(s\) have no NIfTI file .*I999999.*need the NIfTI"):
        adni(adni_root)
    collection.write_text(text.replace("4/18/2006", "2006.04.18", 1))
    with pytest.raises(ValueError, match=r"line 2, column 'Acq Date': date '2006.04.18' not understood"):
        adni(adni_root)
    collection.write_text(text)
    merge = adni_root / "ADNIMERGE_18Feb2025.csv"
    merge.write_text(merge.read_text().replace("MCI to Dementia", "MCI to Demented"))
    with pytest.raises(ValueError, match=r"ADNIMERGE_18Feb2025.csv: line 7, column 'DX': diagnosis 'MCI to Demented'"):
        adni(adni_root)


# --- the generic layout ----------------------------------------------------------------------------------


def test_brain_mri_reads_analyze_4d_volumes_and_keeps_blank_cdr_unknown(tmp_path):
    root = tmp_path / "brains"
    analyze(root / "s1" / "PROCESSED" / "s1_t88_gfc.img", 1)  # (16, 20, 16, 1): one 3-D volume
    nifti(root / "s2.nii.gz", 2)
    write_csv(root / "table.csv", "subject_id,Age,CDR", ["s1,70,", "s2,71,1"])
    records = brain_mri(root, root / "table.csv", slices=SLICES).records
    s1, s2 = records.iloc[0], records.iloc[2]
    assert s1["path"].endswith("s1/PROCESSED/s1_t88_gfc.img") and list(records["slice_index"][:2]) == SLICES
    assert pd.isna(s1["diagnosis"]) and pd.isna(s1["alzheimers_disease"]) and pd.isna(s1["dementia_severity"])
    assert (s2["diagnosis"], s2["alzheimers_disease"], s2["dementia_severity"]) == ("AD", 1, "mild")
    prompt = PromptTemplate("brain MRI", style="table").render(s1.to_dict())
    assert "Alzheimer" not in prompt and "cognitive" not in prompt
    write_csv(root / "adni.csv", "subject_id,DX", ["s1,MCI to Dementia", "s2,Dementia to MCI"])
    converted = brain_mri(root, root / "adni.csv", slices=SLICES).records
    assert list(converted["diagnosis"][::2]) == ["AD", "MCI"]


def test_reader_squeezes_singleton_axes_and_reads_but_never_writes_analyze(tmp_path):
    pair = analyze(tmp_path / "mpr-1.nifti.img", 3)
    by_header = read_image(tmp_path / "mpr-1.nifti.hdr", index=2, axis="sagittal")
    by_image = read_image(pair, index=2, axis="sagittal")
    assert by_header.shape == by_image.shape == (16, 20) and (by_header.values == by_image.values).all()
    five = tmp_path / "five.nii"
    nib.save(nib.Nifti1Image(np.ones((*SHAPE, 1, 1), np.float32), np.eye(4)), five)
    assert read_image(five, index=0).shape == (20, 16)
    with pytest.raises(ValueError, match=r"out\.img: medcf reads Analyze \.img/\.hdr but does not write it"):
        write_image(tmp_path / "out.img", by_image.pixels, like=by_image)
