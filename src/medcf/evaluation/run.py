"""`medcf evaluate`: one model judged on its held-out patients, written as metrics.json and a report.

Sections: generation quality (FID/KID per extractor, diversity, effectiveness of samples), a memorisation
audit of the samples against the training patients, counterfactual soundness of finding edits on held-out
images, and, on semi-synthetic data, attribution and minimality against the true effect masks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from medcf.atomic import atomic_folder, new_output_folder
from medcf.classifier import ImageClassifier, load_classifier
from medcf.editing.files import model_resolution
from medcf.evaluation.attribution import attribution_scores, synthetic_cohort
from medcf.evaluation.counterfactuals import finding_edits, null_edit_composition
from medcf.evaluation.data import EvaluationSet, evaluation_set, run_split
from medcf.evaluation.generation import (
    distribution_scores,
    generate_for_rows,
    prompt_diversity,
    rendered_prompts,
    sample_effectiveness,
)
from medcf.evaluation.report import write_evaluation
from medcf.metrics.features import EfficientNetLite0Features, FeatureExtractor, extract_features
from medcf.metrics.privacy import MemorizationAudit, memorization_audit, pixel_vectors
from medcf.models import Components, load_components
from medcf.models.device import run_settings
from medcf.models.precision import inference_precision
from medcf.prompts import PromptTemplate


@dataclass
class EvaluationSettings:
    """What `medcf evaluate` runs; the defaults are the README's protocol at 64 px on a CPU."""

    n: int = 200  # held-out patients sampled (one image each) for FID/KID and effectiveness
    num_inference_steps: int = 25
    guidance_scale: float = 3.0
    latent_drift: float | list[float] = 0.0
    diversity_prompts: int = 8  # prompts × 4 samples each for the pairwise MS-SSIM
    edit_images: int = 16  # held-out images per finding edit (soundness)
    composition_images: int = 8
    attribution_cases: int = 24  # unseen semi-synthetic patients per finding
    edit_strength: float = 0.6  # DDIM-inversion edits, the attribution default
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"  # where the diffusion model runs (models/device.py); metrics run on the CPU
    precision: str = "auto"  # autocast of the diffusion model (models/precision.py)


@dataclass
class Evaluation:
    metrics: dict[str, object]
    samples: torch.Tensor  # (N, 1, R, R) in [-1, 1]
    real: torch.Tensor
    privacy: dict[str, MemorizationAudit]
    training_images: torch.Tensor
    attribution: list[dict[str, object]]


def evaluate_model(
    components: Components,
    template: PromptTemplate,
    data: EvaluationSet,
    *,
    classifier: ImageClassifier | None = None,
    extractors: Sequence[FeatureExtractor],
    settings: EvaluationSettings,
    synthetic: tuple[str, int] | None = None,
) -> Evaluation:
    """Every section of the evaluation on `data` (the model's held-out and training patients)."""
    started, resolution = time.perf_counter(), data.images.shape[-1]
    rows = data.rows[: settings.n]
    real = data.images[: settings.n]
    sampling = {
        "resolution": resolution, "num_inference_steps": settings.num_inference_steps,
        "guidance_scale": settings.guidance_scale, "latent_drift": settings.latent_drift,
        "batch_size": settings.batch_size,
    }  # fmt: skip
    prompts = rendered_prompts(template, rows, seed=settings.seed)
    samples = generate_for_rows(components, prompts, seed=settings.seed, **sampling)
    metrics: dict[str, object] = {"generation": distribution_scores(data.images, samples, extractors)}
    metrics["generation"]["diversity_ms_ssim"] = prompt_diversity(
        components, prompts[: settings.diversity_prompts], **sampling
    )
    privacy = _privacy(samples, data, extractors[0])
    metrics["privacy"] = {name: audit.summary() for name, audit in privacy.items()}
    if classifier is not None:
        metrics["effectiveness"] = sample_effectiveness(classifier, samples, rows)
        metrics["soundness"] = _soundness(components, template, classifier, data, settings)
    attribution = []
    if synthetic is not None:
        kind, cohort_seed = synthetic
        attribution = attribution_scores(
            components, template, classifier, kind=kind, seed=cohort_seed, size=resolution,
            n=settings.attribution_cases, **_edit_options(settings),
        )  # fmt: skip
        metrics["attribution"] = attribution
    metrics["seconds"] = time.perf_counter() - started
    return Evaluation(metrics, samples, real, privacy, data.training_images, attribution)


def _edit_options(settings: EvaluationSettings) -> dict[str, object]:
    return {
        "engine": "inversion", "strength": settings.edit_strength, "num_inference_steps": settings.num_inference_steps,
        "guidance_scale": settings.guidance_scale, "latent_drift": settings.latent_drift,
    }  # fmt: skip


def _privacy(samples: torch.Tensor, data: EvaluationSet, extractor: FeatureExtractor) -> dict[str, MemorizationAudit]:
    """Nearest training patient of every sample, in the extractor's feature space and in pixel space."""

    def features(images: torch.Tensor) -> torch.Tensor:
        return extract_features((images + 1) / 2, extractor)

    return {
        f"features_{extractor.name}": memorization_audit(
            features(samples), features(data.training_images), features(data.images)
        ),
        "pixels": memorization_audit(
            pixel_vectors(samples), pixel_vectors(data.training_images), pixel_vectors(data.images)
        ),
    }


def _soundness(
    components: Components,
    template: PromptTemplate,
    classifier: ImageClassifier,
    data: EvaluationSet,
    settings: EvaluationSettings,
) -> dict[str, object]:
    options = _edit_options(settings)
    vocabulary = template.vocabulary.findings  # the study-level "no finding" marker is not an edit
    findings = [name for name in classifier.label_names if name in vocabulary and not vocabulary[name].normal]
    edits = [
        finding_edits(components, template, classifier, data.images, data.rows, finding, n=settings.edit_images,
                      **options)
        for finding in tqdm(findings, desc="medcf evaluate: finding edits", unit="finding")
    ]  # fmt: skip
    count = settings.composition_images
    composition = null_edit_composition(components, template, data.images[:count], data.rows[:count], **options)
    return {"finding_edits": edits, "composition_l1": {str(k): v for k, v in composition.items()}}


def evaluate_to_folder(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    classifier: str | Path | None = None,
    inception: str | Path | None = None,
    settings: EvaluationSettings | None = None,
) -> Path:
    """Evaluate the model folder on its held-out patients of the dataset folder `data`; returns `out`."""
    out, settings = new_output_folder(out), settings or EvaluationSettings()
    components = load_components(model, device=settings.device)
    run_on = run_settings(components.unet.device, settings.precision)
    template = PromptTemplate.from_pretrained(model)
    network = None if classifier is None else load_classifier(classifier)
    resolution = model_resolution(components)
    evaluation_data = evaluation_set(
        data, resolution=resolution, modality=template.modality, split=run_split(model), limit=max(settings.n, 1000)
    )
    extractors = feature_extractors(network, inception)
    with inference_precision(settings.precision, components.unet.device):
        result = evaluate_model(
            components, template, evaluation_data, classifier=network, extractors=extractors, settings=settings,
            synthetic=synthetic_cohort(data),
        )  # fmt: skip
    result.metrics["settings"] = {"model": str(model), "data": str(data), **asdict(settings), **run_on}
    with atomic_folder(out) as staging:
        write_evaluation(result, staging)
    return out


def feature_extractors(classifier: ImageClassifier | None, inception: str | Path | None) -> list[FeatureExtractor]:
    """EfficientNet-Lite0 (always, first: the privacy audit's space), the classifier's features
    (fid_domain), and a local TorchScript Inception file (fid_inception) when given."""
    from medcf.classifier.features import ClassifierFeatures
    from medcf.metrics.inception import TorchScriptInceptionFeatures

    extractors: list[FeatureExtractor] = [EfficientNetLite0Features()]
    if classifier is not None:
        extractors.append(ClassifierFeatures(classifier))
    if inception is not None:
        extractors.append(TorchScriptInceptionFeatures(inception))
    return extractors
