"""Data commands: demo, info, convert, prompts, synth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medcf.cli.app import DeviceOption, PrecisionOption, SeedOption, app, check_device, check_inputs, echo
from medcf.cli.checks import check_options


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the report (index.html) and its pictures.")] = Path(
        "demo-output"
    ),
    seed: SeedOption = 0,
    anatomy: Annotated[
        str, typer.Option(help="cxr: chest X-rays and RG1_UNCR.dcm; brain: brain MRI and the MNI152 template.")
    ] = "cxr",
    model: Annotated[
        Path | None, typer.Option(help="A 64 px model folder of that anatomy to tour instead of the shipped one.")
    ] = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
) -> None:
    """Run the end-to-end demo with a shipped model on held-out patients and real scans; writes OUT/index.html.

    Example: `medcf demo --out demo-output` or `medcf demo --anatomy brain --out demo-brain`
    """
    check_options(seed=seed)
    check_inputs(model=model)
    from medcf.demo import MODEL_STEPS, run_demo

    if anatomy not in MODEL_STEPS:
        raise ValueError(f"--anatomy {anatomy}: choose {' or '.join(MODEL_STEPS)}")
    device, precision = check_device(device, precision)
    report = run_demo(out, seed=seed, anatomy=anatomy, model=model, device=device, precision=precision)
    echo(f"demo report: {report}")


AxisOption = Annotated[str, typer.Option(help="NIfTI slicing plane: axial, coronal or sagittal.")]


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="PNG, JPEG, DICOM or NIfTI file.")],
    axis: AxisOption = "axial",
) -> None:
    """Show what medcf reads from an image file: size, slices, spacing, modality, intensities.

    Example: `medcf info scan.nii.gz --axis coronal`
    """
    from medcf.data.io import read_images

    images = read_images(path, axis=axis)
    first = images[0]
    provenance = first.provenance
    echo(f"{path}: {provenance.format}, {len(images)} image(s) of {first.shape[0]}x{first.shape[1]} px")
    echo(f"  modality: {provenance.modality or 'unknown'}; spacing (mm): {provenance.spacing or 'unknown'}")
    values = [image.values for image in images]
    echo(
        f"  values ({'HU' if provenance.modality == 'CT' else 'modality units'}): "
        f"{min(v.min() for v in values):.6g} .. {max(v.max() for v in values):.6g}"
    )


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="PNG, JPEG, DICOM or NIfTI file to read.")],
    target: Annotated[Path, typer.Argument(help="Output .png (8/16-bit grey), or .dcm / .nii.gz (source geometry).")],
    index: Annotated[int | None, typer.Option(help="Frame or slice to take from a multi-image file.")] = None,
    axis: AxisOption = "axial",
    bit_depth: Annotated[int, typer.Option(help="PNG bit depth: 8 or 16.")] = 16,
) -> None:
    """Read one image through medcf's intensity convention and write it as a display-ready PNG.

    DICOM/NIfTI targets keep the source geometry and are marked derived.
    Example: `medcf convert chest.dcm chest.png` or `medcf convert brain.nii.gz slice.png --index 90`
    """
    from medcf.data.io import read_image, write_image, write_png

    image = read_image(source, index=index, axis=axis)
    if target.suffix.lower() == ".png":
        written = write_png(target, image.pixels, bit_depth=bit_depth)
    else:
        written = write_image(target, image.pixels, like=image)
    echo(f"wrote {written}")


@app.command()
def prompts(
    csv: Annotated[Path, typer.Option(help="Clinical table (.csv/.csv.gz/.xlsx) with canonical columns.")],
    modality: Annotated[str, typer.Option(help="Modality named in the prompt, e.g. 'chest X-ray', 'brain MRI'.")] = (
        "chest X-ray"
    ),
    style: Annotated[str, typer.Option(help="table (DGM-VLC), simple or diverse (Latent Drifting).")] = "table",
    patient_info: Annotated[bool, typer.Option(help="Include age, sex and smoking.")] = True,
    healthy: Annotated[bool, typer.Option(help="Print the healthy-counterpart prompt of each row instead.")] = False,
    vocabulary: Annotated[Path | None, typer.Option(help="YAML extending the radiology vocabulary.")] = None,
    id_column: Annotated[str, typer.Option(help="Column that names each row.")] = "id",
    limit: Annotated[int, typer.Option(help="Print at most this many rows (0 = all).")] = 20,
    seed: SeedOption = 0,
) -> None:
    """Print the text prompt each row of a clinical table becomes, for inspection.

    Missing values are skipped; unknown columns read '<field> is <value>'.
    Example: `medcf prompts --csv metadata.csv --style diverse --no-patient-info`
    """
    from medcf.data.table import load_table, where
    from medcf.prompts import DEFAULT_VOCABULARY, PromptTemplate

    words = _load_vocabulary(vocabulary) if vocabulary else DEFAULT_VOCABULARY
    template = PromptTemplate(modality, style=style, patient_info=patient_info, vocabulary=words)
    table = load_table(csv, id_column=id_column)
    for index, row in (table.head(limit) if limit else table).iterrows():
        fields = row.to_dict()
        try:
            text = template.healthy(fields, seed=seed) if healthy else template.render(fields, seed=seed)
        except ValueError as exc:
            raise ValueError(f"{where(csv, index)}: {exc}") from exc
        echo(f"{fields[id_column]}\t{text}")


def _load_vocabulary(path: Path):
    import yaml

    from medcf.prompts import Vocabulary

    if not path.is_file():
        raise FileNotFoundError(f"{path}: vocabulary file not found; see configs/vocabulary.example.yaml")
    try:
        mapping = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(exc).split())}); fix the syntax") from exc
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level; see configs/vocabulary.example.yaml")
    return Vocabulary.from_mapping(mapping)


VOLUME_KINDS = {"brain": "brain3d", "brain3d": "brain3d", "ct": "ct"}  # what `medcf synth KIND --3d` writes


@app.command()
def synth(
    kind: Annotated[
        str,
        typer.Argument(help="cxr (chest X-ray), brain (brain MRI; axial slices, --3d volumes) or ct (3-D chest CT)."),
    ],
    out: Annotated[
        Path, typer.Option(help="New folder for images/ (3-D: volumes/), masks, metadata.csv and counterfactuals/.")
    ],
    n: Annotated[int, typer.Option(help="Number of subjects.")] = 2000,
    size: Annotated[
        int | None,
        typer.Option(help="Square image side in pixels; 3-D: in-plane voxels (ct SIZE/2 slices, brain 3 SIZE/4)."),
    ] = None,
    volumes: Annotated[
        bool, typer.Option("--3d", help="Write 3-D NIfTI volumes: brain as MNI152-based T1 volumes; ct always is.")
    ] = False,
    seed: SeedOption = 0,
    counterfactuals: Annotated[bool, typer.Option(help="Also write every single-factor counterfactual.")] = True,
    preview: Annotated[bool, typer.Option(help="Write preview.png: a grid of subjects and counterfactuals.")] = True,
) -> None:
    """Generate a semi-synthetic cohort with ground-truth counterfactuals and effect masks.

    Default size: 128 for cxr and brain, 64 for ct (64x64x32 voxels) and brain --3d (64x64x48 voxels of 3.75 mm).
    Example: `medcf synth cxr --n 2000 --size 128 --seed 0 --out cxr-synth`, `medcf synth ct --n 50 --out ct-synth`
    or `medcf synth brain --3d --n 200 --out brain3d-synth`
    """
    from medcf.data.synthetic import preview_grid, synthesize

    if volumes:
        if kind not in VOLUME_KINDS:
            raise ValueError(f"--3d: {kind!r} has no 3-D cohort; use it with brain or ct, or drop --3d for {kind}")
        kind = VOLUME_KINDS[kind]
    root = synthesize(kind, out, n=n, size=size, seed=seed, counterfactuals=counterfactuals)
    echo(f"wrote {n} {kind} subjects to {root}")
    if preview and counterfactuals:
        echo(f"preview: {preview_grid(root, root / 'preview.png', subjects=min(n, 6))}")
