"""Reports a person opens: one list of sections rendered as a self-contained HTML page and as Markdown.

Pictures are referenced by paths relative to the report, so the output folder can be moved or zipped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medcf.atomic import atomic_path

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
code{background:#f4f4f4;padding:0 .2em}"""


@dataclass
class Section:
    """A heading with optional text paragraphs, figures (relative path, caption) and one table."""

    heading: str
    paragraphs: Sequence[str] = ()
    figures: Sequence[tuple[str, str]] = ()
    table: Sequence[Mapping[str, object]] = field(default_factory=list)


def write_report(folder: Path, title: str, sections: Sequence[Section]) -> Path:
    """Write `index.html` and `report.md` into `folder`; returns the HTML path."""
    with atomic_path(folder / "report.md") as temporary:
        temporary.write_text(render_markdown(title, sections), encoding="utf-8")
    with atomic_path(folder / "index.html") as temporary:
        temporary.write_text(render_html(title, sections), encoding="utf-8")
    return folder / "index.html"


def render_html(title: str, sections: Sequence[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        body += [f"<p>{html.escape(text)}</p>" for text in section.paragraphs]
        for path, caption in section.figures:
            body.append(
                f'<figure><img src="{html.escape(path)}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        if section.table:
            body.append(_html_table(section.table))
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style>'
    return f"<!doctype html>\n<html><head>{head}</head><body>\n" + "\n".join(body) + "\n</body></html>\n"


def _html_table(rows: Sequence[Mapping[str, object]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    header = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    lines = [
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(column)))}</td>" for column in columns) + "</tr>"
        for row in rows
    ]
    return f"<table><tr>{header}</tr>" + "".join(lines) + "</table>"


def render_markdown(title: str, sections: Sequence[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.heading}", ""]
        for text in section.paragraphs:
            lines += [text, ""]
        for path, caption in section.figures:
            lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
        if section.table:
            columns = list(dict.fromkeys(key for row in section.table for key in row))
            lines.append("| " + " | ".join(column.replace("|", "\\|") for column in columns) + " |")
            lines.append("|" + "---|" * len(columns))
            for row in section.table:
                cells = (_cell(row.get(column)).replace("|", "\\|") for column in columns)
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def relative(path: Path, folder: Path) -> str:
    """A figure path as the report refers to it (POSIX, relative to the report folder)."""
    return Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()
