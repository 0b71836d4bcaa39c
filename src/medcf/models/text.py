"""Prompt text → per-token embeddings for the U-Net's cross-attention."""

from __future__ import annotations

import torch

from medcf.models.components import Components


def encode_prompts(components: Components, prompts: list[str]) -> torch.Tensor:
    """Prompts → last hidden states (B, L, D), L = tokenizer.model_max_length (77 for every medcf model).

    Padded to a fixed length and encoded without an attention mask, exactly as Stable Diffusion pipelines
    do, so embeddings match vanilla diffusers. No `torch.no_grad` here: editing and attribution need gradients.
    """
    if isinstance(prompts, str):
        raise ValueError(f"prompts={prompts!r}: pass a list of strings, e.g. [{prompts!r}]")
    tokens = components.tokenizer(
        prompts,
        padding="max_length",
        max_length=components.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    device = next(components.text_encoder.parameters()).device  # also for a DDP-wrapped encoder (no .device)
    input_ids = tokens.input_ids.to(device)
    return components.text_encoder(input_ids)[0]
