"""Generation quality: samples for held-out patients' clinical rows, scored against those patients' images.

FID/KID under each feature extractor (named fid_<extractor>), diversity as RoentGen's mean pairwise MS-SSIM
among samples of one prompt, and effectiveness (Chambon et al. 2022): how often a classifier trained on real
images finds, in a sample, the findings its prompt asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from tqdm.auto import tqdm

from medcf.classifier import ImageClassifier, classify, resize_for_classifier
from medcf.classifier.data import SMOKING_CURRENT
from medcf.generate import generate
from medcf.metrics import diversity
from medcf.metrics.features import FeatureExtractor, fid_kid
from medcf.metrics.soundness import effectiveness
from medcf.models import Components
from medcf.prompts import PromptTemplate
from medcf.prompts.fields import parse_finding


def generate_for_rows(
    components: Components,
    prompts: Sequence[str],
    *,
    resolution: int,
    num_inference_steps: int = 25,
    guidance_scale: float = 3.0,
    latent_drift: float | Sequence[float] = 0.0,
    batch_size: int = 16,
    seed: int = 0,
    desc: str = "medcf evaluate: samples",
) -> torch.Tensor:
    """One grey sample (N, 1, R, R) in [-1, 1] per prompt; the noise is drawn from one generator seeded `seed`."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, unit="batch"):
        images = generate(
            components, list(prompts[start : start + batch_size]), num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale, latent_drift=latent_drift, generator=generator,
            height=resolution, width=resolution,
        )  # fmt: skip
        batches.append(images.mean(dim=1, keepdim=True).float().cpu())  # an RGB VAE's grey rule
    return torch.cat(batches)


def distribution_scores(
    real: torch.Tensor, fake: torch.Tensor, extractors: Sequence[FeatureExtractor], *, kid_subset_size: int = 1000
) -> dict[str, object]:
    """fid_/kid_ numbers of every extractor, with sample counts and resize; images in [-1, 1]."""
    scores: dict[str, object] = {}
    for extractor in extractors:
        result = fid_kid((real + 1) / 2, (fake + 1) / 2, extractor, kid_subset_size=kid_subset_size)
        scores |= {key: value for key, value in result.items() if key not in ("extractor", "resize")}
        scores[f"resize_{extractor.name}"] = extractor.resize
    return scores


def prompt_diversity(
    components: Components, prompts: Sequence[str], *, samples_per_prompt: int = 4, **options: object
) -> float:
    """Mean over `prompts` of the mean pairwise MS-SSIM of `samples_per_prompt` samples each (lower = diverse)."""
    values = []
    for index, prompt in enumerate(prompts):
        images = generate_for_rows(
            components, [prompt] * samples_per_prompt, seed=1000 + index, desc="medcf evaluate: diversity", **options
        )
        values.append(diversity((images + 1) / 2))
    return sum(values) / len(values)


def row_targets(rows: Sequence[Mapping[str, object]], label_names: Sequence[str]) -> torch.Tensor:
    """(N, K) intended labels of rows: 1 / 0, NaN where the row does not say (smoking_current from smoking)."""

    def target(row: Mapping[str, object], name: str) -> float:
        if name == SMOKING_CURRENT:
            smoking = row.get("smoking")
            return float("nan") if smoking in (None, "", "yes") else float(smoking == "current")
        value = parse_finding(name, row.get(name))
        return float("nan") if value is None else float(value)

    return torch.tensor([[target(row, name) for name in label_names] for row in rows], dtype=torch.float64)


def sample_effectiveness(
    classifier: ImageClassifier, images: torch.Tensor, rows: Sequence[Mapping[str, object]]
) -> dict[str, object]:
    """Effectiveness of samples (N, 1, R, R) in [-1, 1] generated for `rows`, per classifier label."""
    probabilities = classify(classifier, resize_for_classifier(classifier, images))
    return effectiveness(probabilities, row_targets(rows, classifier.label_names), classifier.label_names)


def rendered_prompts(template: PromptTemplate, rows: Sequence[Mapping[str, object]], *, seed: int = 0) -> list[str]:
    """The model's own prompt for each row (diverse templates vary with the row's position)."""
    return [template.render(row, seed=seed + index) for index, row in enumerate(rows)]
