import re

import pytest

from medcf.demo import run_demo


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "demo-output"
    return run_demo(out, seed=0).parent


def test_demo_writes_a_report_whose_pictures_exist(demo_output):
    page = (demo_output / "index.html").read_text()
    pictures = re.findall(r'src="([^"]+)"', page)
    assert len(pictures) == 4
    assert all((demo_output / picture).stat().st_size > 10_000 for picture in pictures)
    for heading in ("Ground-truth counterfactual cohorts", "Clinical prompts", "Real scans", "healthy counterparts"):
        assert heading in page
    assert "derived DICOM written and re-read" in page
    assert [p.name for p in demo_output.parent.iterdir()] == ["demo-output"]  # no partial folder left


def test_demo_replaces_an_earlier_demo_but_never_another_folder(demo_output, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a medcf demo output"):
        run_demo(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
