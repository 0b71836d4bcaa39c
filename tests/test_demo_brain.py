"""`medcf demo --anatomy brain`: the shipped brain model's tour (4 sampler steps; slow: about a minute)."""

import html
import json
import re
from pathlib import Path

import nibabel as nib
import pytest
from nilearn.datasets import load_mni152_template

from conftest import few_step_copy, no_network
from medcf.demo import run_demo
from medcf.demo.brain_sections import TEMPLATE_SLICE

pytestmark = pytest.mark.slow
HEADINGS = (
    "The model",
    "Generation from clinical prompts",
    "Healthy counterparts and attribution, scored",
    "Ageing and Alzheimer's disease of a held-out patient",
    "Ageing and Alzheimer's disease of the MNI152 template",
    "Inpainted lesion",
    "Ground-truth counterfactual cohorts",
    "Clinical prompts",
    "Real scans",
)


@pytest.fixture(scope="module")
def brain_demo(tmp_path_factory) -> Path:
    """The brain tour on the shipped brain64 files (linked) with a 4-step sampler, the network blocked."""
    folder = few_step_copy("brain64", tmp_path_factory.mktemp("model"))
    out = tmp_path_factory.mktemp("run") / "demo-brain"
    with no_network() as attempts:
        report = run_demo(out, seed=0, anatomy="brain", model=folder)
    assert attempts == []
    return report.parent


def test_the_brain_tour_writes_every_section(brain_demo: Path) -> None:
    page = (brain_demo / "index.html").read_text()
    assert [heading for heading in HEADINGS if f"<h2>{html.escape(heading)}</h2>" not in page] == []
    assert "brain MRI" in page and "RG1_UNCR.dcm" in page  # the real-scans section is shared
    assert "Ground-truth healthy counterparts and attribution" not in page  # the chest truth section is not
    markdown = (brain_demo / "report.md").read_text()
    assert re.search(r"\| lesion \| 2 \| [0-9.]+ \|", markdown)
    assert re.search(r"\| alzheimers_disease \| 2 \| [0-9.]+ \|", markdown)


def test_the_ageing_table_sets_the_model_beside_the_truth(brain_demo: Path) -> None:
    markdown = (brain_demo / "report.md").read_text()
    rows = re.findall(r"^\| (age\+=20|alzheimers_disease=present|age\+=20 alzheimers_disease=present) \| (.*)\|$",
                      markdown, flags=re.M)  # fmt: skip
    assert len(rows) == 6  # three edits on the held-out patient (with truth), three on the template (without)
    patient = [cells.split(" | ") for edit, cells in rows[:3]]
    true_ventricles = [float(cells[1]) for cells in patient]  # Δ ventricles (truth): the second column
    assert all(change > 0 for change in true_ventricles)
    assert true_ventricles[2] > max(true_ventricles[:2])  # ageing and AD together enlarge them most


def test_the_template_edits_come_back_as_nifti_at_the_template_slice(brain_demo: Path) -> None:
    template = load_mni152_template(resolution=1)
    for name in ("20_years_older", "alzheimers_disease", "both"):
        edited = nib.load(brain_demo / "mni152" / name / "counterfactual.nii.gz")
        assert edited.shape == (*template.shape[:2], 1)
        assert edited.affine[2, 3] == pytest.approx(template.affine[2, 3] + TEMPLATE_SLICE * template.affine[2, 2])
        assert json.loads((brain_demo / "mni152" / name / "settings.json").read_text())["index"] == TEMPLATE_SLICE
