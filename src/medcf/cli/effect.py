"""`medcf effect`: the population effect of one clinical attribute, beside the renderer's truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medcf.cli.app import (
    DeviceOption,
    PrecisionOption,
    SeedOption,
    ShippedModelOption,
    app,
    check_device,
    check_inputs,
    echo,
    parse_drift,
    shipped_model,
)
from medcf.cli.checks import check_options
from medcf.cli.editing import DriftOption, GuidanceOption, StepsOption


@app.command()
def effect(
    attribute: Annotated[str, typer.Option(help="smoking, sex, age or a finding key, e.g. nodule.")],
    model: ShippedModelOption = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the effect map, table and report.")] = Path("effect"),
    n: Annotated[int, typer.Option("--n", help="Matched pairs.")] = 200,
    low: Annotated[str | None, typer.Option(help="Edit of the reference arm, e.g. smoking=never.")] = None,
    high: Annotated[str | None, typer.Option(help="Edit of the other arm, e.g. smoking=current.")] = None,
    cohort: Annotated[
        str,
        typer.Option(help="Semi-synthetic cohort the base rows, anatomy atlas and truth come from: cxr, brain, ct."),
    ] = "cxr",
    anatomy: Annotated[str | None, typer.Option(help="Atlas mask name (default: lungs / brain).")] = None,
    size: Annotated[
        int | None, typer.Option(help="A volume model's in-plane cohort size (default: its training volumes').")
    ] = None,
    truth: Annotated[
        bool, typer.Option(help="Also measure the renderer's true effect on the same subjects, side by side.")
    ] = True,
    steps: StepsOption = 25,
    guidance: GuidanceOption = 3.0,
    drift: DriftOption = "0",
    batch_size: Annotated[int, typer.Option(help="Pairs per forward batch.")] = 16,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Population effect of one attribute: matched pairs (same noise, same other fields) differing only in
    it, averaged into a signed effect map, with the mean shift inside the anatomy and its bootstrap 95% CI, beside
    the renderer's true effect. 2-D and 3-D diffusion models and GANs; a CT model's effect is in HU.

    Example: `medcf effect --model runs/cxr/model --attribute smoking --n 200 --out smoking-effect`,
    `medcf effect --model runs/ct/model --cohort ct --attribute smoking --n 100 --out ct-smoking`
    """
    check_options(n=n, steps=steps, guidance=guidance, drift=parse_drift(drift), batch_size=batch_size, seed=seed)
    check_inputs(model=model)
    device, precision = check_device(device, precision)
    from medcf.attribution.effect_folder import effect_to_folder

    model = model or shipped_model()

    folder = effect_to_folder(
        model, attribute, out, n=n, low=low, high=high, cohort=cohort, anatomy=anatomy, size=size, truth=truth,
        num_inference_steps=steps, guidance_scale=guidance, latent_drift=parse_drift(drift), batch_size=batch_size,
        seed=seed, device=device, precision=precision,
    )  # fmt: skip
    echo(f"effect map: {folder / 'effect_map.png'}\nreport: {folder / 'index.html'}")
