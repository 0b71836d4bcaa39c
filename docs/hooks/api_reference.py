"""MkDocs hook: the API reference, built from the code at build time so it never drifts from it.

One page per top-level package or module of src/medcf, each a `::: module` block for every public module under
it (a name without a leading underscore), added to the nav under "API reference"; `<!-- medcf:reference-index -->`
lists the pages. Only the standard library is used; tests/test_docs.py imports this file.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "medcf"
REFERENCE_SECTION = "API reference"
INDEX_MARKER = "<!-- medcf:reference-index -->"


def public_modules(package: Path = PACKAGE) -> list[str]:
    """Dotted names of every public module under `package`, packages before their modules, sorted.

    A module is public when no part of its dotted name starts with an underscore (`__init__` stands for its
    package; `__main__` is the `python -m medcf` entry point, not an API)."""
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts):
            continue
        names.append(".".join(parts))
    return sorted(names, key=lambda name: name.split("."))


def reference_groups(package: Path = PACKAGE) -> dict[str, list[str]]:
    """{top-level name: its public modules}: `medcf.data` → medcf.data, medcf.data.adapters, ...;
    a top-level module (medcf.generate) is a group of one. The package `medcf` itself is not a group."""
    groups: dict[str, list[str]] = {}
    for name in public_modules(package):
        parts = name.split(".")
        if len(parts) > 1:
            groups.setdefault(".".join(parts[:2]), []).append(name)
    return groups


def reference_path(group: str) -> str:
    return f"reference/{group}.md"


def _module_file(name: str, package: Path = PACKAGE) -> Path:
    path = package.parent.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _exported_names(name: str, package: Path = PACKAGE) -> list[str]:
    """The names in a module's literal `__all__`, or [] when it has none."""
    tree = ast.parse(_module_file(name, package).read_text(encoding="utf-8"))
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets) and node.value:
            try:
                return [str(item) for item in ast.literal_eval(node.value)]
            except ValueError:
                return []
    return []


def _defined_names(name: str, package: Path = PACKAGE) -> list[str]:
    """The public names a module defines itself (def, class, assignment), in source order: those in its `__all__`
    when it has one, else those without a leading underscore. Imported names are documented where defined."""
    tree = ast.parse(_module_file(name, package).read_text(encoding="utf-8"))
    defined = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined += [target.id for target in targets if isinstance(target, ast.Name)]
    exported = _exported_names(name, package)
    public = [item for item in dict.fromkeys(defined) if not item.startswith("_")]
    return [item for item in public if item in exported] if exported else public


def reference_markdown(group: str, modules: list[str], package: Path = PACKAGE) -> str:
    """One reference page: the group's docstring and `__all__`, then every public module under it."""
    lines = [f"# `{group}`", ""]
    source = _module_file(group, package).relative_to(package.parent.parent)
    lines += [f"Source: `{source.as_posix()}`. Generated from the code by `docs/hooks/api_reference.py`.", ""]
    for module in modules:
        is_package = _module_file(module, package).name == "__init__.py"
        if is_package:  # its docstring, what it defines itself, and what it re-exports (documented where defined)
            own = _defined_names(module, package)
            members = "[" + ", ".join(own) + "]" if own else "false"
            lines += [
                f"::: {module}",
                "    options:",
                f"      members: {members}",
                "      show_root_heading: true",
                "",
            ]
            if exported := _exported_names(module, package):
                lines += ["Public names (`__all__`): " + ", ".join(f"`{name}`" for name in exported) + ".", ""]
        else:
            lines += [f"::: {module}", "    options:", "      show_root_heading: true", ""]
    return "\n".join(lines)


def reference_index_markdown() -> str:
    lines = ["| page | modules |", "|---|---|"]
    for group, modules in reference_groups().items():
        lines.append(f"| [`{group}`]({Path(reference_path(group)).name}) | {len(modules)} |")
    return "\n".join(lines) + "\n"


def on_config(config):
    """Add one nav entry per reference page under "API reference"; watch the sources the pages come from."""
    for entry in config.nav or []:
        if isinstance(entry, dict) and REFERENCE_SECTION in entry:
            entry[REFERENCE_SECTION] = [
                *entry[REFERENCE_SECTION],
                *({group: reference_path(group)} for group in reference_groups()),
            ]
            break
    else:
        raise ValueError(f"mkdocs.yml: the nav needs a section {REFERENCE_SECTION!r} for the generated pages")
    if str(PACKAGE) not in config.watch:
        config.watch.append(str(PACKAGE))
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    for group, modules in reference_groups().items():
        files.append(File.generated(config, reference_path(group), content=reference_markdown(group, modules)))
    return files


def on_page_markdown(markdown, page, config, files):
    return markdown.replace(INDEX_MARKER, reference_index_markdown()) if INDEX_MARKER in markdown else markdown
