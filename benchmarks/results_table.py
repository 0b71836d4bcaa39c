"""The results file every performance script writes: `<name>.json` (with the environment) and `<name>.md`."""

from __future__ import annotations

import json
from pathlib import Path

from medcf.training.record import environment


def write_results(result: dict[str, object], out: Path, name: str, title: str, method: str) -> Path:
    """A two-column table of `result` under `title`, the method in a sentence, then machine and versions."""
    out.mkdir(parents=True, exist_ok=True)
    record = {**result, "environment": environment()}
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = "\n".join(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
                     for key, value in result.items())  # fmt: skip
    machine = record["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    path = out / f"{name}.md"
    path.write_text(
        f"# {title}\n\n{method}\n\n| measure | value |\n|---|---|\n{rows}\n\n"
        f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs, GPU: {machine['cuda'] or 'none'}. "
        f"Versions: {versions}.\n"
    )
    return path
