"""`medcf benchmark --suite cxr-synth|brain-synth`: train every run of the suite (suite.py), score each on the
held-out patients, and write one table (Markdown + JSON) with the hardware, versions and timings (ct-synth, two 3-D
backends rather than fine-tunes of a base: ct_benchmark.py).

Stages are cached in the work folder: a finished model is not trained again and a model's scores are kept
beside it (`scores.json`, keyed by the scoring settings and the weights file), so an interrupted benchmark
continues where it stopped. Same seeds → same numbers (every stage is seeded; CPU runs are deterministic).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TypeVar

from medcf.attribution.effect import population_effect
from medcf.attribution.effect_folder import effect_to_folder
from medcf.attribution.effect_pairs import cohort_anatomy_mask, cohort_pairs
from medcf.classifier import ImageClassifier, fit_classifier, labelled_images, load_classifier, save_classifier
from medcf.classifier.features import ClassifierFeatures
from medcf.config import config_dict, load_config
from medcf.evaluation.attribution import attribution_scores
from medcf.evaluation.benchmark_merge import earlier_results, merged_results, selected_runs
from medcf.evaluation.benchmark_report import write_benchmark
from medcf.evaluation.brain_edits import EDIT_SIZES, INSTRUCT, SAMPLER, brain_edit_rows, instruct_overrides
from medcf.evaluation.ct_benchmark import run_ct_benchmark
from medcf.evaluation.ct_suite import CT_SUITE
from medcf.evaluation.data import EvaluationSet, RunSplit, evaluation_set
from medcf.evaluation.generation import distribution_scores, generate_for_rows, rendered_prompts, sample_effectiveness
from medcf.evaluation.stages import (
    cached_stage,
    placement_key,
    synthesized,
    trained,
    trained_vae,
    training_seconds,
    weights_stamp,
)
from medcf.evaluation.suite import (
    SUITES,
    Suite,
    SuiteRun,
    SuiteSize,
    base_overrides,
    common_overrides,
    slug,
    suite_runs,
)
from medcf.metrics.features import EfficientNetLite0Features
from medcf.models import load_components
from medcf.models.device import resolve_device, run_settings
from medcf.models.precision import inference_precision
from medcf.pretrained import pretrained_path
from medcf.prompts import PromptTemplate, instance_prompt
from medcf.training.data import TRAIN, load_cohorts
from medcf.training.record import environment

SEED = 0
T = TypeVar("T")
# The healthy-counterpart settings (their precision is the benchmark's: fp32 on a CPU, whatever its bf16 units).
ATTRIBUTION = {"engine": "inversion", "strength": 0.6, "guidance_scale": 3.0}
REFERENCE = "basic fine-tune, δ=0"  # diverse prompts with patient info: the model attribution and effect use


def run_benchmark(
    suite: str,
    work: str | Path,
    out: str | Path,
    *,
    quick: bool = False,
    only: tuple[str, ...] = (),
    device: str = "auto",
    precision: str = "auto",
) -> Path:
    """Run the suite in `work` (cached stages), write `out/<suite>[-quick].md` and `.json`; returns the .md.

    `device`/`precision` place the scoring (sampling, attribution, effect); training goes where accelerate puts
    it (`medcf train`). Scores are cached per device type and precision: a GPU's bf16 scores never pose as fp32.
    `only` (method or run names) runs those rows and keeps the rest of the existing results (benchmark_merge.py).
    """
    if suite == CT_SUITE:  # 3-D models of two backends, not fine-tunes of a base (ct_benchmark.py)
        if only:
            raise ValueError("--only picks fine-tuning runs of cxr-synth or brain-synth; run ct-synth whole")
        return run_ct_benchmark(work, out, quick=quick, device=device, precision=precision)
    if suite not in SUITES:
        raise ValueError(f"suite {suite!r} is unknown; choose one of {', '.join([*SUITES, CT_SUITE])}")
    spec = SUITES[suite]
    placement = run_settings(resolve_device(device), precision)
    place = {"device": placement["device"].split(":")[0], "precision": placement["precision"]}
    size, work, started = spec.sizes["quick" if quick else "full"], Path(work), time.perf_counter()
    header = {"suite": suite, "size": "quick" if quick else "full", "settings": asdict(size), "seed": SEED}
    name, runs = f"{suite}{'-quick' if quick else ''}", suite_runs(spec, size)
    chosen = selected_runs(runs, only, suite) if only else runs
    earlier = earlier_results(Path(out) / f"{name}.json", header, runs, chosen) if only else None
    work.mkdir(parents=True, exist_ok=True)
    data = _stage_data(spec, size, work / "data")
    vae = _stage_vae(spec, size, data, work / "vae")
    base = trained(base_overrides(spec, size, str(data), str(vae), SEED), work / "base")
    classifier, classifier_metrics = _stage_classifier(spec, size, data, work / "classifier")
    split = RunSplit(0.1, SEED, "")
    held_out = evaluation_set(data, resolution=size.resolution, modality=spec.modality, split=split, limit=1000)
    rows = generation_rows(chosen, size, work, data, base, held_out, classifier, place=place, device=device)
    scored = {} if earlier else _analyses(spec, size, work, data, base, classifier, quick=quick, place=place,
                                          device=device, precision=precision)  # fmt: skip
    results = {
        **header, **placement, "runs": rows, **scored, "classifier": classifier_metrics,
        "environment": environment(), "seconds": time.perf_counter() - started,
    }  # fmt: skip
    return write_benchmark(merged_results(results, earlier, runs) if earlier else results, Path(out), name)


def _analyses(
    spec: Suite,
    size: SuiteSize,
    work: Path,
    data: Path,
    base: Path,
    classifier: ImageClassifier,
    *,
    quick: bool,
    place: dict[str, str],
    device: str,
    precision: str,
) -> dict[str, object]:
    """Attribution of the reference fine-tune against the true masks, then the suite's own analysis: the smoking
    effect map (cxr-synth) or the brain edits (brain-synth)."""
    reference = work / "runs" / slug(REFERENCE) / "model"
    key = {**ATTRIBUTION, "precision": place["precision"], "size": asdict(size), "seed": SEED,
           "weights": weights_stamp(reference), **placement_key(place, "precision")}  # fmt: skip
    attribute = partial(_stage_attribution, reference, classifier, spec.kind, size, place=place, device=device)
    scores: dict[str, object] = {"attribution": cached_stage(work / "attribution.json", key, attribute)}
    if spec.kind == "brain":
        return scores | _stage_brain_edits(size, work, data, base, classifier, quick=quick, place=place,
                                           device=device)  # fmt: skip
    effect_folder = "-".join(["effect", *placement_key(place).values()])  # effect, or effect-cuda-bf16
    return scores | {"smoking_effect": _stage_effect(reference, size, work / effect_folder, device, precision)}


def generation_rows(
    runs: list[SuiteRun],
    size: SuiteSize,
    work: Path,
    data: Path,
    base: Path,
    held_out: EvaluationSet,
    classifier: ImageClassifier,
    *,
    place: dict[str, str],
    device: str,
) -> list[dict[str, object]]:
    """Train (or reuse) each fine-tuning run (`suite_runs`) and score its samples: one table row per run."""
    extractors = [EfficientNetLite0Features(), ClassifierFeatures(classifier)]
    rows, models = [], {}
    for run in runs:
        overrides = (*common_overrides(size, str(data), SEED), f"model.pretrained={base}", *run.overrides)
        config = json.dumps(config_dict(load_config(None, overrides)), sort_keys=True)
        model = models.get(config) or trained(overrides, work / "runs" / slug(run.name))
        models[config] = model
        prompting = {"latent_drift": run.sampling_drift, "instance_prompt": run.instance_prompt}
        key = {**prompting, "size": asdict(size), "seed": SEED, "weights": weights_stamp(model)}
        key |= placement_key(place)
        score = partial(_score, model, run, held_out, classifier, extractors, size, place=place, device=device)
        row = cached_stage(model.parent / "scores.json", key, score)
        rows.append({
            "group": run.group, "run": run.name, "model": model.parent.name, **row,
            "latent drift": run.latent_drift, "sampling drift": run.sampling_drift,
            "train seconds": training_seconds(model.parent),
        })  # fmt: skip
    return rows


def _stage_brain_edits(
    size: SuiteSize,
    work: Path,
    data: Path,
    base: Path,
    classifier: ImageClassifier,
    *,
    quick: bool,
    place: dict[str, str],
    device: str,
) -> dict[str, object]:
    """InstructPix2Pix ± LD trained on the true age pairs, then every brain edit scored against the truth."""
    edits, models = EDIT_SIZES["quick" if quick else "full"], {}
    for drifted, delta in ((False, 0.0), (True, size.latent_drift)):
        models[("basic fine-tune", drifted)] = work / "runs" / slug(f"basic fine-tune, δ={delta:g}") / "model"
        overrides = instruct_overrides(size, edits, str(data), str(base), delta)
        models[(INSTRUCT, drifted)] = trained(overrides, work / "runs" / f"instruct-pix2pix-d{delta:g}")

    def cache(model: Path, key: dict, compute: Callable[[], T]) -> T:
        key = {**key, "weights": weights_stamp(model), **placement_key(place, "precision")}
        return cached_stage(work / "brain_edits.json", key, compute)

    rows = brain_edit_rows(models, classifier, edits, size=size.resolution, latent_drift=size.latent_drift,
                           cache=cache, precision=place["precision"], device=device, seed=SEED)  # fmt: skip
    return {"brain_edits": rows, "edit_settings": {**asdict(edits), **SAMPLER}}


def _stage_data(suite: Suite, size: SuiteSize, folder: Path) -> Path:
    """The suite's cohort; brain-synth's with its true counterfactuals (InstructPix2Pix trains on them)."""
    return synthesized(suite.name, suite.kind, folder, n=size.subjects, size=size.resolution, seed=suite.data_seed,
                       counterfactuals=suite.kind == "brain")  # fmt: skip


def _stage_vae(suite: Suite, size: SuiteSize, data: Path, folder: Path) -> Path:
    if size.tiny:
        return folder  # tiny components bring their own VAE
    if suite.vae_model:
        return pretrained_path(suite.vae_model) / "vae"
    overrides = (f"data.root={data}", f"data.resolution={size.resolution}", f"vae.max_steps={size.vae_steps}")
    return trained_vae(overrides, folder)


def _stage_classifier(suite: Suite, size: SuiteSize, data: Path, folder: Path) -> tuple[ImageClassifier, dict]:
    """The real-data classifier (training patients only) that judges effectiveness and gives fid_domain."""
    if not (folder / "model.safetensors").is_file():
        cohort = load_cohorts(data, modality=suite.modality, holdout_fraction=0.1, seed=SEED)[TRAIN]
        labelled = labelled_images(cohort, resolution=size.resolution)
        network, _ = fit_classifier(
            labelled.images, labelled.labels, labelled.label_names, steps=size.classifier_steps,
            batch_size=32, learning_rate=1e-3, seed=SEED,
        )  # fmt: skip
        save_classifier(network, folder)
    return load_classifier(folder), {"steps": size.classifier_steps}


def _score(
    model: Path,
    run: SuiteRun,
    held_out: EvaluationSet,
    classifier: ImageClassifier,
    extractors: list,
    size: SuiteSize,
    *,
    place: dict[str, str],
    device: str,
) -> dict[str, object]:
    """FID/KID (EfficientNet and domain features) and effectiveness of samples for held-out rows."""
    started, components = time.perf_counter(), load_components(model, device=device)
    rows = held_out.rows[: size.eval_samples]
    prompts = rendered_prompts(PromptTemplate.from_pretrained(model), rows, seed=SEED)
    prompts = [instance_prompt(prompt, run.instance_prompt) for prompt in prompts]
    with inference_precision(place["precision"], components.unet.device):
        samples = generate_for_rows(
            components, prompts, resolution=size.resolution, num_inference_steps=size.eval_steps,
            latent_drift=run.sampling_drift, seed=SEED, desc=f"medcf benchmark: {run.name}",
        )  # fmt: skip
    scores = distribution_scores(held_out.images, samples, extractors, kid_subset_size=1000)
    effect = sample_effectiveness(classifier, samples, rows)
    return {
        "fid_effnet": scores["fid_effnet"],
        "kid_effnet": scores["kid_effnet_mean"], "kid_effnet_std": scores["kid_effnet_std"],
        "fid_domain": scores["fid_domain"], "effectiveness": effect["mean_accuracy"],
        "n_samples": scores["n_fake"], "n_real": scores["n_real"], "score seconds": time.perf_counter() - started,
    }  # fmt: skip


def _stage_attribution(
    model: Path, classifier: ImageClassifier, kind: str, size: SuiteSize, *, place: dict[str, str], device: str
) -> list[dict[str, object]]:
    components, template = load_components(model, device=device), PromptTemplate.from_pretrained(model)
    return attribution_scores(
        components, template, classifier, kind=kind, seed=SEED, size=size.resolution, n=size.attribution_cases,
        num_inference_steps=size.eval_steps, precision=place["precision"], **ATTRIBUTION,
    )  # fmt: skip


def _stage_effect(model: Path, size: SuiteSize, folder: Path, device: str, precision: str) -> dict[str, object]:
    """The model's smoking effect map, and the renderer's true one on the same subjects beside it."""
    if not (folder / "effect.json").is_file():
        effect_to_folder(
            model, "smoking", folder, n=size.effect_pairs, num_inference_steps=size.eval_steps, seed=SEED,
            device=device, precision=precision,
        )  # fmt: skip
    pairs = cohort_pairs("cxr", attribute="smoking", size=size.resolution, seed=SEED)
    mask = cohort_anatomy_mask("cxr", size=size.resolution, seed=SEED)
    truth = population_effect(pairs, size.effect_pairs, attribute="smoking", anatomy_mask=mask, seed=SEED)
    return json.loads((folder / "effect.json").read_text()) | {"truth": truth.summary()}
