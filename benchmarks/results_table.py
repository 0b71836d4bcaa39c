"""The results file every performance script writes: `<name>.json` (with the environment) and `<name>.md`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medcf.training.record import environment


def write_results(
    result: dict[str, object], out: Path, name: str, title: str, method: str, rows: list[dict] | None = None
) -> Path:
    """A two-column table of `result` under `title`, the method in a sentence, `rows` as a wide table (one
    column per key), then machine and versions."""
    out.mkdir(parents=True, exist_ok=True)
    record = {**result, **({"rows": rows} if rows else {}), "environment": environment()}
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    pairs = "\n".join(f"| {key} | {_cell(value)} |" for key, value in result.items())
    machine = record["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    path = out / f"{name}.md"
    path.write_text(
        f"# {title}\n\n{method}\n\n| measure | value |\n|---|---|\n{pairs}\n\n{_wide(rows or [])}"
        f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs, GPU: {machine['cuda'] or 'none'}. "
        f"Versions: {versions}.\n"
    )
    return path


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _wide(rows: list[dict]) -> str:
    if not rows:
        return ""
    header = "| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]) + "\n"
    return header + "".join("| " + " | ".join(_cell(v) for v in row.values()) + " |\n" for row in rows) + "\n"


def script_arguments(doc: str, quick: str) -> argparse.Namespace:
    """`--quick` (a smoke test: `quick` says what it shrinks) and `--out` (default benchmarks/results)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{quick}: a smoke test")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return parser.parse_args()
