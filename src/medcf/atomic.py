"""Crash-safe file writing: every output appears whole or not at all.

A writer gets a temporary path in the destination folder (same filesystem, so the final
`os.replace` is atomic on POSIX and Windows) and the file is renamed into place only when the
writer finished without an exception.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(f"{path.parent}: output folder does not exist; create it first")
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp makes 0600 files; outputs are ordinary readable files
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path` (which may hold an older result).

    A crash leaves `path` as it was; callers decide beforehand whether `path` may be replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp makes a private folder; results are ordinary folders
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def new_output_folder(out: str | Path) -> Path:
    """`out` as a Path, refusing a folder that already holds files (a result is never overwritten)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: a file, not a folder; pass a new --out folder")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: folder is not empty; pass a new --out folder")
    check_writable(out)
    return out


def check_writable(out: Path) -> None:
    """Before any work: the nearest existing ancestor of `out` must be a folder medcf can create files in
    (tried, not inferred from mode bits, which root and read-only mounts make misleading)."""
    ancestor = next(folder for folder in (out, *out.parents) if folder.exists())
    if not ancestor.is_dir():
        raise NotADirectoryError(f"{out}: {ancestor} is a file, not a folder; pass another --out")
    try:
        tempfile.TemporaryDirectory(dir=ancestor, prefix=".medcf-probe.").cleanup()
    except OSError as error:
        raise PermissionError(
            f"{out}: cannot write in {ancestor} ({error.strerror or error}); pass a folder you can write to"
        ) from None
