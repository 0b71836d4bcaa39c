"""Tiny real-format copies of each supported dataset layout (PNG/JPEG by PIL, NIfTI by nibabel, CSV, xlsx)."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

# The release-layout fixtures, shared with the tests that read every release through one entry point.
from test_adapters_brain_layouts import adni_root, oasis1_root, oasis2_root, oasis3_root  # noqa: E402, F401
from test_adapters_cxr_layouts import chexpert_kaggle, mimic_download, nih_v2020  # noqa: E402, F401


@pytest.fixture
def medcf_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """`medcf ARGS` in this process, through the console entry point's own code (medcf.cli.main), in `cwd` if
    given: a command checked without a new interpreter's 5–8 s of imports. Returns what `test_cli.medcf` (the real
    subprocess, kept for the paths that need one) returns."""
    from medcf.cli import main

    def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["medcf", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exit_:  # typer exits 0 after a command; main exits 1 after its one-line error
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(sys.argv, code, captured.out, captured.err)

    return run


CHEXPERT_LABELS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
]  # fmt: skip


def gradient(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 image with structure (a ramp plus noise), so crops and resizes are visible."""
    ramp = np.linspace(0, 200, width)[None, :] + np.linspace(0, 40, height)[:, None]
    noise = np.random.default_rng(seed).integers(0, 15, (height, width))
    return (ramp + noise).clip(0, 255).astype(np.uint8)


def square_mask(height: int, width: int) -> np.ndarray:
    """0/255 mask with the central half set."""
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : height - height // 4, width // 4 : width - width // 4] = 255
    return mask


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def covid_root(tmp_path: Path) -> Path:
    """COVID-19_Radiography_Dataset with 36×36 images and 24×24 masks (the real set: 299² and 256²)."""
    root = tmp_path / "COVID-19_Radiography_Dataset"
    counts = {"COVID": 2, "Lung_Opacity": 1, "Normal": 2, "Viral Pneumonia": 1}
    for name, count in counts.items():
        for number in range(1, count + 1):
            save(root / name / "images" / f"{name}-{number}.png", gradient(36, 36, number))
            save(root / name / "masks" / f"{name}-{number}.png", square_mask(24, 24))
    metadata = {"FILE NAME": ["COVID-1", "COVID-2"], "FORMAT": "PNG", "SIZE": "256*256", "URL": "https://x"}
    pd.DataFrame(metadata).to_excel(root / "COVID.metadata.xlsx", index=False)
    normal = {"FILE NAME": ["NORMAL-1", "NORMAL-2"], "FORMAT": "PNG", "SIZE": "256*256", "URL": "https://y"}
    pd.DataFrame(normal).to_excel(root / "Normal.metadata.xlsx", index=False)
    (root / "README.md.txt").write_text("COVID-19 Radiography Database\n")
    (root / "notes").mkdir()
    return root


def chexpert_rows() -> list[dict[str, object]]:
    blank = dict.fromkeys(CHEXPERT_LABELS, "")
    return [
        {**blank, "Path": "patient00001/study1/view1_frontal.jpg", "Sex": "Female", "Age": "68",
         "Frontal/Lateral": "Frontal", "AP/PA": "AP", "No Finding": "1.0", "Support Devices": "1.0"},
        {**blank, "Path": "patient00001/study1/view2_lateral.jpg", "Sex": "Female", "Age": "68",
         "Frontal/Lateral": "Lateral", "AP/PA": "", "Cardiomegaly": "1.0", "Pleural Effusion": "-1.0"},
        {**blank, "Path": "patient00002/study1/view1_frontal.jpg", "Sex": "Male", "Age": "87",
         "Frontal/Lateral": "Frontal", "AP/PA": "PA", "Edema": "1.0", "Pleural Effusion": "0.0",
         "Pneumonia": "-1.0"},
        {**blank, "Path": "patient00003/study2/view1_frontal.jpg", "Sex": "Unknown", "Age": "55",
         "Frontal/Lateral": "Frontal", "AP/PA": "AP", "Fracture": "-1.0"},
    ]  # fmt: skip


@pytest.fixture
def chexpert_csv(tmp_path: Path) -> Path:
    """CheXpert-v1.0-small/train.csv with paths that start with the dataset folder, as released."""
    folder = tmp_path / "CheXpert-v1.0-small"
    rows = chexpert_rows()
    for number, row in enumerate(rows):
        save(folder / "train" / str(row["Path"]), gradient(40, 32, number))
        row["Path"] = f"CheXpert-v1.0-small/train/{row['Path']}"
    pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
    return folder / "train.csv"


def write_gz_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_bytes(gzip.compress(pd.DataFrame(rows).to_csv(index=False).encode()))


@pytest.fixture
def mimic_root(tmp_path: Path) -> Path:
    """MIMIC-CXR-JPG: two studies of patient 10000032, one of 10000898; MIMIC-IV patients.csv."""
    root = tmp_path / "mimic-cxr-jpg"
    images = [("d1", "10000032", "50414267", "PA", "21800506"),
              ("d2", "10000032", "50414267", "LATERAL", "21800506"),
              ("d3", "10000032", "53189527", "AP", "21830101"),
              ("d4", "10000898", "50771383", "LAO", "21520707")]  # fmt: skip
    for number, (dicom, subject, study, *_) in enumerate(images):
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        save(folder / f"{dicom}.jpg", gradient(30, 30, number))
        (folder.parent / f"s{study}.txt").write_text(f"FINDINGS: study {study}.\n")
    metadata = [
        {"dicom_id": d, "subject_id": s, "study_id": t, "ViewPosition": v, "StudyDate": date}
        for d, s, t, v, date in images
    ]  # the release has more columns (tests/test_adapters_cxr_layouts.py copies them all)
    write_gz_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", metadata)
    blank = dict.fromkeys(CHEXPERT_LABELS, "")
    labels = [
        {"subject_id": "10000032", "study_id": "50414267", **blank, "No Finding": "1.0"},
        {"subject_id": "10000032", "study_id": "53189527", **blank, "Edema": "-1.0", "Cardiomegaly": "1.0"},
        {"subject_id": "10000898", "study_id": "50771383", **blank, "Pneumothorax": "0.0"},
    ]
    write_gz_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", labels)
    patients = [
        {"subject_id": "10000032", "gender": "F", "anchor_age": "52", "anchor_year": "2180"},
        {"subject_id": "10000898", "gender": "M", "anchor_age": "91", "anchor_year": "2150"},
    ]
    pd.DataFrame(patients).to_csv(root / "patients.csv", index=False)
    return root


@pytest.fixture
def nih_csv(tmp_path: Path) -> Path:
    """Data_Entry_2017.csv with images spread over images_001/images and images_002/images."""
    root = tmp_path / "nih"
    rows = [
        ("00000001_000.png", "Cardiomegaly|Effusion", "0", "1", "58", "M", "PA", "images_001"),
        ("00000001_001.png", "No Finding", "1", "1", "59", "M", "AP", "images_001"),
        ("00000002_000.png", "Hernia", "0", "2", "81", "F", "PA", "images_002"),
    ]
    for number, (name, *_, folder) in enumerate(rows):
        save(root / folder / "images" / name, gradient(32, 32, number))
    columns = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
               "Patient Gender", "View Position", "OriginalImage[Width", "Height]",
               "OriginalImagePixelSpacing[x", "y]"]  # fmt: skip
    table = [[*row[:7], "2500", "2048", "0.143", "0.143"] for row in rows]
    pd.DataFrame(table, columns=columns).to_csv(root / "Data_Entry_2017.csv", index=False)
    return root / "Data_Entry_2017.csv"


def write_volume(path: Path, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """A float32 NIfTI volume with a 1 mm RAS+ affine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).random(shape, dtype=np.float32) * 100
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


@pytest.fixture
def oasis(tmp_path: Path) -> tuple[Path, Path]:
    """OASIS-1 style: OAS1_0001_MR1.nii.gz at the root, OAS1_0002_MR1/ holding its volume; M/F, Age, CDR."""
    root = tmp_path / "oasis"
    write_volume(root / "OAS1_0001_MR1.nii.gz", (12, 14, 8), seed=1)
    write_volume(root / "OAS1_0002_MR1" / "PROCESSED" / "brain.nii.gz", (12, 14, 8), seed=2)
    table = pd.DataFrame(
        {
            "ID": ["OAS1_0001_MR1", "OAS1_0002_MR1"],
            "M/F": ["F", "M"],
            "Age": ["74", "55"],
            "CDR": ["0.5", "0"],
        }
    )
    table.to_csv(root / "oasis_cross-sectional.csv", index=False)
    return root, root / "oasis_cross-sectional.csv"


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """The generic layout: 40×32 images, masks of the same size, canonical and other columns."""
    root = tmp_path / "cohort"
    rows = []
    for number, (patient, sex, smoking, nodule) in enumerate(
        [
            ("p1", "F", "never", "0"),
            ("p1", "F", "never", "1"),
            ("p2", "M", "current", "1"),
            ("p3", "M", "", ""),
        ]
    ):
        save(root / "images" / f"img{number}.png", gradient(40, 32, number))
        save(root / "masks" / f"img{number}.png", square_mask(40, 32))
        rows.append({"id": f"img{number}", "patient_id": patient, "path": f"images/img{number}.png",
                     "mask_path": f"masks/img{number}.png", "age": str(60 + number), "sex": sex,
                     "smoking": smoking, "nodule": nodule, "pack_years": str(number * 10)})  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-CPU box: OpenMP threads spin-wait against other processes (10-50× slower)."""

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cxr_synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small semi-synthetic chest X-ray cohort (32 px, with masks) shared by the training tests."""
    from medcf.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("cxr-synth") / "cxr"
    return synthesize("cxr", root, n=24, size=32, seed=0, counterfactuals=False, progress=False)


OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@contextmanager
def no_network() -> Iterator[list[str]]:
    """Every outbound connection and name lookup fails (and is recorded) while the block runs, with the
    Hugging Face offline switches set: code that reaches for the network shows up in the returned list."""
    attempts: list[str] = []

    def refuse(what: str):
        def refused(*args, **kwargs):
            attempts.append(f"{what}{args[1:2] if what == 'connect' else args[:2]}")
            raise OSError(f"network blocked by the test: {what}")

        return refused

    with pytest.MonkeyPatch.context() as patch:
        for name, value in OFFLINE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.setattr(socket.socket, "connect", refuse("connect"))
        patch.setattr(socket.socket, "connect_ex", refuse("connect"))
        patch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
        yield attempts


def few_step_copy(name: str, folder: Path, steps: int = 4) -> Path:
    """The shipped model `name`'s files linked (not copied) into `folder`/`name` with a `steps`-step sampler, so
    a tour of it runs in seconds."""
    import json

    from medcf.pretrained import SAMPLING_FILE, pretrained_path

    copy = folder / name
    copy.mkdir()
    for entry in pretrained_path(name).iterdir():
        if entry.name != SAMPLING_FILE:
            (copy / entry.name).symlink_to(entry)
    settings = json.loads((pretrained_path(name) / SAMPLING_FILE).read_text())
    (copy / SAMPLING_FILE).write_text(json.dumps({**settings, "num_inference_steps": steps}))
    return copy
