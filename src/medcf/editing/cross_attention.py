"""Recording the U-Net's cross-attention maps M = softmax(QKᵀ/√d) (Hertz et al., Prompt-to-Prompt, 2022, §3.1).

Each cross-attention layer ("attn2" in diffusers' transformer blocks) keeps its own processor for its output;
a `CrossAttentionRecorder` around it computes the layer's attention probabilities beside it, with gradients
when the forward pass has them, so a loss on the maps reaches the latents (pix2pix-zero's guidance). The
processors are installed through diffusers' public `unet.set_attn_processor` and put back on leaving the block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention


class CrossAttentionMaps:
    """The maps of the last forward pass, by layer name, each (B, heads, h·w, L); filled only while `recording`."""

    def __init__(self) -> None:
        self.maps: dict[str, torch.Tensor] = {}
        self.active = False

    @contextmanager
    def recording(self) -> Iterator[dict[str, torch.Tensor]]:
        """Record during the block (one U-Net pass); the previous pass's maps are dropped on entry."""
        self.maps, self.active = {}, True
        try:
            yield self.maps
        finally:
            self.active = False


class CrossAttentionRecorder:
    """An attention processor: the wrapped processor's output, and the layer's M stored while recording."""

    def __init__(self, processor: object, name: str, store: CrossAttentionMaps) -> None:
        self.processor, self.name, self.store = processor, name, store

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor:
        if self.store.active and encoder_hidden_states is not None:
            self.store.maps[self.name] = attention_probabilities(attn, hidden_states, encoder_hidden_states)
        return self.processor(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)


def attention_probabilities(
    attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor
) -> torch.Tensor:
    """M = softmax(QKᵀ/√d): image tokens (B, h·w, C) and prompt tokens (B, L, D) → (B, heads, h·w, L)."""
    if attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    query = attn.head_to_batch_dim(attn.to_q(hidden_states))  # (B·heads, h·w, d)
    key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))  # (B·heads, L, d)
    probabilities = attn.get_attention_scores(query, key)
    return probabilities.view(len(hidden_states), attn.heads, *probabilities.shape[1:])


@contextmanager
def recording_cross_attention(unet: UNet2DConditionModel) -> Iterator[CrossAttentionMaps]:
    """Within the block, every cross-attention layer of `unet` records into the yielded store; the original
    processors are restored afterwards, also when the block raises."""
    originals = dict(unet.attn_processors)
    store = CrossAttentionMaps()
    recorders = {
        name: CrossAttentionRecorder(processor, name.removesuffix(".processor"), store) if ".attn2." in name
        else processor
        for name, processor in originals.items()
    }  # fmt: skip
    if not any(isinstance(processor, CrossAttentionRecorder) for processor in recorders.values()):
        raise ValueError("this U-Net has no cross-attention layers (attn2): it cannot take a text prompt")
    unet.set_attn_processor(recorders)
    try:
        yield store
    finally:
        unet.set_attn_processor(originals)


def cross_attention_loss(maps: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ over layers and images of ||M − M_ref||², summed over pixels and tokens and averaged over heads, as
    pix2pix-zero's code does (so its λ_xa = 0.1 keeps its meaning); each image's term depends on it alone."""
    if maps.keys() != reference.keys():
        raise ValueError(f"maps of {sorted(maps)} against references of {sorted(reference)}: record the same U-Net")
    return sum((maps[name] - reference[name]).pow(2).sum(dim=(2, 3)).mean(dim=1).sum() for name in reference)
