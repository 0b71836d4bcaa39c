"""Hostile inputs (reliability): each gets one line naming the file and the fix, exit code 1, no output left.

The table runs in process through `medcf.cli.main`, the console entry point's own code (test_cli.py covers
the subprocess path), on files the fixture writes in the real formats. The readers', tables' and model
folders' cases also go through the Python API and must raise the same message.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medcf.data import read_image
from medcf.data.table import load_table
from medcf.models import load_components
from medcf.pretrained import pretrained_path

MODEL, OUT = ("--model", "{t}/model"), ("--out", "{t}/out")
GENERATE = "generate", *MODEL, "--prompt", "A chest X-ray.", "--n", "1", "--steps", "1"
COUNTERFACTUAL = "counterfactual", *MODEL, "--set", "age=80", "--steps", "1", *OUT
INPAINT = "inpaint", *MODEL, "--image", "{t}/grey.png", "--prompt", "A chest X-ray.", "--steps", "1"

READERS = [  # (case, file, message): `medcf info FILE` and read_image(FILE)
    ("zero-byte PNG", "zero.png", "zero.png: empty file (0 bytes); re-export"),
    ("zero-byte DICOM", "zero.dcm", "zero.dcm: empty file (0 bytes)"),
    ("zero-byte NIfTI", "zero.nii.gz", "zero.nii.gz: empty file (0 bytes)"),
    ("truncated PNG", "cut.png", "cut.png: truncated or corrupt PNG"),
    ("truncated DICOM", "cut.dcm", "cut.dcm: cannot decode the pixel data"),
    ("DICOM without transfer syntax", "nometa.dcm", "nometa.dcm: DICOM file meta lacks a Transfer Syntax UID"),
    ("text named .dcm", "text.dcm", "text.dcm: not a DICOM file (no 'DICM' file meta header)"),
    ("truncated NIfTI", "cut.nii.gz", "cut.nii.gz: not a readable NIfTI"),
    ("text named .png", "text.png", "text.png: not a readable PNG or JPEG"),
    ("PNG header of 100000² px", "huge.png", "huge.png: image of more pixels than Pillow's decompression-bomb"),
    ("DICOM header of 40000 rows", "huge.dcm", "huge.dcm: image of 128 x 40000 pixels is over medcf's limit"),
    ("4-D NIfTI", "fmri.nii.gz", "fmri.nii.gz: 4-D NIfTI with 3 volumes; pick one"),
    ("NaN voxels", "nan.nii.gz", "nan.nii.gz: 1024 NaN/Inf voxels; replace them"),
    ("Inf voxels", "inf.nii.gz", "inf.nii.gz: 1024 NaN/Inf voxels"),
    ("complex NIfTI", "complex.nii.gz", "complex.nii.gz: NIfTI of complex64 voxels; medcf reads real-valued"),
    ("16-bit RGB PNG", "rgb16.png", "rgb16.png: 16-bit RGB PNG; Pillow would decode it at 8 bits"),
    ("unknown suffix", "notes.txt", "notes.txt: unsupported file type '.txt'"),
    ("path that does not exist", "absent.png", "absent.png: no such file; check the path"),
    ("a folder, not a file", "folder", "folder: a folder, not an image file"),
]
TABLES = [  # (case, file, message): `medcf prompts --csv FILE`; load_table where the table itself is wrong
    ("empty CSV", "empty.csv", "empty.csv: file is empty; write a header line"),
    ("header only", "header.csv", "header.csv: table has a header but no rows"),
    ("missing id column", "noid.csv", "noid.csv: missing column(s) ['id']"),
    ("duplicate ids", "dup.csv", "dup.csv: 1 duplicate value(s) in id column 'id'"),
    ("non-UTF-8 text", "latin1.csv", "latin1.csv: not UTF-8 text (line 2, byte 0xE9)"),
    ("non-numeric age", "age.csv", "age.csv: line 2: age value 'forty' is not a number"),
    ("unknown label code", "code.csv", "code.csv: line 2: finding column 'nodule' value '7' not understood"),
]
MODELS = [  # (case, folder, message): `medcf generate --model FOLDER` and load_components(FOLDER)
    ("model folder absent", "absent-model", "absent-model: no model_index.json"),
    ("model without unet", "no-unet", "no-unet: missing subfolders ['unet']"),
    ("SDXL model folder", "sdxl", "sdxl/model_index.json: names StableDiffusionXLPipeline with text_encoder_2"),
    ("truncated U-Net weights", "cut-weights", "cut-weights/unet: cannot load these weights"),
    ("model_index.json not JSON", "bad-index", "bad-index/model_index.json: not valid JSON"),
]
COMMANDS = [  # (case, CLI args, message)
    ("colour photo as the scan", [*COUNTERFACTUAL, "--image", "{t}/photo.png"], "photo.png: a colour image"),
    (
        "mask of another shape",
        [*INPAINT, "--mask", "{t}/wide-mask.png", *OUT],
        "wide-mask.png: mask is 64×32 px but the image is 64×64",
    ),
    ("empty mask", [*INPAINT, "--mask", "{t}/empty-mask.png", *OUT], "empty-mask.png: the mask is empty"),
    ("colour mask", [*INPAINT, "--mask", "{t}/photo.png", *OUT], "photo.png: a colour mask"),
    (
        "unknown edit field",
        ["counterfactual", *MODEL, "--image", "{t}/grey.png", "--set", "shoe=5", *OUT],
        "edit 'shoe=5': unknown field 'shoe'",
    ),
    (
        "prompt over 77 tokens",
        ["generate", *MODEL, "--prompt", "word " * 90, *OUT],
        "is 92 tokens; the model's text encoder reads 77",
    ),
    ("--out is a file", [*GENERATE, "--out", "{t}/grey.png"], "grey.png: a file, not a folder"),
    ("--out below a file", [*GENERATE, "--out", "{t}/grey.png/run"], "grey.png is a file, not a folder"),
    ("--out not writable", [*GENERATE, "--out", "/proc/medcf-run"], "cannot write in /proc"),
    ("--out not empty", [*GENERATE, "--out", "{t}/folder"], "folder: folder is not empty; pass a new --out"),
    ("config not YAML", ["train", "--config", "{t}/bad.yaml", *OUT], "bad.yaml: cannot read the config"),
    ("unknown config key", ["train", "--set", "train.nonsense=3", *OUT], "unknown key 'train.nonsense'"),
    (
        "dataset folder absent",
        ["train", "--set", "data.root={t}/absent", *OUT],
        "absent/metadata.csv: dataset table not found",
    ),
    ("unsupported output format", ["convert", "{t}/grey.png", "{t}/grey.bmp"], "grey.bmp: unsupported output suffix"),
    # issue 25's table: numbers checked before any work, code never run from a config, unreadable prompts named
    ("negative steps", [*GENERATE[:-2], "--steps", "-5", *OUT], "--steps -5: must be ≥ 1"),
    ("zero steps", [*COUNTERFACTUAL[:-4], "--image", "{t}/grey.png", "--steps", "0", *OUT], "--steps 0: must be ≥ 1"),
    ("zero batch size", [*GENERATE, "--batch-size", "0", *OUT], "--batch-size 0: must be ≥ 1"),
    ("seed past 64 bits", [*GENERATE, "--seed", "18446744073709551616", *OUT], "--seed 18446744073709551616: must"),
    ("NaN guidance", [*GENERATE, "--guidance", "nan", *OUT], "--guidance nan: must be a finite number"),
    ("infinite drift", [*GENERATE, "--drift", "0,inf,0,0", *OUT], "--drift inf: must be a finite number"),
    ("negative sigma", ["attribute", *MODEL, "--image", "{t}/grey.png", "--sigma", "-1", *OUT], "--sigma -1.0: must"),
    ("strength past 1", [*COUNTERFACTUAL, "--image", "{t}/grey.png", "--strength", "2"], "--strength 2.0: must be in"),
    ("negative max_steps", ["train", "--set", "train.max_steps=-5", *OUT], "train.max_steps=-5: must be ≥ 1"),
    ("a 7 px model", ["train", "--set", "data.resolution=7", *OUT], "data.resolution=7: must be a multiple of 8"),
    (
        "a filter that runs code",
        ["train", "--set", "data.root={t}/data", "--set", "data.filter=age.__class__.__init__.__globals__", *OUT],
        "data.filter='age.__class__.__init__.__globals__'",
    ),
    (
        "a 10,000-character prompt",
        ["generate", *MODEL, "--prompt", "x" * 10_000, *OUT],
        "the text encoder cannot read 'xxxxxxxxxxxxxxxxxxxx…'",
    ),
    ("a device that is absent", [*GENERATE, "--device", "tpu", *OUT], "device='tpu': unknown; choose auto, cpu"),
]


@pytest.fixture(scope="module")
def t(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of hostile files in the real formats, and broken copies of the shipped model."""
    root = tmp_path_factory.mktemp("hostile")
    _write_images(root)
    _write_tables(root)
    _write_models(root)
    return root


def _png(path: Path, width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> None:
    """A PNG written chunk by chunk: Pillow writes neither 16-bit RGB nor a header without pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    pixels = b"" if rows is None else chunk(b"IDAT", zlib.compress(rows))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + pixels + chunk(b"IEND", b""))


def _write_images(root: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(root / "grey.png")
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(root / "photo.png")
    Image.fromarray(np.full((32, 64), 255, np.uint8)).save(root / "wide-mask.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "empty-mask.png")
    for name in ("zero.png", "zero.dcm", "zero.nii.gz"):
        (root / name).write_bytes(b"")
    (root / "cut.png").write_bytes((root / "grey.png").read_bytes()[:300])
    ct = Path(get_testdata_file("CT_small.dcm"))
    (root / "cut.dcm").write_bytes(ct.read_bytes()[:20000])
    (root / "nometa.dcm").write_bytes(bytes(128) + b"DICM" + bytes(range(256)))
    (root / "text.dcm").write_text("not dicom at all")
    (root / "text.png").write_text("hello")
    (root / "notes.txt").write_text("x")
    _png(root / "huge.png", 100_000, 100_000, 8, 0, rows=None)
    rgb16 = b"".join(b"\x00" + np.full((4, 3), 40_000, ">u2").tobytes() for _ in range(4))  # filter byte + row
    _png(root / "rgb16.png", 4, 4, 16, 2, rows=rgb16)
    dataset = pydicom.dcmread(ct)
    dataset.Rows = 40_000
    dataset.save_as(root / "huge.dcm")
    volume = np.zeros((16, 16, 4), np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), root / "ok.nii.gz")
    (root / "cut.nii.gz").write_bytes((root / "ok.nii.gz").read_bytes()[:40])
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.float32), np.eye(4)), root / "fmri.nii.gz")
    nib.save(nib.Nifti1Image(volume + np.nan, np.eye(4)), root / "nan.nii.gz")
    nib.save(nib.Nifti1Image(volume + np.inf, np.eye(4)), root / "inf.nii.gz")
    nib.save(nib.Nifti1Image(volume.astype(np.complex64), np.eye(4)), root / "complex.nii.gz")
    (root / "folder").mkdir()
    (root / "folder" / "kept.txt").write_text("a result already here")


def _write_tables(root: Path) -> None:
    (root / "empty.csv").write_text("")
    (root / "header.csv").write_text("id,age,sex\n")
    (root / "noid.csv").write_text("patient,age\np1,40\n")
    (root / "dup.csv").write_text("id,age,sex\np1,40,M\np1,50,F\n")
    (root / "latin1.csv").write_bytes("id,age,notes\np1,40,café\n".encode("latin-1"))
    (root / "age.csv").write_text("id,age,sex\np1,forty,M\n")
    (root / "code.csv").write_text("id,age,sex,nodule\np1,40,M,7\n")
    (root / "bad.yaml").write_text("train: [unclosed\n")
    (root / "data").mkdir()
    (root / "data" / "metadata.csv").write_text("id,age,file\np1,40,grey.png\n")  # a dataset a filter runs over


def _write_models(root: Path) -> None:
    """The shipped model, and broken copies made of links to its files (cheap) where a file stays intact."""
    shutil.copytree(pretrained_path(), root / "model", copy_function=os.symlink)
    for name in ("no-unet", "sdxl", "cut-weights", "bad-index"):
        shutil.copytree(root / "model", root / name, symlinks=True)
    shutil.rmtree(root / "no-unet" / "unet")
    index = json.loads((root / "model" / "model_index.json").read_text())
    (root / "sdxl" / "model_index.json").unlink()
    index.update(_class_name="StableDiffusionXLPipeline", text_encoder_2=["transformers", "CLIPTextModel"])
    (root / "sdxl" / "model_index.json").write_text(json.dumps(index))
    weights = next((root / "cut-weights" / "unet").glob("*.safetensors"))
    data = weights.read_bytes()
    weights.unlink()
    weights.write_bytes(data[:1000])
    (root / "bad-index" / "model_index.json").unlink()
    (root / "bad-index" / "model_index.json").write_text("{ not json")


def filled(args: list[str], t: Path) -> list[str]:
    return [arg.replace("{t}", str(t)) for arg in args]


def files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def assert_clean_failure(args: list[str], message: str, t: Path, medcf_main) -> None:
    before = files(t)
    result = medcf_main(*filled(args, t), cwd=t)
    code, err = result.returncode, result.stderr
    assert code == 1, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message.replace("{t}", str(t)) in err, err
    assert files(t) == before  # no output, not even an empty folder or a temporary file


def test_the_table_has_at_least_thirty_cases() -> None:
    assert len(READERS) + len(TABLES) + len(MODELS) + len(COMMANDS) >= 30


@pytest.mark.parametrize(("case", "name", "message"), READERS, ids=[row[0] for row in READERS])
def test_readers(case: str, name: str, message: str, t: Path, medcf_main) -> None:
    assert_clean_failure(["info", f"{{t}}/{name}"], message, t, medcf_main)
    with pytest.raises((ValueError, OSError)) as error:
        read_image(t / name)
    assert message in str(error.value)


@pytest.mark.parametrize(("case", "name", "message"), TABLES, ids=[row[0] for row in TABLES])
def test_tables(case: str, name: str, message: str, t: Path, medcf_main) -> None:
    assert_clean_failure(["prompts", "--csv", f"{{t}}/{name}"], message, t, medcf_main)
    if "line 2" not in message:  # the table itself is wrong, not one value a prompt renders
        with pytest.raises(ValueError, match=None) as error:
            load_table(t / name, id_column="id")
        assert message in str(error.value)


@pytest.mark.parametrize(("case", "name", "message"), MODELS, ids=[row[0] for row in MODELS])
def test_model_folders(case: str, name: str, message: str, t: Path, medcf_main) -> None:
    assert_clean_failure([*GENERATE, "--model", f"{{t}}/{name}", *OUT], message, t, medcf_main)
    with pytest.raises((ValueError, OSError)) as error:
        load_components(t / name)
    assert message in str(error.value)


@pytest.mark.parametrize(("case", "args", "message"), COMMANDS, ids=[row[0] for row in COMMANDS])
def test_commands(case: str, args: list[str], message: str, t: Path, medcf_main) -> None:
    assert_clean_failure(list(args), message, t, medcf_main)


def test_the_intact_model_and_files_do_work(t: Path, medcf_main) -> None:
    """Positive control: the same command line with good inputs writes its result."""
    Image.fromarray(np.pad(np.full((16, 16), 255, np.uint8), 24)).save(t / "square-mask.png")
    result = medcf_main(*filled([*INPAINT, "--mask", "{t}/square-mask.png", "--out", "{t}/good"], t), cwd=t)
    assert result.returncode == 0, result.stderr
    assert read_image(t / "good" / "inpainted.png").shape == (64, 64)
    shutil.rmtree(t / "good")
    (t / "square-mask.png").unlink()
