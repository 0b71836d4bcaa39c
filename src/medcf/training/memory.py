"""Memory options of a training run: gradient checkpointing, the AdamW implementation, the attention kernel.

Peak training memory is weights + gradients + optimizer state + activations. Gradient checkpointing drops
most activations and recomputes them in the backward pass (Chen et al. 2016, arXiv:1604.06174: ~30% more
compute). 8-bit AdamW keeps Adam's two moments in 8 bits, 2 instead of 8 bytes per trained weight (Dettmers
et al. 2022, arXiv:2110.02861). Fused AdamW updates every tensor in one CUDA kernel: speed, not memory.
Attention memory is linear in the tokens when diffusers' AttnProcessor2_0 calls PyTorch's
F.scaled_dot_product_attention (flash / memory-efficient kernels) instead of materialising the softmax matrix.
"""

from __future__ import annotations

import importlib

import torch
from torch import nn

from medcf.models import Components


def check_memory_options(*, use_8bit_adam: bool) -> None:
    """Refuse an option this machine cannot run, before any data or model is loaded."""
    if not use_8bit_adam:
        return
    try:
        importlib.import_module("bitsandbytes")
    except ImportError:
        raise ValueError("train.use_8bit_adam needs bitsandbytes: pip install 'medcf[gpu]' (CUDA only)") from None
    if not torch.cuda.is_available():
        raise ValueError("train.use_8bit_adam runs on CUDA only; set train.use_8bit_adam=false on this machine")


def enable_gradient_checkpointing(components: Components) -> list[str]:
    """Checkpoint every module the loss back-propagates through and that supports it; returns their names."""
    # Every method back-propagates through the U-Net, textual inversion too (to the token embedding).
    components.unet.enable_gradient_checkpointing()
    names = ["unet"]
    text_encoder = components.text_encoder
    if text_encoder.training and _trains(text_encoder):  # transformers checkpoints only in train mode
        # transformers 5 renamed gradient_checkpointing_enable (now a deprecated alias); 4.x has only the old name.
        enable = getattr(text_encoder, "activation_checkpointing_enable", text_encoder.gradient_checkpointing_enable)
        # Non-reentrant: gradients reach LoRA weights even when the checkpointed block's inputs need none.
        enable({"use_reentrant": False})
        names.append("text_encoder")
    if _trains(components.vae):  # the decoder (train.train_vae_decoder); the encoder runs under no_grad
        components.vae.enable_gradient_checkpointing()
        names.append("vae")
    return names


def make_optimizer(
    parameters: list[nn.Parameter], *, learning_rate: float, weight_decay: float, use_8bit_adam: bool = False
) -> torch.optim.Optimizer:
    """AdamW: bitsandbytes' 8-bit one when asked, else torch's, fused when every parameter is on CUDA."""
    if use_8bit_adam:
        bitsandbytes = importlib.import_module("bitsandbytes")  # checked by check_memory_options
        return bitsandbytes.optim.AdamW8bit(parameters, lr=learning_rate, weight_decay=weight_decay)
    fused = all(parameter.is_cuda for parameter in parameters)  # otherwise torch picks foreach / for-loop
    return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay, fused=fused)


def memory_summary(unet: nn.Module, optimizer: torch.optim.Optimizer, checkpointed: list[str]) -> dict[str, object]:
    """What a run's manifest states about its memory: attention kernel, optimizer, checkpointed modules."""
    return {
        "attention": attention_implementation(unet),
        "optimizer": optimizer_implementation(optimizer),
        "gradient_checkpointing": checkpointed,
    }


def optimizer_implementation(optimizer: torch.optim.Optimizer) -> str:
    """e.g. "torch AdamW (fused)", "torch AdamW (foreach)", "bitsandbytes AdamW8bit"."""
    name = f"{type(optimizer).__module__.split('.')[0]} {type(optimizer).__name__}"
    if not isinstance(optimizer, torch.optim.AdamW):
        return name
    on_cuda = all(p.is_cuda for group in optimizer.param_groups for p in group["params"])
    if optimizer.defaults["fused"]:
        return f"{name} (fused)"
    # torch's default without fused: foreach (multi-tensor kernels) on CUDA, a per-tensor loop on the CPU
    # (torch.optim.optimizer._default_to_fused_or_foreach).
    return f"{name} (foreach)" if optimizer.defaults["foreach"] or on_cuda else f"{name} (for-loop)"


def attention_implementation(unet: nn.Module) -> str:
    """The U-Net's attention processors, e.g. "PyTorch SDPA (AttnProcessor2_0)"."""
    names = sorted({type(processor).__name__ for processor in unet.attn_processors.values()})
    # diffusers' "2_0" processors are the ones that call F.scaled_dot_product_attention (attention_processor.py).
    return ", ".join(f"PyTorch SDPA ({name})" if name.endswith("2_0") else name for name in names)


def _trains(module: nn.Module) -> bool:
    return any(parameter.requires_grad for parameter in module.parameters())
