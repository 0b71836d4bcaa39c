"""Crash-safe file writing: every output appears whole or not at all.

A writer gets a temporary path in the destination folder (same filesystem, so the final
`os.replace` is atomic on POSIX and Windows) and the file is renamed into place only when the
writer finished without an exception.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import sys
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

    A symbolic link `path` is followed: the result replaces the folder it points to and the link stays.
    A crash leaves `path` as it was; callers decide beforehand whether `path` may be replaced. A staging
    folder left by a killed run is removed by the next run into the same `path`.
    """
    path = Path(os.path.realpath(path))  # rmtree refuses a link, and renaming onto one would replace the link
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_staging(path)
    # The owner in the name lets a later run tell a killed writer's leftover from a live writer's folder.
    prefix = f".{path.name}.{os.getpid()}@{socket.gethostname()}."
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".partial"))
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp makes a private folder; results are ordinary folders
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_dead_staging(path: Path) -> None:
    """Delete staging folders of `path` whose writer on this host no longer runs (killed by SIGKILL, power loss)."""
    owner = re.compile(rf"\.{re.escape(path.name)}\.(\d+)@(.+)\.[^.]+\.partial")
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        match = owner.fullmatch(leftover.name)
        # Another host's pid says nothing about its process here (a shared file system): leave its folder.
        if match is None or match[2] != socket.gethostname() or not leftover.is_dir() or _running(int(match[1])):
            continue
        shutil.rmtree(leftover, ignore_errors=True)
        done = "could not remove (delete it by hand)" if leftover.exists() else "removed"
        print(f"medcf: {done} {leftover}, left by a killed run (pid {match[1]})", file=sys.stderr)


def _running(pid: int) -> bool:
    """Whether process `pid` exists; assumed on Windows, where os.kill(pid, 0) sends CTRL_C_EVENT instead."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    return True


def new_output_folder(out: str | Path) -> Path:
    """`out` as a Path, refusing a folder that already holds files (a result is never overwritten).

    A symbolic link is followed: the result goes into the folder it points to.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{shown_path(out)}: a file, not a folder; pass a new --out folder")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{shown_path(out)}: folder is not empty; pass a new --out folder")
    check_writable(Path(os.path.realpath(out)))
    return out


def shown_path(path: Path) -> str:
    """`path` for a message, with the folder it points to when it is a symbolic link."""
    return f"{path} (a link to {os.path.realpath(path)})" if path.is_symlink() else str(path)


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
