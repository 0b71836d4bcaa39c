"""The sections of the `medcf demo` report: each computes its content and writes its pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from nilearn.datasets import load_mni152_template
from pydicom.data import get_testdata_file

from medcf.data import Cohort, read_image, read_images, write_image
from medcf.data.synthetic import preview_grid
from medcf.data.synthetic.kinds import get_kind
from medcf.figures import mask_outline, panel, save_figure, signed_heatmap
from medcf.prompts import STYLES, PromptTemplate
from medcf.report import Section, relative

FIGURES = "figures"


def cohort_section(
    out: Path, roots: dict[str, Path], cohorts: dict[str, Cohort], splits: dict[str, Cohort]
) -> Section:
    """Cohort sizes, finding prevalence, patient split and preview grids of the synthetic data."""
    table = []
    for name, cohort in cohorts.items():
        records = cohort.records
        findings = [column for column in records.columns if _is_binary(records[column]) and column != "no_finding"]
        prevalence = ", ".join(f"{f} {records[f].astype(float).mean():.0%}" for f in findings)
        table.append({"cohort": name, "images": len(cohort), "modality": cohort.modality, "prevalence": prevalence})
    table += [{"cohort": f"cxr / {name}", "images": len(part)} for name, part in splits.items()]
    figures = [
        (
            relative(preview_grid(root, out / FIGURES / f"preview_{name}.png", subjects=4), out),
            f"{name}: factual image, anatomy masks, finding masks, and every single-factor counterfactual "
            "with its true effect mask (red)",
        )
        for name, root in roots.items()
    ]
    text = (
        "Semi-synthetic cohorts built on real anatomy that ships with the install (the radiograph RG1_UNCR.dcm, "
        "the MNI152 template). Every subject comes with its exact counterfactuals and the mask of every change, "
        "read back through the generic folder adapter and split by patient (no patient in two splits)."
    )
    return Section("Ground-truth counterfactual cohorts", [text], figures, table)


def _is_binary(column: pd.Series) -> bool:
    values = set(pd.to_numeric(column, errors="coerce").dropna())
    return bool(values) and values <= {0.0, 1.0}


def prompt_section(cohorts: dict[str, Cohort], *, seed: int) -> Section:
    """The prompt each clinical row becomes, in every style, and its healthy counterpart."""
    table = []
    for cohort in cohorts.values():
        for _, record in cohort.records.head(3).iterrows():
            row = record.to_dict()
            for style in STYLES:
                template = PromptTemplate(cohort.modality, style=style)
                table.append({"id": row["id"], "style": style, "prompt": template.render(row, seed=seed)})
            healthy = PromptTemplate(cohort.modality, style="simple").healthy(row, seed=seed)
            table.append({"id": row["id"], "style": "healthy counterpart", "prompt": healthy})
    text = (
        "Clinical rows become text: 'table' follows DGM-VLC (missing values skipped, modality prefix), "
        "'simple' and 'diverse' follow Latent Drifting's prompt styles; the healthy-counterpart prompt is the "
        "target of the visual-attribution method."
    )
    return Section("Clinical prompts", [text], (), table)


def real_scans_section(out: Path) -> Section:
    """Real scans that ship in packages, read through medcf's I/O with their intensity conventions."""
    radiograph = read_image(get_testdata_file("RG1_UNCR.dcm"))
    ct = read_image(get_testdata_file("CT_small.dcm"))
    mni_path = out / "data" / "mni152.nii.gz"
    load_mni152_template(resolution=1).to_filename(mni_path)
    axial = read_images(mni_path, axis="axial")
    coronal = read_images(mni_path, axis="coronal")
    derived = write_image(out / "data" / "ct_derived.dcm", ct.pixels, like=ct)
    round_trip = float(np.abs(read_image(derived).values - ct.values)[(ct.pixels > 0) & (ct.pixels < 1)].max())
    tiles = [radiograph.pixels, ct.pixels, axial[len(axial) // 2].pixels, coronal[len(coronal) // 2].pixels]
    titles = ["RG1_UNCR.dcm (CR)", "CT_small.dcm (CT)", "MNI152 axial", "MNI152 coronal"]
    path = save_figure(panel([tiles], [titles], tile=200), out / FIGURES / "real_scans.png")
    table = [
        _scan_row("RG1_UNCR.dcm", radiograph, "MONOCHROME1 inverted: lungs dark, bone bright"),
        _scan_row("CT_small.dcm", ct, f"HU {ct.values.min():.0f}..{ct.values.max():.0f}"),
        _scan_row("MNI152 T1", axial[0], f"{len(axial)} axial slices"),
        {"scan": "ct_derived.dcm", "note": f"derived DICOM written and re-read: max HU error {round_trip:.2f}"},
    ]
    return Section(
        "Real scans",
        ["Display convention: 1 = bright as a radiologist sees it."],
        [(relative(path, out), "real scans read by medcf")],
        table,
    )


def _scan_row(name: str, image, note: str) -> dict[str, object]:
    provenance = image.provenance
    spacing = "x".join(f"{value:.3g}" for value in provenance.spacing) if provenance.spacing else "unknown"
    return {
        "scan": name,
        "size": f"{image.shape[0]}x{image.shape[1]}",
        "spacing_mm": spacing,
        "modality": provenance.modality or "",
        "note": note,
    }


def counterfactual_section(out: Path, test: Cohort, *, seed: int, size: int, subjects: int = 4) -> Section:
    """True healthy counterparts of held-out patients and the signed attribution map they define."""
    kind = get_kind("cxr")
    findings = [factor.name for factor in kind.factors if factor.levels == (0, 1)]
    sick = test.records[test.records[findings].astype(float).sum(axis=1) > 0].head(subjects)
    rows, titles, table = [], [], []
    for record in sick.itertuples():
        subject = kind.sample(seed, int(record.id.removeprefix(kind.name)))
        factual = kind.render(subject, size)
        healthy = kind.render(subject, size, **dict.fromkeys(findings, 0))
        difference = factual.image - healthy.image  # M = x − x_cf (signed), the visual-attribution map
        lesion = np.logical_or.reduce([factual.masks[f] for f in findings if f in factual.masks])
        present = [f for f in findings if float(getattr(record, f)) == 1]
        rows.append([factual.image, healthy.image, signed_heatmap(difference), mask_outline(factual.image, lesion)])
        titles.append([f"{record.id}: {', '.join(present)}", "healthy counterpart", "x - x_cf", "finding mask"])
        inside = np.abs(difference)[lesion].sum() / max(np.abs(difference).sum(), 1e-12)
        table.append({"id": record.id, "findings": ", ".join(present), "share of |M| inside mask": float(inside)})
    path = save_figure(panel(rows, titles, tile=160), out / FIGURES / "healthy_counterparts.png")
    text = (
        "For held-out patients with findings, the true healthy counterpart (same anatomy and noise, findings "
        "removed) and the signed map M = x − x_cf (red: brighter than the healthy counterpart). This is the "
        "reference a model's healthy-counterpart attribution map is scored against."
    )
    return Section(
        "Ground-truth healthy counterparts and attribution",
        [text],
        [(relative(path, out), "factual, healthy counterpart, signed difference, finding mask")],
        table,
    )
