"""`medcf demo`: the shipped model's tour, fast here (4 sampler steps), the real one behind the slow marker."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from conftest import few_step_copy, no_network
from medcf.data import read_image
from medcf.demo import run_demo

HEADINGS = (
    "The model",
    "Generation from clinical prompts",
    "Healthy counterparts and attribution, scored",
    "Counterfactuals of a held-out patient",
    "Counterfactuals of the real radiograph RG1_UNCR.dcm",
    "Inpainted lesion",
    "Ground-truth counterfactual cohorts",
    "Clinical prompts",
    "Real scans",
)


@pytest.fixture(scope="module")
def few_step_model(tmp_path_factory) -> Path:
    """The shipped model's files (linked, not copied) with a 4-step sampler, so the tour runs in seconds."""
    return few_step_copy("cxr64", tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory, few_step_model):
    """The tour run with the network blocked (the offline guarantee: no hub, no downloads)."""
    out = tmp_path_factory.mktemp("run") / "demo-output"
    with no_network() as attempts:
        report = run_demo(out, seed=0, model=few_step_model)
    assert attempts == []
    return report.parent


def test_demo_writes_every_section_and_its_pictures(demo_output):
    page = (demo_output / "index.html").read_text()
    assert [heading for heading in HEADINGS if f"<h2>{heading}</h2>" not in page] == []
    pictures = re.findall(r'src="([^"]+)"', page)
    assert len(pictures) == 10
    assert all((demo_output / picture).stat().st_size > 5_000 for picture in pictures)
    assert "derived DICOM written and re-read" in page
    assert [p.name for p in demo_output.parent.iterdir()] == ["demo-output"]  # no partial folder left


def test_the_radiograph_edits_come_back_as_dicom_at_the_source_geometry(demo_output):
    for name, edit in {"smoking_current": "smoking=current", "age_plus_20": "age+=20"}.items():
        folder = demo_output / "radiograph" / name
        edited = read_image(folder / "counterfactual.dcm")
        assert edited.shape == read_image(get_testdata_file("RG1_UNCR.dcm")).shape  # not the model's 64 px
        assert edited.header.ImageType[0] == "DERIVED"
        assert json.loads((folder / "settings.json").read_text())["edits"] == [edit]


def test_inpainting_changes_only_the_region(demo_output):
    page = (demo_output / "report.md").read_text()
    row = page.split("| mean change in region (model) |")[1].splitlines()[2]
    model_change, true_change, outside = (float(cell) for cell in row.strip("| ").split(" | "))
    assert outside == 0.0 and true_change > 0.01 and np.isfinite(model_change)


def test_demo_replaces_an_earlier_demo_but_never_another_folder(demo_output, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a medcf demo output"):
        run_demo(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_the_real_demo_runs_from_the_cli_within_its_budget_and_localises_findings(tmp_path):
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "medcf", "demo", "--out", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    print(f"medcf demo: {time.perf_counter() - started:.0f} s")  # the budget (3 min on 2 CPUs) is for the note
    page = (tmp_path / "demo" / "report.md").read_text()
    scores = re.findall(r"\| (consolidation|pleural_effusion) \| 2 \| ([0-9.]+) \| ([0-9.]+) \|", page)
    assert len(scores) == 2 and all(float(auroc) > 0.8 and float(ncc) > 0.3 for _, auroc, ncc in scores)


def test_the_network_block_catches_a_download_attempt() -> None:
    import socket
    import urllib.request

    with no_network() as attempts, pytest.raises(OSError):
        urllib.request.urlopen("https://huggingface.co/api/models", timeout=5)
    with no_network() as direct, socket.socket() as raw, pytest.raises(OSError):
        raw.connect(("10.0.0.1", 443))
    assert attempts and attempts[0].startswith("getaddrinfo") and direct == ["connect(('10.0.0.1', 443),)"]
