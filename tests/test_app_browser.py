"""The real app in headless Chromium: upload a radiograph, run a counterfactual, see and fetch the result.

Needs Debian's chromium and chromium-driver (.ci/run installs them); screenshots go to test-artifacts/app/
(or $MEDCF_TEST_ARTIFACTS). Without a browser the test skips, unless MEDCF_REQUIRE_BROWSER=1 (CI) makes that
a failure.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medcf.app.session import Workspace
from medcf.pretrained import PretrainedModel

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = (
    Path(os.environ.get("MEDCF_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")) / "app"
)
# Chromium's own background services try Google's hosts; these machines have no network (MISSION.md).
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1800",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """(url, output folder) of the running app."""
    from medcf.app.ui import launch

    shipped = PretrainedModel.load()
    model = dataclasses.replace(shipped, settings={**shipped.settings, "num_inference_steps": 4})
    out = tmp_path_factory.mktemp("app") / "results"
    (out.parent / "secret.txt").write_text("patient list")  # beside the output folder: must never be served
    page, url = launch(Workspace(model, out), port=_free_port(), block=False)
    assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    yield url, out
    page.close()


@pytest.fixture(scope="module")
def app_url(served: tuple[str, Path]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not shutil.which("chromium") or not Path(CHROMEDRIVER).exists():
        if os.environ.get("MEDCF_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium / chromium-driver are missing: apt-get install chromium chromium-driver")
        pytest.skip("no chromium + chromium-driver here (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _wait(browser, condition, seconds: float = 180):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, poll_frequency=0.5).until(condition)


def _upload(browser, path: str | Path) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(path))


def test_upload_run_a_counterfactual_and_fetch_the_result(browser, app_url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(app_url)
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 60)
    _upload(browser, get_testdata_file("RG1_UNCR.dcm"))
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#image img"))
    row = browser.find_element(By.CSS_SELECTOR, "#row textarea").get_attribute("value")
    assert row == "sex=F, view=PA"  # read from the DICOM header
    browser.find_element(By.CSS_SELECTOR, "#run").click()
    image = _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#counterfactual img"))[0]
    listed = lambda b: b.find_element(By.CSS_SELECTOR, "#downloads").text.replace("\n", "")  # noqa: E731
    _wait(browser, lambda b: "counterfactual.png" in listed(b) and "map.npy" in listed(b), 60)
    browser.save_screenshot(str(ARTIFACTS / "counterfactual.png"))
    with urllib.request.urlopen(image.get_attribute("src"), timeout=30) as response:  # the served picture
        result = np.asarray(Image.open(io.BytesIO(response.read())).convert("L"))
    assert result.shape == (256, 256) and result.std() > 10  # the 64 px counterfactual, enlarged 4×
    assert browser.find_elements(By.CSS_SELECTOR, "#attribution img")
    assert "written to" in browser.find_element(By.CSS_SELECTOR, "#status").text


def test_a_corrupt_upload_shows_a_one_line_error(browser, app_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 4)
    browser.get(app_url)
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 60)
    _upload(browser, broken)
    _wait(browser, lambda b: "broken.dcm: DICOM" in b.find_element(By.TAG_NAME, "body").text, 60)
    assert "/tmp/" not in browser.find_element(By.TAG_NAME, "body").text  # the file's name, not the server's path
    browser.save_screenshot(str(ARTIFACTS / "bad_upload.png"))


@pytest.mark.parametrize("target", ["/etc/passwd", "{out}/../secret.txt", "{out}/%2e%2e/secret.txt", "../secret.txt"])
def test_files_outside_the_output_folder_are_never_served(served: tuple[str, Path], target: str) -> None:
    url, out = served
    out.mkdir(exist_ok=True)
    assert (out / ".." / "secret.txt").resolve().is_file()
    url = f"{url}gradio_api/file={target.format(out=out)}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=30).read()
    assert refused.value.code in (403, 404)


def test_a_result_inside_the_output_folder_is_served(served: tuple[str, Path]) -> None:
    url, out = served  # the positive control for the refusals above: same URL form, allowed place
    out.mkdir(exist_ok=True)
    (out / "result.txt").write_text("counterfactual")
    with urllib.request.urlopen(f"{url}gradio_api/file={out / 'result.txt'}", timeout=30) as response:
        assert response.read() == b"counterfactual"
