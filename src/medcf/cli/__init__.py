"""The `medcf` command line: one thin function per command, each calling one library function.

Errors are one line on stderr and a non-zero exit; `--debug` (or MEDCF_DEBUG=1) shows the traceback.
"""

from __future__ import annotations

import os
import sys

from medcf.cli import data, dataset, editing, effect, evaluation, models, serve  # noqa: F401 - registers the commands on `app`
from medcf.cli.app import app, echo

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: run the app, turning exceptions into one clean line."""
    debug = "--debug" in sys.argv or os.environ.get("MEDCF_DEBUG") == "1"
    if not debug:
        _quiet_libraries()
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: every failure becomes one line
        if debug:
            raise
        echo(f"error: {_one_line(exc)}", err=True)
        raise SystemExit(1) from None


def _one_line(exc: Exception) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (ValueError, OSError)):  # user-facing errors carry the file and the fix
        return message
    return f"{type(exc).__name__}: {message} (unexpected; rerun with --debug and report it)"


def _quiet_libraries() -> None:
    """Keep the terminal for medcf's own progress and results: transformers/diffusers notices and their
    per-file loading bars (e.g. about optional image processors medcf never uses) are hidden unless --debug."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if logging := sys.modules.get("transformers.utils.logging"):  # imported already: env vars come too late
        logging.disable_progress_bar()
