"""The layer rule of STYLE.md §3.2: data → prompts → models → training | generate → editing → attribution →
evaluation → cli.

Each top-level part of medcf may import only the parts listed for it; nothing imports the entry points.
"""

from __future__ import annotations

import ast
from pathlib import Path

import medcf

PACKAGE = Path(medcf.__file__).parent
LEAVES = {"atomic", "figures", "report"}  # crash-safe writes, pictures, HTML reports: usable by every part
LOWER = {"prompts", "metrics", "data", "models"} | LEAVES
ENTRY_POINTS = {"cli", "app", "demo", "__main__"}
ALLOWED: dict[str, set[str]] = {
    "atomic": set(),
    "figures": {"atomic"},
    "report": {"atomic"},
    "config_checks": {"config"},  # the Config type only, under TYPE_CHECKING (config imports the checks)
    "config": {"config_checks"},
    "pretrained": LOWER,
    "prompts": set(),
    "metrics": set(),
    "data": {"prompts"} | LEAVES,
    "models": LEAVES,
    "generate": LOWER,
    "sampling": LOWER | {"generate"},
    "inversion": LOWER | {"generate"},
    "volumes": LOWER | {"generate", "inversion"},  # 3-D sampling, inversion and counterfactuals
    "training": LOWER | {"generate", "volumes", "config", "config_checks"},
    "classifier": LOWER,
    "editing": LOWER | {"generate", "inversion", "volumes", "training"},
    "attribution": LOWER | {"generate", "inversion", "volumes", "training", "editing", "classifier"},
    "evaluation": LOWER
    | {"generate", "inversion", "volumes", "training", "editing", "classifier", "attribution", "config"}
    | {"pretrained"},  # a benchmark suite may start from a shipped model's files (brain-synth: brain64's VAE)
}


def _part(module_path: Path) -> str:
    relative = module_path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _medcf_imports(module_path: Path, package: Path = PACKAGE) -> set[str]:
    """Top-level medcf parts imported by a module (absolute `medcf.x` and relative imports)."""
    tree = ast.parse(module_path.read_text(), filename=str(module_path))
    package_parts = module_path.relative_to(package).parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.ImportFrom):
            base = package_parts[: len(package_parts) - node.level + 1]
            names = [".".join(("medcf", *base, node.module or ""))]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("medcf.")}
    return found


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE)


def test_every_part_imports_only_lower_layers():
    violations = []
    for path in _modules():
        part = _part(path)
        if part in ENTRY_POINTS:
            continue
        assert part in ALLOWED, f"{path}: new top-level part {part!r}; add it to the layer table in this test"
        for imported in _medcf_imports(path) - {part}:
            if imported not in ALLOWED[part]:
                violations.append(f"{path.relative_to(PACKAGE)} imports medcf.{imported}")
    assert not violations, violations


def test_nothing_imports_the_entry_points():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if _part(path) not in ENTRY_POINTS and _medcf_imports(path) & ENTRY_POINTS
    ]
    assert not offenders


def test_the_walker_sees_relative_and_absolute_imports(tmp_path):
    fake = tmp_path / "medcf"
    (fake / "data").mkdir(parents=True)
    module = fake / "data" / "x.py"
    module.write_text("from ..models import a\nimport medcf.cli\nfrom . import io\nfrom medcf.prompts import b\n")
    assert _medcf_imports(module, fake) == {"models", "cli", "data", "prompts"}
