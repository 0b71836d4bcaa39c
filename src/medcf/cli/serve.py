"""The web app command: `medcf app`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medcf.cli.app import DeviceOption, PrecisionOption, app, check_device, check_inputs, echo


@app.command("app")
def app_command(
    model: Annotated[
        Path | None, typer.Option(help="Model folder (diffusers layout); default: the shipped model of --anatomy.")
    ] = None,
    anatomy: Annotated[
        str, typer.Option(help="The shipped model to open without --model: cxr (cxr64) or brain (brain64).")
    ] = "cxr",
    out: Annotated[Path, typer.Option(help="Folder for every result the app writes.")] = Path("medcf-app-output"),
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the app to your network.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 7860,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Open the web UI: pick or upload an image, edit its clinical row, see the counterfactual, its signed
    attribution map and histogram, inpaint a painted region, download the results.

    Example: `medcf app` then open http://127.0.0.1:7860
    """
    check_inputs(model=model)
    from medcf.pretrained import SHIPPED_BY_ANATOMY, PretrainedModel, pretrained_path

    if anatomy not in SHIPPED_BY_ANATOMY:
        raise ValueError(f"--anatomy {anatomy}: choose {' or '.join(SHIPPED_BY_ANATOMY)}")
    device, precision = check_device(device, precision)
    from medcf.app.session import Workspace
    from medcf.app.ui import launch

    model = model or pretrained_path(SHIPPED_BY_ANATOMY[anatomy])

    if host not in ("127.0.0.1", "localhost"):
        echo(f"warning: binding {host}: anyone who can reach this machine can use the app and its files")
    echo(f"medcf app: http://{host}:{port} (Ctrl+C to stop); model on {device} at {precision}; results in {out}")
    launch(Workspace(PretrainedModel.load(model, device=device, precision=precision), out), host=host, port=port)
