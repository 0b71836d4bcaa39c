"""MkDocs hook: the pages built from the repository's files at build time, so they never drift from them.

- `<!-- medcf:config-reference -->`: the configuration reference, read from configs/example.yaml with its comments;
- `<!-- medcf:benchmark-results -->`: every benchmarks/results/**/*.md, headings demoted and links fixed;
- `<!-- medcf:model-cards -->`: the model card (README.md) of every shipped model in src/medcf/pretrained;
- ```` ```bash toy ```` fences (the toy-size commands tests/test_docs.py runs) render as bash blocks titled "toy size".

Only the standard library is used; tests/test_docs.py imports this file.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG_EXAMPLE = ROOT / "configs" / "example.yaml"
RESULTS = ROOT / "benchmarks" / "results"
PRETRAINED = ROOT / "src" / "medcf" / "pretrained"
RESULT_ASSETS = "benchmark-results"  # site folder of the results' images
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif")


_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<value>.*)$")


def _split_comment(text: str) -> tuple[str, str]:
    """'value  # comment' → ('value', 'comment'); a '#' inside quotes is not a comment."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[:index].strip(), text[index + 1 :].strip()
    return text.strip(), ""


def config_entries(path: Path = CONFIG_EXAMPLE) -> tuple[str, list[dict]]:
    """(file header, sections) from the annotated example config: each section {name, comment, fields}, each
    field {key, default, comment, notes} where notes are the comment lines just above it."""
    header: list[str] = []
    sections: list[dict] = []
    notes: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            (notes if sections else header).append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if not match:
            raise ValueError(f"{path}: cannot read the line {line!r}; write `key: value  # meaning`")
        value, comment = _split_comment(match["value"])
        if not match["indent"]:
            sections.append({"name": match["key"], "comment": comment, "fields": []})
            notes = []
        else:
            field = {"key": match["key"], "default": value, "comment": comment, "notes": notes}
            sections[-1]["fields"].append(field)
            notes = []
    return " ".join(header), sections


def _inline(text: str) -> str:
    """Plain text with `code` spans → HTML (escaped)."""
    parts = re.split(r"(`[^`]+`)", text)
    return "".join(
        f"<code>{html.escape(part[1:-1])}</code>" if part.startswith("`") and part.endswith("`") else html.escape(part)
        for part in parts
    )


def config_reference_markdown(path: Path = CONFIG_EXAMPLE) -> str:
    """One table per section: key, default, meaning (its comment; the comment lines above it where the comment
    says "as above")."""
    _, sections = config_entries(path)
    relative = path.relative_to(ROOT).as_posix()
    lines = []
    for section in sections:
        lines += [f"## `{section['name']}` {{#config-{section['name']}}}", ""]
        if section["comment"]:
            lines += [_inline(section["comment"]), ""]
        rows = []
        for field in section["fields"]:
            notes = " ".join(field["notes"]).removeprefix(f"{field['key']}:").strip()
            comment = field["comment"]
            if notes and "as above" in comment:
                meaning = _inline(notes)
            else:
                meaning = "<br>".join(_inline(text) for text in (notes, comment) if text)
            key = f"{section['name']}.{field['key']}"
            rows.append(
                f'<tr id="{key}"><td style="white-space: nowrap"><code>{key}</code></td>'
                f"<td><code>{html.escape(field['default'])}</code></td><td>{meaning}</td></tr>"
            )
        lines += ["<table>", "<thead><tr><th>key</th><th>default</th><th>meaning</th></tr></thead>", "<tbody>"]
        lines += rows + ["</tbody>", "</table>", ""]
    lines += [
        "## The whole file",
        "",
        f"`{relative}`:",
        "",
        "```yaml",
        path.read_text(encoding="utf-8").rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ included markdown files

_HEADING = re.compile(r"^(#{1,5})(\s+.*)$")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def result_files(folder: Path = RESULTS) -> list[Path]:
    """benchmarks/results/*.md, then those in its subfolders, each sorted."""
    return sorted(folder.glob("*.md")) + sorted(folder.glob("*/**/*.md"))


def anchor_of(path: Path, root: Path) -> str:
    stem = path.relative_to(root).with_suffix("").as_posix()
    return "results-" + re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower()


def included_markdown(path: Path, *, anchor: str, asset_prefix: str, root: Path, anchors: dict[Path, str]) -> str:
    """A markdown file inside another page: headings one level down (its first heading gets `anchor`), links to
    images under `root` point at `asset_prefix`, links to included files at their anchors, other relative links
    become plain text (their targets are not part of the site)."""
    lines, first, fence = [], True, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and (match := _HEADING.match(line)):
            line = f"#{match[1]}{match[2]}"
            if first:
                line, first = f"{line} {{#{anchor}}}", False
        if not fence:
            line = _LINK.sub(lambda link: _relink(link, path, asset_prefix, root, anchors), line)
        lines.append(line)
    if first:  # no heading: give the file one
        lines = [f"## {path.name} {{#{anchor}}}", "", *lines]
    return "\n".join(lines)


def _relink(link: re.Match, path: Path, asset_prefix: str, root: Path, anchors: dict[Path, str]) -> str:
    bang, text, target = link[1], link[2], link[3]
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
        return link[0]
    file, _, fragment = target.partition("#")
    resolved = (path.parent / file).resolve()
    if resolved in anchors:
        return f"{bang}[{text}](#{anchors[resolved]})"
    if (
        asset_prefix
        and resolved.suffix.lower() in IMAGE_SUFFIXES
        and resolved.is_file()
        and resolved.is_relative_to(root)
    ):
        return f"{bang}[{text}]({asset_prefix}/{resolved.relative_to(root).as_posix()})"
    return f"{text} (`{target}`)"


def benchmark_results_markdown(folder: Path = RESULTS, asset_prefix: str = RESULT_ASSETS) -> str:
    files = result_files(folder)
    if not files:
        return "No results are committed yet (`benchmarks/results/` holds no `.md` file).\n"
    anchors = {path.resolve(): anchor_of(path, folder) for path in files}
    lines = ["| results file | first line |", "|---|---|"]
    for path in files:
        title = next(
            (line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), ""
        )
        lines.append(
            f"| [`{path.relative_to(ROOT).as_posix()}`](#{anchors[path.resolve()]}) | {title.replace('|', '/')} |"
        )
    lines.append("")
    for path in files:
        lines += [
            included_markdown(
                path, anchor=anchors[path.resolve()], asset_prefix=asset_prefix, root=folder, anchors=anchors
            ),
            "",
            f"*Source: `{path.relative_to(ROOT).as_posix()}`.*",
            "",
        ]
    return "\n".join(lines)


def model_cards_markdown(folder: Path = PRETRAINED) -> str:
    cards = sorted(folder.glob("*/README.md"))
    anchors = {path.resolve(): f"model-{path.parent.name}" for path in cards}
    lines = []
    for path in cards:
        lines += [
            included_markdown(path, anchor=anchors[path.resolve()], asset_prefix="", root=folder, anchors=anchors),
            "",
            f"*Source: `{path.relative_to(ROOT).as_posix()}`.*",
            "",
        ]
    return "\n".join(lines)


MARKERS = {
    "<!-- medcf:config-reference -->": config_reference_markdown,
    "<!-- medcf:benchmark-results -->": benchmark_results_markdown,
    "<!-- medcf:model-cards -->": model_cards_markdown,
}
_TOY_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)bash toy[ \t]*$", re.MULTILINE)


def on_config(config):
    for path in (CONFIG_EXAMPLE, RESULTS, PRETRAINED):
        if path.exists() and str(path) not in config.watch:
            config.watch.append(str(path))
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    for path in sorted(RESULTS.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            uri = f"{RESULT_ASSETS}/{path.relative_to(RESULTS).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    # ```bash toy marks the toy-size commands tests/test_docs.py runs; readers see a bash block with a title
    markdown = _TOY_FENCE.sub(lambda match: f'{match["indent"]}{match["fence"]}bash title="toy size"', markdown)
    for marker, build in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, build())
    return markdown
