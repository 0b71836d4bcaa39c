"""DGM-VLC's text-visual modulation (Xing et al. 2024) for MONAI's 3-D U-Net: the prompt, attention-pooled, scales and
shifts the features of every ResNet block, h ← norm2(h)·(1 + γ) + β.

This is what the 2-D models get from vanilla diffusers (models/scratch.py: `addition_embed_type="text"` pools the
prompt with `TextTimeEmbedding`, and `resnet_time_scale_shift="scale_shift"` applies (γ, β) after each ResNet's
norm2). MONAI's DiffusionUNetResnetBlock adds the time embedding before norm2 and has no scale-shift option, so each
block's norm2 gets a forward hook — PyTorch's public module-hook API; MONAI's code is not changed — applying the
(γ, β) of the prompts of the current call, which `VolumeUNet.forward` sets through `modulating`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from diffusers.models.embeddings import TextTimeEmbedding
from torch import nn


class TextModulation(nn.Module):
    """Prompt states (B, L, D) → one (γ, β) pair per modulated GroupNorm, each (B, C, 1, 1, 1)."""

    def __init__(self, text_dim: int, channels: Sequence[int], *, heads: int) -> None:
        super().__init__()
        if text_dim % heads:  # AttentionPooling reshapes D into heads × D/heads
            raise ValueError(
                f"text modulation: text width {text_dim} is not divisible by {heads} pooling heads; "
                "use a text encoder whose hidden size is a multiple of it"
            )
        self.pool = TextTimeEmbedding(text_dim, text_dim, num_heads=heads)
        self.projections = nn.ModuleList(nn.Linear(text_dim, 2 * width) for width in channels)
        for projection in self.projections:  # γ = β = 0 at the start: the U-Net begins as the unmodulated one
            nn.init.zeros_(projection.weight)
            nn.init.zeros_(projection.bias)
        self._scale_shift: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def attach(self, norms: Sequence[nn.Module]) -> None:
        """Hook each norm (in the order of `channels`) to modulate its output."""
        if len(norms) != len(self.projections):
            raise ValueError(f"{len(norms)} norms for {len(self.projections)} modulation projections")
        for index, norm in enumerate(norms):
            norm.register_forward_hook(self._hook(index))

    @contextmanager
    def modulating(self, encoder_hidden_states: torch.Tensor) -> Iterator[None]:
        """Within the block, every hooked norm is modulated by these prompts' (γ, β)."""
        pooled = self.pool(encoder_hidden_states)
        shape = (len(pooled), -1, 1, 1, 1)
        self._scale_shift = [tuple(p(pooled).view(shape).chunk(2, dim=1)) for p in self.projections]
        try:
            yield
        finally:
            self._scale_shift = None

    def _hook(self, index: int):  # noqa: ANN202 (a forward hook)
        def modulate(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if self._scale_shift is None:
                raise RuntimeError("a text-modulated U-Net was called without its prompts (VolumeUNet.forward)")
            gamma, beta = self._scale_shift[index]
            return output * (1 + gamma.to(output.dtype)) + beta.to(output.dtype)

        return modulate
