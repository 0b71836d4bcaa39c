"""Textual inversion (Gal et al. 2023): one new token whose input embedding is the only trained weight.

Also Custom Diffusion's modifier token V* (Kumari et al. 2023). Every other row of the embedding table is put back
after each optimizer step, and the learned vector is exported as diffusers' `learned_embeds.safetensors`
(`pipe.load_textual_inversion`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from weakref import WeakKeyDictionary

import safetensors.torch
import torch
from torch import nn

from medcf.atomic import atomic_path
from medcf.models import Components

LEARNED_EMBEDS_NAME = "learned_embeds.safetensors"  # diffusers' textual-inversion file: {token: (D,)}
# Radiology words to suggest as textual inversion's initializer: the first that a model's tokenizer keeps as one
# token are named when the user's word is split (which words are whole depends on the tokenizer's vocabulary).
INITIALIZER_WORDS = ("shadow", "opacity", "lung", "chest", "scan", "image", "photo", "x")


@dataclass
class PlaceholderEmbedding:
    """A textual-inversion token and the embedding table it was added to, as it was before training."""

    token: str
    token_id: int
    original: torch.Tensor  # (V, D) the initial table, new row included; every other row is restored from it


# Keyed by the text encoder's input embedding module, so the state lives exactly as long as that module.
_PLACEHOLDERS: WeakKeyDictionary[nn.Module, PlaceholderEmbedding] = WeakKeyDictionary()


def add_placeholder_token(
    components: Components, *, placeholder_token: str, initializer_token: str
) -> list[nn.Parameter]:
    """Add `placeholder_token` to the (frozen) text encoder, its embedding starting at `initializer_token`'s;
    returns the embedding table, the one weight that trains."""
    tokenizer, text_encoder = components.tokenizer, components.text_encoder
    if placeholder_token in tokenizer.get_vocab():
        raise ValueError(
            f"train.placeholder_token={placeholder_token!r} is already in the tokenizer's vocabulary; "
            "pick a new string, e.g. '<medcf>'"
        )
    initializer_ids = tokenizer.encode(initializer_token, add_special_tokens=False)
    if len(initializer_ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(initializer_ids)
        whole = [word for word in INITIALIZER_WORDS if len(tokenizer.encode(word, add_special_tokens=False)) == 1]
        raise ValueError(
            f"train.initializer_token={initializer_token!r} is {len(initializer_ids)} tokens {pieces}, not one; "
            f"pick one word this tokenizer keeps whole, e.g. {', '.join(repr(word) for word in whole[:3])}"
        )
    tokenizer.add_tokens([placeholder_token])
    placeholder_id = tokenizer.convert_tokens_to_ids(placeholder_token)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # the new row is set below
    embedding = text_encoder.get_input_embeddings()
    with torch.no_grad():
        embedding.weight[placeholder_id] = embedding.weight[initializer_ids[0]]
    _PLACEHOLDERS[embedding] = PlaceholderEmbedding(
        placeholder_token, placeholder_id, embedding.weight.detach().clone()
    )
    # The encoder stays in eval mode (frozen): no dropout noise on the one vector being fitted.
    embedding.weight.requires_grad_(True)
    return [embedding.weight]


def has_placeholder_token(components: Components) -> bool:
    return components.text_encoder.get_input_embeddings() in _PLACEHOLDERS


def restore_other_embeddings(components: Components) -> None:
    """Put back every embedding row but the new token's, as it was before training."""
    embedding = components.text_encoder.get_input_embeddings()
    placeholder = _placeholder(embedding)
    # The whole table gets gradients (and AdamW updates); only the new row may keep them (diffusers'
    # textual_inversion.py restores the others the same way).
    keep = torch.ones(len(placeholder.original), dtype=torch.bool, device=embedding.weight.device)
    keep[placeholder.token_id] = False
    with torch.no_grad():
        embedding.weight[keep] = placeholder.original[keep].to(embedding.weight)


def export_textual_inversion(components: Components, folder: Path) -> None:
    """Write {placeholder token: learned embedding (D,)} as diffusers' learned_embeds.safetensors."""
    embedding = components.text_encoder.get_input_embeddings()
    placeholder = _placeholder(embedding)
    vector = embedding.weight[placeholder.token_id].detach().cpu().clone()
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / LEARNED_EMBEDS_NAME) as temporary:
        safetensors.torch.save_file({placeholder.token: vector}, temporary)


def _placeholder(embedding: nn.Module) -> PlaceholderEmbedding:
    if embedding not in _PLACEHOLDERS:
        raise ValueError("this text encoder has no textual-inversion token; call prepare_textual_inversion first")
    return _PLACEHOLDERS[embedding]
