"""The `medcf` command line: one thin function per command, each calling one library function.

Errors are one line on stderr and a non-zero exit; `--debug` (or MEDCF_DEBUG=1) shows the traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="medcf",
    help="Counterfactual medical image synthesis with vision-language latent diffusion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

DebugOption = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")]
SeedOption = Annotated[int, typer.Option(help="Random seed; the same seed gives the same output.")]


@app.callback()
def _root(debug: DebugOption = False) -> None:
    """Counterfactual medical image synthesis with vision-language latent diffusion.

    Start with `medcf demo`; every command has `--help` with examples.
    """


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the report (index.html) and its pictures.")] = Path(
        "demo-output"
    ),
    seed: SeedOption = 0,
) -> None:
    """Run the end-to-end demo on the embedded default data; writes OUT/index.html.

    Example: `medcf demo --out demo-output`
    """
    from medcf.demo import run_demo

    report = run_demo(out, seed=seed)
    typer.echo(f"demo report: {report}")


def main() -> None:
    """Console-script entry point: run the app, turning exceptions into one clean line."""
    debug = "--debug" in sys.argv or os.environ.get("MEDCF_DEBUG") == "1"
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: every failure becomes one line
        if debug:
            raise
        typer.echo(f"error: {_one_line(exc)}", err=True)
        raise SystemExit(1) from None


def _one_line(exc: Exception) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (ValueError, OSError)):  # user-facing errors carry the file and the fix
        return message
    return f"{type(exc).__name__}: {message} (unexpected; rerun with --debug and report it)"
