"""The CLI end to end, through the real console entry point in a subprocess."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medcf.cli import _one_line


def medcf(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "medcf", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_help_lists_every_command_with_one_line_help():
    result = medcf("--help")
    assert result.returncode == 0
    commands = ("demo", "info", "convert", "prompts", "synth", "train", "train-vae", "generate", "drift-search")
    editing = ("counterfactual", "inpaint", "attribute", "effect", "train-classifier", "evaluate", "benchmark")
    editing += ("export", "app")
    for command in (*commands, *editing):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "missing.dcm"], "missing.dcm"),
        (["synth", "knee", "--out", "x", "--n", "2"], "unknown synthetic dataset kind 'knee'"),
        (["prompts", "--csv", "absent.csv"], "absent.csv: table not found"),
        (["app", "--model", "no-such-model"], "no-such-model"),
    ],
)
def test_errors_are_one_clean_line_and_a_nonzero_exit(tmp_path, args, message):
    result = medcf(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_debug_flag_shows_the_traceback(tmp_path):
    result = medcf("--debug", "info", "missing.dcm", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_unexpected_errors_say_so():
    assert _one_line(ValueError("x.png: bad\n  fix it")) == "x.png: bad fix it"
    assert _one_line(KeyError("k")).startswith("KeyError: 'k' (unexpected; rerun with --debug")


def test_synth_then_prompts_reads_the_written_table(tmp_path):
    result = medcf("synth", "cxr", "--n", "3", "--size", "64", "--out", tmp_path / "cx")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cx" / "preview.png").is_file()
    result = medcf("prompts", "--csv", tmp_path / "cx" / "metadata.csv", "--style", "simple", "--limit", "2")
    lines = result.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["cxr00000", "cxr00001"]
    assert all("chest X-ray" in line for line in lines)


def test_prompts_names_the_line_of_a_bad_row(tmp_path):
    (tmp_path / "t.csv").write_text("id,age,sex\na,63,M\nb,70,unknown-code\n")
    result = medcf("prompts", "--csv", tmp_path / "t.csv")
    assert result.returncode == 1
    assert "t.csv: line 3: sex value 'unknown-code' not understood" in result.stderr


def test_convert_writes_a_display_ready_png_of_the_real_radiograph(tmp_path):
    result = medcf("convert", get_testdata_file("RG1_UNCR.dcm"), tmp_path / "chest.png", "--bit-depth", "8")
    assert result.returncode == 0, result.stderr
    pixels = np.asarray(Image.open(tmp_path / "chest.png"))
    assert pixels.shape == (1955, 1841) and pixels.dtype == np.uint8
    spine = pixels[900:1100, 880:960].mean()
    right_lung = pixels[700:1000, 350:600].mean()
    assert spine > right_lung  # MONOCHROME1 inverted: bone bright, lung dark


def test_info_reports_hounsfield_units_of_ct():
    result = medcf("info", get_testdata_file("CT_small.dcm"))
    assert result.returncode == 0
    assert "modality: CT" in result.stdout and "values (HU)" in result.stdout
