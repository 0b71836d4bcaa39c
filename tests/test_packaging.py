"""What the install must (not) contain on these machines."""

import importlib.metadata
import importlib.util
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def test_torchvision_is_nowhere_in_the_environment():
    # torchvision pulls a CUDA build that breaks transformers and torchmetrics here (MISSION.md).
    assert importlib.util.find_spec("torchvision") is None
    for distribution in importlib.metadata.distributions():
        required = [r for r in distribution.requires or [] if "extra ==" not in r]  # optional extras are not installed
        assert not any(r.split()[0].lower().startswith("torchvision") for r in required), distribution.name


def _lock() -> dict[str, str]:
    """constraints.txt as {normalized name: version}; every non-comment line must be `name==version`."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, separator, version = line.partition("==")
            assert separator and version and " " not in line, f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = version
    return pins


def test_console_script_exists_and_torch_is_the_cpu_wheel_pinned_by_hand():
    assert _lock()["torch"] == "2.13.0"  # no '+cpu' local label: it would match no other machine's wheel
    assert importlib.metadata.version("torch").startswith("2.13.0")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"medcf": "medcf.cli:main"}
    assert not any("torchvision" in dependency for dependency in project["dependencies"])


def test_the_lock_pins_every_direct_dependency_and_everything_they_need():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    direct = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]
    assert {canonicalize_name(r.name) for r in direct} <= set(lock)
    for requirement in direct:  # the lock satisfies pyproject's own ranges
        assert requirement.specifier.contains(lock[canonicalize_name(requirement.name)], prereleases=True), requirement
    missing = set()
    for name in lock:  # closure: what each locked package requires (for this Python, no extras) is locked too
        for text in importlib.metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                missing |= {canonicalize_name(requirement.name)} - set(lock)
    assert not missing, f"constraints.txt lacks {sorted(missing)}: run `make lock`"


@pytest.mark.locked
def test_the_environment_is_the_lock():
    """`make test` installs exactly the lock (`make test-latest` deselects this: it runs the newest versions)."""
    installed = {canonicalize_name(d.name): d.version for d in importlib.metadata.distributions()}
    drift = {name: (version, installed.get(name)) for name, version in _lock().items()}
    drift = {name: pair for name, pair in drift.items() if not pair[1] or Version(pair[1]).public != pair[0]}
    assert not drift, f"installed versions differ from constraints.txt (locked, installed): {drift}"


