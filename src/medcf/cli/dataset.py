"""`medcf data ...`: commands about a dataset download as a whole (today: `medcf data check`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medcf.cli.app import SeedOption, app, echo
from medcf.cli.checks import check_options
from medcf.config_checks import ADAPTER_NAMES

data_app = typer.Typer(help="Check a dataset download before training on it.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("check")
def check(
    root: Annotated[Path, typer.Argument(help="The dataset folder, as its download unpacked.")],
    adapter: Annotated[str, typer.Option(help=f"The layout to read: {', '.join(ADAPTER_NAMES)} (README: Datasets).")],
    table: Annotated[str | None, typer.Option(help="The table under ROOT, where the release has several.")] = None,
    modality: Annotated[str, typer.Option(help="Modality of the folder layout's prompts.")] = "chest X-ray",
    out: Annotated[Path, typer.Option(help="New folder for index.html, report.md, summary.json.")] = Path(
        "data-check"
    ),
    holdout_fraction: Annotated[float, typer.Option(help="Patients held out, when the release has no split.")] = 0.1,
    prompts: Annotated[int, typer.Option(help="Rows whose prompt is shown.")] = 8,
    preview: Annotated[int, typer.Option(help="Images in the preview grid.")] = 16,
    seed: SeedOption = 0,
) -> None:
    """Read a dataset as training would, decode every file and report what is there: counts, unreadable files,
    labels and demographics per split, prompts, a preview. Exits 1 when a file or a prompt fails.

    Example: `medcf data check ~/data/ChestX-ray14 --adapter nih --out nih-check`
    """
    check_options(seed=seed)
    if not 0 <= holdout_fraction < 1 or prompts < 0 or preview < 0:
        raise ValueError("--holdout-fraction must be in [0, 1), --prompts and --preview ≥ 0")
    from medcf.atomic import new_output_folder
    from medcf.data.adapters.registry import open_dataset
    from medcf.data.check import check_dataset

    new_output_folder(out)  # before reading thousands of files
    cohort = open_dataset(adapter, root, table=table, modality=modality)
    echo(f"{root}: {len(cohort)} images of {cohort.records['patient_id'].nunique()} patients ({adapter})")
    result = check_dataset(
        cohort, out, name=adapter, holdout_fraction=holdout_fraction, seed=seed, prompts=prompts, preview=preview
    )
    echo(f"report: {result.report}")
    if result.problems:
        for item in result.bad_files[:5]:
            echo(f"unreadable: {item.path} ({item.reason})", err=True)
        echo(
            f"error: {len(result.bad_files)} unreadable file(s), {result.prompt_errors} prompt error(s); "
            f"the report lists them; fix them or train with --set data.bad_files=skip",
            err=True,
        )
        raise typer.Exit(1)
