"""brain-synth's edit experiments, scored on unseen semi-synthetic patients whose true counterfactual is known.

Latent Drifting (Yeganeh et al., CVPR 2025, §4) adds and removes Alzheimer's disease with Pix2Pix-Zero on a basic
fine-tuned model, with and without Latent Drift, and ages brains with InstructPix2Pix trained on longitudinal
pairs, with and without it; it shows the results as pictures. Here every edit is scored against the renderer's
truth for the same patients (`medcf.evaluation.atrophy`): the mean change inside and outside the true effect
region, the correlation of the edit's change with the true change, the error against the true counterfactual,
each atrophy measure's change beside the truth's, and for Alzheimer's disease the verdict of the real-data
classifier. The InstructPix2Pix models are fine-tuned from the suite's base on the cohort's true (age, age ± 20)
pairs of training patients only; the other engines edit the basic fine-tunes of the generation table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from medcf.classifier import ImageClassifier
from medcf.evaluation.atrophy import (
    BRAIN_EDITS,
    AtrophyCases,
    atrophy_cases,
    atrophy_rows,
    edit_cases,
    truth_agreement,
)
from medcf.evaluation.counterfactuals import classifier_agreement
from medcf.evaluation.suite import SuiteSize, common_overrides
from medcf.models import Components, load_components
from medcf.models.precision import inference_precision
from medcf.prompts import PromptTemplate

# InstructPix2Pix's training pairs: the renderer's age counterfactuals (AGE_STEP = 20 years) in both directions
AGE_PAIRS = 'instruction in ["make the patient 20 years older", "make the patient 20 years younger"]'
INSTRUCT = "InstructPix2Pix (true age pairs)"
SAMPLER = {"strength": 0.8, "guidance_scale": 3.0}  # the shipped brain64's edit settings


@dataclass(frozen=True)
class EditSize:
    patients: int  # unseen patients per edit
    num_inference_steps: int
    instruct_steps: int  # InstructPix2Pix fine-tuning steps


EDIT_SIZES = {"quick": EditSize(3, 4, 20), "full": EditSize(16, 20, 300)}


@dataclass(frozen=True)
class EngineRun:
    """One engine on one model: `model` names a run of the generation table or the InstructPix2Pix model."""

    label: str
    engine: str
    model: str
    drifted: bool  # the model fine-tuned, and the edit sampled, with the suite's δ


def engine_runs(edit: str) -> list[EngineRun]:
    """Alzheimer's edits: inversion and Pix2Pix-Zero on the basic fine-tune ± LD; ageing adds InstructPix2Pix."""
    runs = []
    for drifted in (False, True):
        model, suffix = "basic fine-tune", " + LD" if drifted else ""
        runs += [EngineRun(f"inversion{suffix}", "inversion", model, drifted),
                 EngineRun(f"Pix2Pix-Zero{suffix}", "pix2pix-zero", model, drifted)]  # fmt: skip
        if edit == "20 years older":
            runs.append(EngineRun(f"InstructPix2Pix{suffix}", "instruct", INSTRUCT, drifted))
    return runs


def instruct_overrides(size: SuiteSize, edits: EditSize, data: str, base: str, delta: float) -> tuple[str, ...]:
    """`medcf train --set` overrides of the InstructPix2Pix run (δ = `delta` in training)."""
    return (
        *common_overrides(size, data, 0), f"model.pretrained={base}", "train.method=instruct-pix2pix",
        "data.pairs=counterfactuals", f"data.filter={AGE_PAIRS}", "train.learning_rate=1e-4",
        f"train.max_steps={edits.instruct_steps}", f"train.latent_drift={delta}",
    )  # fmt: skip


def brain_edit_rows(
    models: dict[tuple[str, bool], Path],
    classifier: ImageClassifier,
    edits: EditSize,
    *,
    size: int,
    latent_drift: float,
    cache: Callable[[Path, dict, Callable[[], dict]], dict],
    precision: str,
    device: str,
    seed: int = 0,
) -> list[dict[str, object]]:
    """One row per (edit, engine run); `models[(model name, drifted)]` is each model folder, `cache(model, key,
    compute)` keeps each row (benchmark.cached_stage on the suite's file, keyed by the model's weights too)."""
    rows, loaded = [], {}
    progress = tqdm(total=sum(len(engine_runs(edit)) for edit in BRAIN_EDITS), desc="medcf: brain edits vs truth",
                    unit="engine")  # fmt: skip
    for edit, (changes, truth_of, years, alzheimers, per) in BRAIN_EDITS.items():
        cases = atrophy_cases(edits.patients, truth_of, size=size, years=years, alzheimers=alzheimers, seed=seed)
        for run in engine_runs(edit):
            folder = models[(run.model, run.drifted)]
            key = {"edit": edit, "engine": run.label, "sizes": asdict(edits), "seed": seed, "precision": precision}
            if folder not in loaded:  # one model in memory at a time
                loaded = {folder: (load_components(folder, device=device), PromptTemplate.from_pretrained(folder))}
            score = partial(_scored_edit, *loaded[folder], classifier, cases, changes, run,
                            delta=latent_drift if run.drifted else 0.0, per=per, edits=edits, precision=precision,
                            seed=seed)  # fmt: skip
            rows.append({"edit": edit, "engine": run.label, "model": folder.parent.name, **cache(folder, key, score)})
            progress.update()
    progress.close()
    return rows


def _scored_edit(
    components: Components,
    template: PromptTemplate,
    classifier: ImageClassifier,
    cases: AtrophyCases,
    changes: tuple[str, ...],
    run: EngineRun,
    *,
    delta: float,
    per: float,
    edits: EditSize,
    precision: str,
    seed: int,
) -> dict[str, object]:
    sampler = {**SAMPLER, "num_inference_steps": edits.num_inference_steps, "latent_drift": delta}
    if run.engine == "instruct":  # from pure noise, as the paper edits and as the committed brain-synth rows were made
        sampler["strength"] = 1.0
    with inference_precision(precision, components.unet.device):
        edited = edit_cases(components, template, cases, changes, engine=run.engine, seed=seed, **sampler)
    atrophy = atrophy_rows(cases, edited, per=per, seed=seed)
    ventricles = next(row for row in atrophy if row["measure"] == "ventricles")
    verdict = None
    if "alzheimers_disease" in changes[0]:
        images = torch.from_numpy(edited).float()[:, None] * 2 - 1
        verdict = classifier_agreement(classifier, images, "alzheimers_disease", float(changes[0].endswith("present")))
    return {
        **truth_agreement(cases, edited, seed=seed),
        "ventricles": ventricles["model"], "ventricles true": ventricles["truth"],
        "ventricles r": ventricles["correlation across patients"], "effectiveness": verdict,
        "latent drift": delta, "atrophy": atrophy,
    }  # fmt: skip
