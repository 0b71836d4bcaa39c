"""Frozen encoders' outputs, computed once per run: the VAE posterior of each image, the embedding of each prompt.

Why this is exact: the loop never trains the VAE encoder, and a text encoder without trainable parameters
maps a prompt to the same embedding every step. The posterior is still *sampled* every step with the run's
generator (the same draws as encoding on the fly), so only repeated forward passes go. It is the practice of
kohya-ss's `--cache_latents` / `--cache_text_encoder_outputs` and of diffusers' SDXL scripts' precomputed
embeddings. Values are computed in fixed batches at start-up, so a resumed run gets the very same ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from medcf.config import Config
from medcf.data import ImageTextDataset, collate_items
from medcf.models import Components, encode_posterior, encode_prompts, vae_scale_factor
from medcf.prompts import NULL_PROMPT, instance_prompt

if TYPE_CHECKING:  # step.py imports this module
    from medcf.training.step import PriorImages

BYTES = 4  # float32


@dataclass
class EncodingCache:
    """Posterior parameters (2C, h, w) by image key and embeddings (L, D) by prompt; either may be empty."""

    posteriors: dict[str, torch.Tensor] = field(default_factory=dict)
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)

    def posterior(self, keys: list[str]) -> DiagonalGaussianDistribution | None:
        """The batch's posterior q(z|x) from the cache, or None when an image is not in it."""
        if not all(key in self.posteriors for key in keys):
            return None
        return DiagonalGaussianDistribution(torch.stack([self.posteriors[key] for key in keys]))

    def prompt_embeddings(self, components: Components, prompts: list[str]) -> torch.Tensor:
        """Embeddings (B, L, D) of `prompts`; a prompt not in the cache is encoded now (and not kept)."""
        if all(prompt in self.embeddings for prompt in prompts):
            return torch.stack([self.embeddings[prompt] for prompt in prompts])
        return encode_prompts(components, prompts)


def class_image_key(index: int) -> str:
    """The cache key of DreamBooth class image `index` (dataset ids are the other keys)."""
    return f"class image {index}"


def build_encoding_cache(
    config: Config,
    components: Components,
    dataset: ImageTextDataset,
    prior: PriorImages | None,
    *,
    progress: bool = True,
) -> tuple[EncodingCache | None, str]:
    """The cache of this run, or None, with a one-line note of what it holds for the run's manifest.

    The choice depends on the data, the method and train.encoding_cache_mb only, never on max_steps, so a
    run resumed with more steps caches as it did before. A run shorter than an epoch pays for encoding
    images it never trains on (one encoder pass each, no backward); set train.encoding_cache_mb=0 then.
    """
    train_config = config.train
    budget = train_config.encoding_cache_mb * 2**20
    if budget <= 0:
        return None, "encoding cache off (train.encoding_cache_mb=0)"
    vae = components.vae
    frozen = {"posteriors": _frozen(vae.encoder, vae.quant_conv), "embeddings": _frozen(components.text_encoder)}
    prompts = _prompts(dataset, train_config.instance_template, prior) if frozen["embeddings"] else []
    sizes = {
        "posteriors": _posterior_bytes(components, dataset, prior),
        "embeddings": _embedding_bytes(components, prompts),
    }
    kept = [name for name in sizes if frozen[name] and sizes[name] <= budget]
    if sum(sizes[name] for name in kept) > budget:
        kept = [min(kept, key=lambda name: sizes[name])]
    cache = EncodingCache()
    with torch.no_grad():
        if "posteriors" in kept:
            cache.posteriors = _posteriors(components, dataset, prior, train_config.batch_size, progress)
        if "embeddings" in kept:
            cache.embeddings = _embeddings(components, prompts, train_config.batch_size, progress)
    held = ", ".join(f"{name} ({sizes[name] / 2**20:.3g} MB)" for name in kept)
    return (cache if kept else None), f"encoding cache: {held or 'none'} of {train_config.encoding_cache_mb:g} MB"


def _frozen(*modules: torch.nn.Module | None) -> bool:
    return not any(p.requires_grad for module in modules if module is not None for p in module.parameters())


def _prompts(dataset: ImageTextDataset, template: str, prior: PriorImages | None) -> list[str]:
    """Every prompt a training step can ask for: each image's (instance) prompt, the null and class prompts."""
    prompts = [instance_prompt(dataset.prompt(index), template) for index in range(len(dataset))]
    return list(dict.fromkeys([NULL_PROMPT, *prompts, *([prior.prompt] if prior is not None else [])]))


def _posterior_bytes(components: Components, dataset: ImageTextDataset, prior: PriorImages | None) -> int:
    side = dataset.resolution // vae_scale_factor(components)
    count = len(dataset) + (len(prior.images) if prior is not None else 0)
    return count * 2 * components.vae.config.latent_channels * side * side * BYTES


def _embedding_bytes(components: Components, prompts: list[str]) -> int:
    length = components.tokenizer.model_max_length
    return len(prompts) * length * components.text_encoder.config.hidden_size * BYTES


def _posteriors(
    components: Components, dataset: ImageTextDataset, prior: PriorImages | None, batch_size: int, progress: bool
) -> dict[str, torch.Tensor]:
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_items)
    cache = {}
    for batch in tqdm(loader, desc="medcf: caching image latents", unit="batch", disable=not progress):
        parameters = encode_posterior(components, batch["pixel_values"]).parameters
        cache.update(zip(batch["id"], parameters, strict=True))
    if prior is not None:
        for start in range(0, len(prior.images), batch_size):
            parameters = encode_posterior(components, prior.images[start : start + batch_size]).parameters
            cache.update((class_image_key(start + i), row) for i, row in enumerate(parameters))
    return cache


def _embeddings(
    components: Components, prompts: list[str], batch_size: int, progress: bool
) -> dict[str, torch.Tensor]:
    cache = {}
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc="medcf: caching prompt embeddings", unit="batch", disable=not progress):
        chunk = prompts[start : start + batch_size]
        cache.update(zip(chunk, encode_prompts(components, chunk), strict=True))
    return cache
