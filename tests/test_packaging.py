"""What the install must (not) contain on these machines."""

import importlib.metadata
import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_torchvision_is_nowhere_in_the_environment():
    # torchvision pulls a CUDA build that breaks transformers and torchmetrics here (MISSION.md).
    assert importlib.util.find_spec("torchvision") is None
    for distribution in importlib.metadata.distributions():
        required = [r for r in distribution.requires or [] if "extra ==" not in r]  # optional extras are not installed
        assert not any(r.split()[0].lower().startswith("torchvision") for r in required), distribution.name


def test_torch_is_pinned_to_the_cpu_wheel_and_the_console_script_exists():
    assert (ROOT / "constraints.txt").read_text().split() == ["torch==2.13.0"]
    assert importlib.metadata.version("torch").startswith("2.13.0")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"medcf": "medcf.cli:main"}
    assert not any("torchvision" in dependency for dependency in project["dependencies"])
