"""Evaluation commands: evaluate (one model on its held-out patients) and benchmark (a whole suite)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medcf.cli.app import (
    DeviceOption,
    ModelOption,
    PrecisionOption,
    SeedOption,
    app,
    check_device,
    check_inputs,
    echo,
    parse_drift,
)
from medcf.cli.checks import check_options


@app.command()
def evaluate(
    model: ModelOption,
    data: Annotated[Path, typer.Option("--data", help="The dataset folder the model was trained on.")],
    out: Annotated[Path, typer.Option("--out", help="New folder for metrics.json, figures and report.")] = Path(
        "evaluation"
    ),
    classifier: Annotated[
        Path | None, typer.Option(help="Classifier folder (medcf train-classifier): effectiveness, fid_domain.")
    ] = None,
    inception: Annotated[
        Path | None, typer.Option(help="Local TorchScript inception-2015-12-05.pt for fid_inception.")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Held-out patients sampled for FID/KID.")] = 200,
    steps: Annotated[int, typer.Option(help="Sampler steps (DDIM).")] = 25,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 3.0,
    drift: Annotated[str, typer.Option(help="Latent Drift δ at inference.")] = "0",
    attribution_cases: Annotated[int, typer.Option(help="Unseen semi-synthetic patients per finding.")] = 24,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Judge a model on its held-out patients: FID/KID per extractor, diversity, effectiveness, memorisation
    audit, counterfactual soundness and (semi-synthetic data) attribution against the true masks.

    Example: `medcf evaluate --model runs/cxr/model --data cxr64 --classifier runs/classifier --out eval`
    """
    check_options(n=n, steps=steps, guidance=guidance, drift=parse_drift(drift), attribution_cases=attribution_cases,
                  seed=seed)  # fmt: skip
    check_inputs(model=model, data=data, classifier=classifier, inception=inception)
    device, precision = check_device(device, precision)
    from medcf.evaluation import EvaluationSettings, evaluate_to_folder

    settings = EvaluationSettings(
        n=n, num_inference_steps=steps, guidance_scale=guidance, latent_drift=parse_drift(drift),
        attribution_cases=attribution_cases, seed=seed, device=device, precision=precision,
    )  # fmt: skip
    folder = evaluate_to_folder(model, data, out, classifier=classifier, inception=inception, settings=settings)
    echo(f"metrics: {folder / 'metrics.json'}\nreport: {folder / 'index.html'}")


@app.command()
def benchmark(
    suite: Annotated[str, typer.Option(help="Benchmark suite: cxr-synth | brain-synth | ct-synth.")] = "cxr-synth",
    quick: Annotated[bool, typer.Option(help="CI size: tiny models, a few minutes on 2 CPUs.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for <suite>.md / .json / _fid.png.")] = Path(
        "benchmarks/results"
    ),
    work: Annotated[
        Path | None, typer.Option(help="Folder for data, models and caches (default: benchmarks/work/<suite>).")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only this method (e.g. 'Custom Diffusion') or run; repeatable. The other rows, the "
                          "attribution and the effect are kept from the existing <out>/<suite>.json."),
    ] = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Reproduce the papers' experiments at small scale on semi-synthetic images where the truth is known:
    FID/KID with and without Latent Drift for each fine-tuning method, prompt styles, effectiveness, attribution
    vs baselines; cxr-synth adds the smoking effect map, brain-synth Alzheimer's disease added and removed
    (inversion, Pix2Pix-Zero) and ageing (InstructPix2Pix on true age pairs), each ± Latent Drift and scored
    against the true counterfactual. ct-synth trains a 3-D diffusion model and a 3-D GAN on chest CT volumes and
    scores both: volume- and slice-wise distances, the smoking effect in HU against the truth, and edits of unseen
    patients. Finished stages in --work are reused, so a stopped benchmark continues.

    Example: `medcf benchmark --suite brain-synth --quick --out /tmp/bench`
    Add one method to a committed table: `medcf benchmark --suite cxr-synth --only 'Custom Diffusion'`
    """
    check_device(device, precision)
    from medcf.evaluation.benchmark import run_benchmark

    name = f"{suite}-quick" if quick else suite
    table = run_benchmark(suite, work or Path("benchmarks/work") / name, out, quick=quick, only=tuple(only or ()),
                          device=device, precision=precision)  # fmt: skip
    echo(f"table: {table}")
