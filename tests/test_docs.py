"""The documentation site (mkdocs.yml, docs/) against the code: nav, links, every command line it shows, the API
reference's coverage, and a strict build where MkDocs is installed. The toy-size tutorial commands run in
`test_toy_commands_run` (slow)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from medcf.cli import app
from medcf.config import config_dict, load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
NOT_PAGES = ("hooks", "images")  # docs/ folders that hold no pages
CONFIG_COMMANDS = {("train",), ("train-vae",)}  # whose --set is a config override (elsewhere: a row edit)
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)\s*$",
                   re.DOTALL | re.MULTILINE)  # fmt: skip
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _hook(name: str):
    """docs/hooks/<name>.py, the MkDocs hook that builds pages from the repository."""
    spec = importlib.util.spec_from_file_location(f"medcf_docs_{name}", DOCS / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Loader(yaml.SafeLoader):
    """mkdocs.yml with its MkDocs-only tags (e.g. `!relative $config_dir`) read as plain values."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _mkdocs_config() -> dict:
    return yaml.load(MKDOCS_YML.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a safe loader


def _nav_pages(items) -> list[str]:
    pages = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def _pages() -> list[Path]:
    return sorted(path for path in DOCS.rglob("*.md") if path.relative_to(DOCS).parts[0] not in NOT_PAGES)


def _blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of a page."""
    return [(match["info"].strip(), match["body"]) for match in FENCE.finditer(path.read_text(encoding="utf-8"))]


def _shell_blocks(path: Path, *, toy_only: bool = False) -> list[str]:
    return [body for info, body in _blocks(path) if info == "bash toy" or (info == "bash" and not toy_only)]


def _command_lines(body: str) -> list[str]:
    return [line.strip() for line in body.replace("\\\n", " ").splitlines() if line.strip()]


def test_every_nav_page_exists_and_every_page_is_in_the_nav() -> None:
    config = _mkdocs_config()
    nav = _nav_pages(config["nav"])
    assert [page for page in nav if not (DOCS / page).is_file()] == []
    assert len(nav) == len(set(nav)), "a page appears twice in the nav"
    assert [
        path.relative_to(DOCS).as_posix() for path in _pages() if path.relative_to(DOCS).as_posix() not in nav
    ] == []
    assert any(isinstance(item, dict) and _hook("api_reference").REFERENCE_SECTION in item for item in config["nav"])


def test_every_relative_link_and_image_resolves() -> None:
    broken = []
    for page in _pages():
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        text = re.sub(r"`[^`\n]*`", "", text)
        for match in LINK.finditer(text):
            target = match["target"].split("#")[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue
            resolved = (page.parent / target).resolve()
            generated = DOCS / _hook("generated_pages").RESULT_ASSETS
            if resolved.is_relative_to(generated):  # the hook copies benchmarks/results/ images there
                resolved = ROOT / "benchmarks" / "results" / resolved.relative_to(generated)
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {match['target']}")
    assert broken == []


def _cli_uses() -> list[tuple[str, list[str], list[str]]]:
    """(page, command path, arguments) of every `medcf ...` line in a bash block of the docs."""
    uses = []
    for page in _pages():
        for body in _shell_blocks(page):
            for line in _command_lines(body):
                tokens = shlex.split(line, comments=True)
                for separator in ("|", "&&", ";", ">", "2>&1"):
                    if separator in tokens:
                        tokens = tokens[: tokens.index(separator)]
                starts = [i for i, token in enumerate(tokens) if token == "medcf" or token.endswith("/medcf")]
                if starts:
                    uses.append((page.relative_to(ROOT).as_posix(), tokens[starts[0] + 1 :]))
    return [(page, *_split_command(arguments)) for page, arguments in uses]


def _split_command(arguments: list[str]) -> tuple[list[str], list[str]]:
    group, path = typer.main.get_command(app), []
    while arguments and hasattr(group, "commands") and arguments[0] in group.commands:
        group = group.commands[arguments[0]]
        path, arguments = [*path, arguments[0]], arguments[1:]
    return path, arguments


def test_every_documented_command_and_option_exists() -> None:
    root = typer.main.get_command(app)
    uses = _cli_uses()
    assert len(uses) > 50, "the docs should show the commands"
    problems = []
    for page, path, arguments in uses:
        if not path and arguments and arguments[0] == "--help":
            continue
        command = root
        for name in path:
            command = command.commands[name]
        if not path or hasattr(command, "commands"):
            problems.append(f"{page}: `medcf {' '.join(path + arguments[:1])}` is not a command")
            continue
        known = {"--help"} | {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        overrides = []
        for index, token in enumerate(arguments):
            name = token.split("=")[0]
            if token.startswith("--") and name not in known:
                problems.append(f"{page}: `medcf {' '.join(path)}` has no option {name}")
            if name == "--set":
                overrides.append(token.partition("=")[2] if "=" in token else arguments[index + 1])
        if tuple(path) in CONFIG_COMMANDS:
            try:  # raises on an unknown key, a wrong type or a value out of range
                load_config(None, overrides)
            except ValueError as error:
                problems.append(f"{page}: {error}")
    assert problems == []


def test_the_example_config_documents_every_field() -> None:
    _, sections = _hook("generated_pages").config_entries()
    documented = {f"{section['name']}.{field['key']}" for section in sections for field in section["fields"]}
    fields = {f"{section}.{key}" for section, values in config_dict(load_config(None)).items() for key in values}
    assert documented == fields


def test_the_api_reference_covers_every_public_module() -> None:
    hook = _hook("api_reference")
    package = ROOT / "src" / "medcf"
    modules = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(part.startswith("_") for part in parts) and len(parts) > 1:
            modules.add(".".join(parts))
    groups = hook.reference_groups()
    pages = {group: hook.reference_markdown(group, members) for group, members in groups.items()}
    covered = {
        line.removeprefix("::: ") for page in pages.values() for line in page.splitlines() if line.startswith("::: ")
    }
    assert covered == modules
    for required in ("data", "prompts", "models", "training", "editing", "attribution", "metrics", "evaluation",
                     "generate", "inversion", "pretrained", "classifier", "volumes"):  # fmt: skip
        assert f"medcf.{required}" in groups


def test_the_benchmarks_page_includes_every_results_file() -> None:
    hook = _hook("generated_pages")
    page = hook.benchmark_results_markdown()
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        assert f"{{#{hook.anchor_of(path, path.parent)}}}" in page, path.name


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="MkDocs is not installed here (build the site with a docs venv)")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings-python is not installed here")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(MKDOCS_YML), "-d", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file()


TOY_PAGES = [page for page in _pages() if _shell_blocks(page, toy_only=True)]


def test_every_tutorial_has_toy_size_commands() -> None:
    assert [page.name for page in sorted((DOCS / "tutorials").glob("*.md")) if page not in TOY_PAGES] == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", TOY_PAGES, ids=[path.relative_to(DOCS).with_suffix("").as_posix() for path in TOY_PAGES]
)
def test_toy_commands_run(page: Path, tmp_path: Path) -> None:
    """Every `bash toy` block of a page, in order, in an empty folder, with this environment's medcf."""
    script = "\n".join(_shell_blocks(page, toy_only=True))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1800
    )
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


PYTHON_PAGES = [ROOT / "README.md", *_pages()]
RUNNABLE = ("README.md", "docs/index.md", "docs/how-to/prompts.md")  # the others need a download or a GPU


def _python_blocks(page: Path) -> list[str]:
    return [body for info, body in _blocks(page) if info == "python"]


def test_every_python_example_imports_names_that_exist() -> None:
    missing = []
    for page in PYTHON_PAGES:
        for body in _python_blocks(page):
            for node in ast.walk(ast.parse(body)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("medcf"):
                    module = importlib.import_module(node.module)
                    names = [alias.name for alias in node.names]
                    missing += [f"{page.name}: {node.module}.{name}" for name in names if not hasattr(module, name)]
    assert missing == [] and sum(len(_python_blocks(page)) for page in PYTHON_PAGES) >= 6


@pytest.mark.parametrize("page", RUNNABLE)
def test_the_python_examples_run_as_written(page: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(ROOT)  # the examples name repository files (configs/vocabulary.example.yaml)
    blocks = _python_blocks(ROOT / page)
    assert blocks
    for body in blocks:
        exec(compile(body, page, "exec"), {"__name__": "__docs__"})  # noqa: S102 - our own documentation's code
    assert capsys.readouterr().out.strip()  # each page's example prints what it shows
