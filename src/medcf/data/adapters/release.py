"""Finding a release's tables and files under the folder its download was unpacked to.

Releases name their tables but not where users put them (OASIS-3's sit five folders deep in
OASIS3_data_files/scans/<form>/resources/csv/files/), and some names carry a date or a download hash
(ADNIMERGE_18Feb2025.csv, oasis_cross-sectional-5708aa0a98d82080.xlsx): tables are found by name pattern
anywhere under the root, and the caller can always name the file instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

SHOWN = 3  # paths quoted in an error message


def find_table(root: Path, patterns: Sequence[str], override: str | Path | None, *, what: str, argument: str) -> Path:
    """`override` (relative paths under root), else the one file under root matching the first pattern that
    matches anything (patterns in order of preference, glob syntax)."""
    if override is not None:
        return under(root, override)
    for pattern in patterns:
        found = sorted(path for path in root.rglob(pattern) if path.is_file() and not path.name.startswith("."))
        if len(found) > 1:
            shown = ", ".join(str(path) for path in found[:SHOWN])
            raise ValueError(f"{root}: several {what} files match {pattern} ({shown}); pass {argument}=<the one>")
        if found:
            return found[0]
    raise FileNotFoundError(
        f"{root}: no {what} ({' or '.join(patterns)}) under the dataset folder; put the release's table there "
        f"or pass {argument}=<its path>"
    )


def under(root: Path, path: str | Path) -> Path:
    """`path` as given when absolute, else under root."""
    return Path(path) if Path(path).is_absolute() else root / path


def index_files(root: Path, pattern: re.Pattern[str]) -> dict[str, list[Path]]:
    """Files under root whose name matches `pattern`, by the pattern's first group (sorted paths)."""
    index: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if (match := pattern.match(path.name)) and path.is_file():
            index.setdefault(match.group(1), []).append(path)
    return index


def one_file(key: str, paths: list[Path], *, what: str) -> Path:
    """The only file of `key`; several mean two copies of one scan (e.g. two discs unpacked twice)."""
    if len(paths) > 1:
        shown = ", ".join(str(path) for path in paths[:SHOWN])
        raise ValueError(f"{key}: {len(paths)} {what} files ({shown}); keep one copy of each scan under the root")
    return paths[0]
