"""The frozen encoders' cache (training/encodings.py): what it holds for each method, that its values are the
encoders' own, and that a run trains to the same weights with or without it; prompt de-duplication."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medcf.models import encode_posterior, encode_prompts, tiny_components
from medcf.prompts import NULL_PROMPT
from medcf.training import train
from medcf.training.data import TRAIN
from medcf.training.encodings import class_image_key
from medcf.training.run import setup_run
from medcf.training.setup import build_components
from test_training_loop import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_duplicate_prompts_are_encoded_once_with_equal_rows_and_gradients() -> None:
    components = tiny_components()
    prompts = ["a chest x-ray", NULL_PROMPT, "a chest x-ray", NULL_PROMPT, "effusion"]
    with torch.no_grad():
        one_by_one = torch.cat([encode_prompts(components, [prompt]) for prompt in prompts])
        torch.testing.assert_close(encode_prompts(components, prompts), one_by_one, rtol=0, atol=1e-6)
    # Gradients still reach the encoder through the repeated rows (textual inversion trains through them).
    table = components.text_encoder.get_input_embeddings().weight
    table.requires_grad_(True)
    encode_prompts(components, ["effusion", "effusion"]).sum().backward()
    twice = table.grad.clone()
    table.grad = None
    encode_prompts(components, ["effusion"]).sum().backward()
    torch.testing.assert_close(twice, 2 * table.grad)


def test_the_cache_holds_the_encoders_outputs(tmp_path: Path, cxr_synth_root: Path) -> None:
    run = setup_run(tiny_config(cxr_synth_root, "train.max_steps=2"), tmp_path / "run")
    dataset, cache = run.datasets[TRAIN], run.encodings
    assert sorted(cache.posteriors) == sorted(dataset.cohort.records["id"])
    prompts = [dataset.prompt(index) for index in range(len(dataset))]
    assert set(cache.embeddings) == {NULL_PROMPT, *prompts}
    batch = [dataset[index] for index in (0, 3, 5)]
    with torch.no_grad():
        posterior = encode_posterior(run.components, torch.stack([item["pixel_values"] for item in batch]))
        embeds = encode_prompts(run.components, [item["prompt"] for item in batch])
    cached = cache.posterior([item["id"] for item in batch])
    torch.testing.assert_close(cached.parameters, posterior.parameters, rtol=0, atol=1e-5)
    torch.testing.assert_close(cache.prompt_embeddings(run.components, [item["prompt"] for item in batch]), embeds)
    assert cache.posterior(["not an id"]) is None
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (
        manifest["encoding_cache"].startswith("encoding cache: posteriors (")
        and "embeddings (" in manifest["encoding_cache"]
    )


@pytest.mark.parametrize(
    ("options", "posteriors", "embeddings"),
    [
        (["train.method=textual-inversion", "train.instance_prompt=<medcf> {prompt}"], True, False),
        (["train.train_text_encoder=true"], True, False),
        (["train.method=lora"], True, True),
        (["train.method=dreambooth", "train.class_prompt=chest X-ray", "train.num_class_images=3"], True, True),
        (["train.encoding_cache_mb=0"], False, False),
    ],
)
def test_only_frozen_encoders_are_cached(
    tmp_path: Path, cxr_synth_root: Path, options: list[str], posteriors: bool, embeddings: bool
) -> None:
    run = setup_run(tiny_config(cxr_synth_root, "train.max_steps=1", *options), tmp_path / "run")
    cache = run.encodings
    assert bool(cache and cache.posteriors) is posteriors, run.encodings_note
    assert bool(cache and cache.embeddings) is embeddings, run.encodings_note
    if run.prior is not None:  # DreamBooth's class images and class prompt are cached with the data
        assert class_image_key(len(run.prior.images) - 1) in cache.posteriors
        assert run.prior.prompt in cache.embeddings


def test_a_budget_too_small_for_both_keeps_the_smaller(tmp_path: Path, cxr_synth_root: Path) -> None:
    full = setup_run(tiny_config(cxr_synth_root, "train.max_steps=1"), tmp_path / "full").encodings
    sizes = {
        name: sum(tensor.numel() * 4 for tensor in getattr(full, name).values())
        for name in ("posteriors", "embeddings")
    }
    smaller = min(sizes, key=sizes.get)
    budget = max(sizes.values()) / 2**20 * 1.01  # each fits alone, not both
    run = setup_run(
        tiny_config(cxr_synth_root, "train.max_steps=1", f"train.encoding_cache_mb={budget}"), tmp_path / "run"
    )
    assert [name for name in sizes if getattr(run.encodings, name)] == [smaller]
    assert run.encodings_note.startswith(f"encoding cache: {smaller} (")


def test_training_with_the_cache_ends_where_training_without_it_does(tmp_path: Path, cxr_synth_root: Path) -> None:
    options = ("train.max_steps=8", "train.ema_decay=0.9", "train.latent_drift=0.05", "data.prompt_dropout=0.3")
    config = tiny_config(cxr_synth_root, *options)
    train(config, tmp_path / "cached", progress=False)
    train(tiny_config(cxr_synth_root, *options, "train.encoding_cache_mb=0"), tmp_path / "plain", progress=False)
    losses = {
        name: [float(line.split(",")[1]) for line in (tmp_path / name / "loss.csv").read_text().splitlines()[1:]]
        for name in ("cached", "plain")
    }
    torch.testing.assert_close(losses["cached"], losses["plain"], rtol=1e-4, atol=0)
    weights = {name: load_file(tmp_path / name / "model/unet/diffusion_pytorch_model.safetensors") for name in losses}
    initial = build_components(**dataclasses.asdict(config.model), resolution=32).unet.state_dict()
    for key, weight in weights["plain"].items():  # Adam amplifies last-bit gradient differences a little
        moved = (weight - initial[key]).abs().max()
        assert (weights["cached"][key] - weight).abs().max() <= 0.01 * moved + 1e-7, key
