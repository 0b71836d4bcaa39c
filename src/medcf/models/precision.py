"""Inference precision: `auto | fp32 | bf16 | fp16`, as autocast around the U-Net and text encoder.

"auto" is bf16 on a CUDA GPU with native bf16 (Ampere and later), fp16 on other GPUs (older CUDA, Apple MPS),
and fp32 on every CPU, so that a CPU run gives the same numbers on a laptop and on CI whatever its vector
units. bf16 is one flag away on a CPU that computes it natively (AVX512-BF16 or AMX): attribution maps score
the same against the true effect masks (benchmarks/attribution_fast_path: mean pixel AUROC 0.854 fp32 vs
0.854 bf16, 1.17× faster on a 2-core AVX512-BF16 CPU); elsewhere the conversion costs more than it saves.
The VAE always runs in fp32 (models/latents.py): RadEdit's users report black images from a half-precision
SD VAE.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "fp32", "bf16" or "fp16": `precision` itself, or for "auto" the fastest one `device` runs natively."""
    check_precision(precision)
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision=fp16: half-precision autocast needs a GPU; on the CPU use bf16 or fp32")
    if precision != "auto" or device.type == "cpu":
        return "fp32" if precision == "auto" else precision
    native_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    return "bf16" if native_bf16 else "fp16"


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")


def inference_precision(precision: str, device: torch.device) -> AbstractContextManager:
    """The autocast context of `precision` on `device` (disabled for fp32); outputs must be cast back by callers."""
    resolved = resolve_precision(precision, device)
    return torch.autocast(device.type, dtype=DTYPES[resolved], enabled=resolved != "fp32")
