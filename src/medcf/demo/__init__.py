"""`medcf demo`: the end-to-end tour on the models and data that ship with the install, as an HTML report.

Each step is real and offline. On chest X-rays (`--anatomy cxr`, the default) the shipped model
(medcf.pretrained) generates from held-out patients' clinical prompts, draws healthy counterparts and
attribution maps scored against the true masks, makes age/smoking counterfactuals of a held-out patient and of
the real radiograph RG1_UNCR.dcm, and inpaints a lesion (model_sections.py). On brains (`--anatomy brain`) the
shipped brain model does the same for lesions and Alzheimer's disease, ages a held-out patient by 20 years
and gives them the disease beside the true counterfactuals, and edits the real MNI152 template slice
(brain_sections.py). Then semi-synthetic chest X-ray and brain MRI cohorts with ground-truth
counterfactuals are generated, read back through the generic dataset adapter, split by patient and
rendered into clinical prompts in every style; real shipped scans (the chest radiograph RG1_UNCR.dcm,
a CT slice, the MNI152 brain template) are read with the medical I/O layer; for held-out patients the
true healthy counterpart and its signed difference map (the attribution map a model must recover)
are drawn. The report is built in a temporary sibling folder and moved into place when complete.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from rich.progress import Progress

from medcf.atomic import atomic_folder
from medcf.data import split_by_patient
from medcf.data.adapters import image_folder
from medcf.data.synthetic import synthesize
from medcf.demo import brain_sections, model_sections
from medcf.demo.sections import cohort_section, counterfactual_section, prompt_section, real_scans_section
from medcf.pretrained import SHIPPED_BY_ANATOMY, PretrainedModel, pretrained_path
from medcf.report import Section, write_report

SUBJECTS = {"cxr": 80, "brain": 12}
MODALITIES = {"cxr": "chest X-ray", "brain": "brain MRI"}
RESOLUTION = 128


Step = Callable[..., Section]  # (out, model, *, seed) -> Section
MODEL_STEPS: dict[str, dict[str, Step]] = {
    "cxr": {
        "generation from clinical prompts": model_sections.generation_section,
        "healthy counterparts and attribution": model_sections.attribution_section,
        "counterfactuals of a held-out patient": model_sections.counterfactual_section,
        "counterfactuals of RG1_UNCR.dcm": model_sections.radiograph_section,
        "inpainting a lesion": model_sections.inpaint_section,
    },
    "brain": {
        "generation from clinical prompts": partial(model_sections.generation_section, kind="brain"),
        "healthy counterparts and attribution": partial(
            model_sections.attribution_section, kind="brain", findings=("lesion", "alzheimers_disease")
        ),
        "ageing and Alzheimer's disease of a held-out patient": brain_sections.ageing_section,
        "ageing and Alzheimer's disease of the MNI152 template": brain_sections.template_section,
        "inpainting a lesion": partial(model_sections.inpaint_section, kind="brain", finding="lesion"),
    },
}


def run_demo(
    out: Path, *, seed: int = 0, anatomy: str = "cxr", model: Path | None = None, device: str = "auto",
    precision: str = "auto",
) -> Path:
    """Run every demo step of `anatomy` (cxr or brain) into `out` (replacing an earlier demo there); returns its
    index.html. `model` is a 64 px model folder of that anatomy (default: the shipped one), run on `device` at
    `precision`."""
    if anatomy not in MODEL_STEPS:
        raise ValueError(f"--anatomy {anatomy}: choose {' or '.join(MODEL_STEPS)}")
    out = Path(out)
    _check_output(out)
    folder = model or pretrained_path(SHIPPED_BY_ANATOMY[anatomy])
    loaded = PretrainedModel.load(folder, device=device, precision=precision)
    with atomic_folder(out) as staging:
        _build(staging, seed=seed, model=loaded, anatomy=anatomy)
    return out / "index.html"


def _build(out: Path, *, seed: int, model: PretrainedModel, anatomy: str) -> None:
    steps = MODEL_STEPS[anatomy]
    with Progress(transient=True) as progress:
        task = progress.add_task("medcf demo: load the model", total=len(steps) + 6)
        sections = [model_sections.model_section(model)]
        for name, step in steps.items():
            progress.update(task, advance=1, description=f"medcf demo: {name}")
            with model.autocast():
                sections.append(step(out, model, seed=seed))
        progress.update(task, advance=1, description="medcf demo: synthesise cohorts")
        roots = {
            kind: synthesize(kind, out / "data" / kind, n=n, size=RESOLUTION, seed=seed, progress=False)
            for kind, n in SUBJECTS.items()
        }
        cohorts = {kind: image_folder(root, modality=MODALITIES[kind]) for kind, root in roots.items()}
        splits = split_by_patient(cohorts["cxr"], {"train": 0.75, "test": 0.25}, seed=seed)
        progress.update(task, advance=1, description="medcf demo: prompts")
        sections += [cohort_section(out, roots, cohorts, splits), prompt_section(cohorts, seed=seed)]
        progress.update(task, advance=1, description="medcf demo: real scans")
        sections.append(real_scans_section(out))
        progress.update(task, advance=1, description="medcf demo: true healthy counterparts")
        if anatomy == "cxr":  # the brain tour scores its maps against the truth above
            sections.append(counterfactual_section(out, splits["test"], seed=seed, size=RESOLUTION))
        progress.update(task, advance=1, description="medcf demo: report")
        write_report(out, "medcf demo", sections)
        progress.update(task, advance=1)


def _check_output(out: Path) -> None:
    """Only an earlier demo output may be replaced; any other non-empty folder is left alone."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file; pass --out a folder")
    if out.exists() and any(out.iterdir()) and not (out / "index.html").exists():
        raise ValueError(f"{out}: folder exists and is not a medcf demo output; pass --out a new folder")
