"""Editing and attribution commands: counterfactual, inpaint, attribute, train-classifier (effect: cli/effect.py)."""

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
from medcf.cli.backends import counterfactual_other_backend, other_backend
from medcf.cli.checks import check_options

ImageOption = Annotated[Path, typer.Option("--image", help="PNG, DICOM or NIfTI slice.")]
OutOption = Annotated[Path, typer.Option("--out", help="New folder for the result PNGs, panel and report.")]
RowOption = Annotated[
    list[str] | None,
    typer.Option("--row", help="Clinical field of the image, e.g. --row age=63 --row nodule=1 (repeatable)."),
]
StepsOption = Annotated[int, typer.Option(help="Sampler steps (DDIM).")]
GuidanceOption = Annotated[float, typer.Option(help="Classifier-free guidance scale.")]
DriftOption = Annotated[str, typer.Option(help="Latent Drift δ: one number, or one per latent channel.")]
EngineOption = Annotated[
    str,
    typer.Option(
        help="inversion (DDIM inversion), sdedit (partial noising), pix2pix-zero (inversion, an edit direction "
        "from paraphrases of the rows, cross-attention guidance; about 2.6× slower) or instruct (a model trained "
        "with train.method=instruct-pix2pix, told what to change)."
    ),
]
CrossAttentionGuidanceOption = Annotated[
    float | None,
    typer.Option(
        help="pix2pix-zero only: weight λ_xa of the step keeping the source's cross-attention maps "
        "(default 0.1, as in the paper; 0 turns it off).",
        show_default=False,
    ),
]
ImageGuidanceOption = Annotated[
    float | None,
    typer.Option(help="instruct only: the source image's guidance scale s_I (default 1.5).", show_default=False),
]
ResidualOption = Annotated[
    bool,
    typer.Option(
        help="Return x + D(edit) − D(reconstruction): the VAE's and inversion's reconstruction error cancels and a "
        "null edit gives the image back exactly (twice the time). --no-residual returns the decoded edit, which "
        "carries the VAE's error everywhere (0.018 of the range on cxr64, more on small findings).",
    ),
]
IndexOption = Annotated[
    int | None, typer.Option("--index", help="Frame of a multi-frame DICOM or axial slice of a NIfTI volume, from 0.")
]
PatientInfoOption = Annotated[
    bool | None,
    typer.Option(
        "--patient-info/--no-patient-info",
        help="Age, sex and smoking in the edit's prompts (default: as the model was trained); "
        "--no-patient-info shortens prompts the text encoder would cut.",
        show_default=False,
    ),
]
RecordNamesOption = Annotated[
    bool,
    typer.Option(
        "--record-names",
        help="Write the image and mask paths into settings.json and the report (default: SHA-256 and suffix only, "
        "as file names often carry patient names or IDs).",
    ),
]


@app.command("counterfactual")
def counterfactual_command(
    image: ImageOption,
    set_: Annotated[
        list[str], typer.Option("--set", help="Edit of the clinical row, e.g. pneumonia=absent, age+=20 (repeatable).")
    ],
    out: OutOption,
    model: ShippedModelOption = None,
    row: RowOption = None,
    engine: EngineOption = "inversion",
    strength: Annotated[float, typer.Option(help="Fraction of the steps re-run, in (0, 1].")] = 0.8,
    steps: StepsOption = 50,
    guidance: GuidanceOption = 3.0,
    drift: DriftOption = "0",
    null_text: Annotated[bool, typer.Option(help="Null-text inversion for fidelity (slower).")] = False,
    cross_attention_guidance: CrossAttentionGuidanceOption = None,
    image_guidance: ImageGuidanceOption = None,
    residual: ResidualOption = True,
    patient_info: PatientInfoOption = None,
    mask: Annotated[Path | None, typer.Option(help="Only this region may change (white on black).")] = None,
    index: IndexOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    record_names: RecordNamesOption = False,
) -> None:
    """The image with its clinical row edited: writes the counterfactual (PNG, and DICOM/NIfTI like the
    input), the signed change and a side-by-side panel.

    Example: `medcf counterfactual --model runs/cxr/model --image x.dcm --set pneumonia=absent --out cf`
    """
    check_options(strength=strength, steps=steps, guidance=guidance, drift=parse_drift(drift), seed=seed)
    check_inputs(model=model, image=image, mask=mask)
    device, precision = check_device(device, precision)
    from medcf.editing.to_folder import counterfactual_to_folder

    model = model or shipped_model()
    if other_backend(model, engine=engine, mask=mask, null_text=null_text, image_guidance=image_guidance):
        return counterfactual_other_backend(
            model, image, set_, out, row=row or [], strength=strength, steps=steps, guidance=guidance,
            drift=parse_drift(drift), residual=residual, index=index, device=device, precision=precision,
            record_names=record_names, patient_info=patient_info,
        )  # fmt: skip

    folder = counterfactual_to_folder(
        model, image, set_, out, row=row or [], engine=engine, strength=strength, num_inference_steps=steps,
        guidance_scale=guidance, latent_drift=parse_drift(drift), null_text=null_text,
        cross_attention_guidance=cross_attention_guidance, mask=mask, index=index, seed=seed, device=device,
        precision=precision, show_names=record_names, patient_info=patient_info, image_guidance_scale=image_guidance,
        residual=residual,
    )  # fmt: skip
    echo(f"counterfactual: {folder / 'counterfactual.png'}\nreport: {folder / 'index.html'}")


@app.command()
def inpaint(
    image: ImageOption,
    mask: Annotated[Path, typer.Option("--mask", help="Region to regenerate (white on black).")],
    prompt: Annotated[str, typer.Option("--prompt", help='What the region should show, e.g. "consolidation".')],
    out: OutOption,
    model: ShippedModelOption = None,
    steps: StepsOption = 50,
    guidance: GuidanceOption = 3.0,  # = editing.to_folder.INPAINT_GUIDANCE (not imported: the CLI starts fast)
    drift: DriftOption = "0",
    resample: Annotated[int, typer.Option(help="RePaint resampling per step (1 = none).")] = 2,
    index: IndexOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    record_names: RecordNamesOption = False,
) -> None:
    """Induce a finding inside a mask from a prompt, zero-shot; outside the mask the image is unchanged.

    Example: `medcf inpaint --model runs/cxr/model --image x.png --mask rll.png --prompt "chest X-ray with
    right lower lobe consolidation" --out lesion`
    """
    check_options(steps=steps, guidance=guidance, drift=parse_drift(drift), resample=resample, seed=seed)
    check_inputs(model=model, image=image, mask=mask)
    device, precision = check_device(device, precision)
    from medcf.editing.to_folder import inpaint_to_folder

    model = model or shipped_model()

    folder = inpaint_to_folder(
        model, image, mask, prompt, out, num_inference_steps=steps, guidance_scale=guidance,
        latent_drift=parse_drift(drift), resample_steps=resample, index=index, seed=seed, device=device,
        precision=precision, show_names=record_names,
    )  # fmt: skip
    echo(f"inpainted: {folder / 'inpainted.png'}\nreport: {folder / 'index.html'}")


@app.command()
def attribute(
    image: ImageOption,
    out: OutOption,
    model: ShippedModelOption = None,
    row: RowOption = None,
    classifier: Annotated[
        Path | None,
        typer.Option(help="Classifier folder (medcf train-classifier) for the saliency/Grad-CAM baselines."),
    ] = None,
    seeds: Annotated[
        int, typer.Option(help="Counterparts averaged (sdedit, instruct; inversion, pix2pix-zero: deterministic).")
    ] = 3,
    engine: EngineOption = "inversion",
    strength: Annotated[float, typer.Option(help="Fraction of the steps re-run, in (0, 1].")] = 0.6,
    steps: StepsOption = 25,  # as many as needed: AUROC of 50 within 0.01 (benchmarks/attribution_fast_path)
    guidance: GuidanceOption = 3.0,
    drift: DriftOption = "0",
    cross_attention_guidance: CrossAttentionGuidanceOption = None,
    image_guidance: ImageGuidanceOption = None,
    residual: ResidualOption = True,
    sigma: Annotated[float, typer.Option(help="Gaussian smoothing of the map, pixels.")] = 1.0,
    anatomy_mask: Annotated[Path | None, typer.Option(help="Keep the map inside this mask only.")] = None,
    finding: Annotated[
        str | None,
        typer.Option(help="Map this finding only: its counterpart keeps the row's other findings (e.g. nodule)."),
    ] = None,
    patient_info: PatientInfoOption = None,
    index: IndexOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    record_names: RecordNamesOption = False,
) -> None:
    """Where the image departs from its healthy counterpart: the signed map M = x − x_healthy, its overlay,
    the counterpart, and classifier baselines when given.

    Example: `medcf attribute --model runs/cxr/model --image x.png --row nodule=1 --out attribution`
    """
    check_options(seeds=seeds, strength=strength, steps=steps, guidance=guidance, drift=parse_drift(drift),
                  sigma=sigma, seed=seed)  # fmt: skip
    check_inputs(model=model, image=image, classifier=classifier, anatomy_mask=anatomy_mask)
    device, precision = check_device(device, precision)
    from medcf.attribution.to_folder import attribute_to_folder

    model = model or shipped_model()

    folder = attribute_to_folder(
        model, image, out, row=row or [], classifier=classifier, seeds=range(seed, seed + seeds), engine=engine,
        strength=strength, num_inference_steps=steps, guidance_scale=guidance, latent_drift=parse_drift(drift),
        cross_attention_guidance=cross_attention_guidance, sigma=sigma, anatomy_mask=anatomy_mask, index=index,
        device=device, precision=precision, show_names=record_names, patient_info=patient_info,
        image_guidance_scale=image_guidance, residual=residual, finding=finding,
    )  # fmt: skip
    echo(f"attribution map: {folder / 'map.png'}\nreport: {folder / 'index.html'}")


@app.command("train-classifier")
def train_classifier(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (metadata.csv + images).")],
    out: Annotated[Path, typer.Option("--out", help="Classifier folder to write.")] = Path("runs/classifier"),
    resolution: Annotated[int, typer.Option(help="Image side in pixels (match the diffusion model).")] = 64,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Label column (repeatable; default: every finding column).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 1500,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 32,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Train the small CNN classifier (attribution baselines, effectiveness) with held-out patients.

    Example: `medcf train-classifier --data cxr-synth --resolution 64 --out runs/classifier`
    """
    if not (data / "metadata.csv").is_file():
        raise ValueError(
            f"{data / 'metadata.csv'}: not found; point --data at a dataset folder (e.g. from medcf synth)"
        )
    check_options(resolution=resolution, steps=steps, batch_size=batch_size, seed=seed)
    device, precision = check_device(device, precision)
    from medcf.classifier import train_classifier_to_folder

    folder = train_classifier_to_folder(
        data, out, resolution=resolution, label_names=label, steps=steps, batch_size=batch_size, seed=seed,
        device=device, precision=precision,
    )  # fmt: skip
    echo(f"classifier: {folder}\nreport: {folder / 'index.html'}")
