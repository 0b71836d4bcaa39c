"""The typer app and the options shared by several commands."""

from __future__ import annotations

import unicodedata
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


ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML config (see configs/example.yaml); defaults apply without it.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one config field, e.g. --set train.max_steps=200 (repeatable)."),
]
ModelOption = Annotated[Path, typer.Option("--model", help="Model folder (diffusers layout, e.g. RUN/model).")]
ShippedModelOption = Annotated[
    Path | None, typer.Option("--model", help="Model folder (diffusers layout, e.g. RUN/model); default: cxr64.")
]
DeviceOption = Annotated[
    str, typer.Option(help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps.", show_default=True)
]
PrecisionOption = Annotated[
    str, typer.Option(help="auto (bf16 on a bf16 GPU, fp16 on other GPUs, fp32 on CPU), fp32, bf16 or fp16.")
]


def printable(text: str) -> str:
    """`text` for the terminal: control and format characters (an ESC sequence or a right-to-left override hidden in
    a file name or a prompt) shown escaped, as \\x1b or \\u202e, instead of acting on the terminal."""
    return "".join(
        char if char in "\n\t" or not unicodedata.category(char).startswith("C") else _escaped(char) for char in text
    )


def _escaped(char: str) -> str:
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def echo(text: str, *, err: bool = False) -> None:
    """typer.echo of `text` through `printable`: every line a command prints goes through here."""
    typer.echo(printable(text), err=err)


def parse_drift(text: str, *, scalar: bool = True) -> float | list[float]:
    """'0.05' → 0.05; '0.1,0,0,0' → [0.1, 0.0, 0.0, 0.0] (one δ per latent channel, or a δ grid)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"{text!r}: give a number like 0.05 or comma-separated numbers like 0.1,0,0,0") from None
    return values[0] if scalar and len(values) == 1 else values


def check_device(device: str, precision: str) -> tuple[str, str]:
    """(device, precision) as they will run, e.g. ("cuda:0", "bf16"); a one-line error before any work when the
    device is absent or the precision impossible on it."""
    from medcf.models.device import resolve_device
    from medcf.models.precision import resolve_precision

    where = resolve_device(device)
    return str(where), resolve_precision(precision, where)


def shipped_model() -> Path:
    """The shipped model's folder, for commands run without --model (as `medcf demo` and `medcf app` are)."""
    from medcf.pretrained import pretrained_path

    return pretrained_path()


def check_inputs(**paths: Path | None) -> None:
    """Fail in milliseconds, before the model libraries load, when a named input is missing."""
    for option, path in paths.items():
        if path is not None and not path.exists():
            raise ValueError(f"{path}: not found; check --{option.replace('_', '-')}")
    model = paths.get("model")
    if model is not None and not (model / "model_index.json").is_file():
        raise ValueError(f"{model}: no model_index.json; pass a model folder (e.g. RUN/model from medcf train)")
