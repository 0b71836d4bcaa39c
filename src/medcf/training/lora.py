"""LoRA (Hu et al. 2022) through peft: adapters on attention projections, and their diffusers-format export.

The update is α/r·BA with A Gaussian and B zero, so training starts exactly at the base model (diffusers' LoRA
scripts). Exported as `pytorch_lora_weights.safetensors` for `pipe.load_lora_weights(folder)`, and merged into
plain diffusers/transformers modules for the saved model folder.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from torch import nn

from medcf.atomic import atomic_folder, atomic_path
from medcf.models import Components

UNET_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # attention projections, as diffusers' LoRA scripts
# Attention projections of the text encoders medcf meets; the first family whose names all occur is used.
TEXT_ENCODER_LORA_TARGETS = (
    ("q_proj", "k_proj", "v_proj", "out_proj"),  # CLIPTextModel (Stable Diffusion)
    ("query", "key", "value", "attention.output.dense"),  # BertModel (MiniLM); not the MLP's or pooler's dense
)
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # what `pipe.load_lora_weights(folder)` looks for
TEXT_ENCODER_ADAPTER_NAME = "text_encoder_lora"  # peft adapter folder of a non-CLIP text encoder's LoRA


def add_lora_adapters(
    components: Components, *, rank: int, alpha: float, train_text_encoder: bool
) -> list[nn.Parameter]:
    """Adapters on the (frozen) U-Net's attention, and the text encoder's when asked; returns their weights."""
    if rank < 1:
        raise ValueError(f"train.lora_rank={rank}: must be a positive integer, e.g. 8")
    modules: list[nn.Module] = [components.unet]
    options = {"r": rank, "lora_alpha": alpha, "init_lora_weights": "gaussian"}
    components.unet.add_adapter(LoraConfig(target_modules=list(UNET_LORA_TARGETS), **options))
    if train_text_encoder:
        targets = text_encoder_lora_targets(components.text_encoder)
        components.text_encoder.add_adapter(LoraConfig(target_modules=list(targets), **options))
        modules.append(components.text_encoder)
    for module in modules:
        module.train()
    return [parameter for module in modules for parameter in module.parameters() if parameter.requires_grad]


def text_encoder_lora_targets(text_encoder: nn.Module) -> tuple[str, ...]:
    """The attention projection names of `text_encoder` (CLIP or BERT), for peft's `target_modules`."""
    linear_names = [name for name, module in text_encoder.named_modules() if isinstance(module, nn.Linear)]
    for targets in TEXT_ENCODER_LORA_TARGETS:
        if all(any(name.endswith(f".{target}") for name in linear_names) for target in targets):
            return targets
    leaves = sorted({name.rsplit(".", 1)[-1] for name in linear_names})
    raise ValueError(
        f"{type(text_encoder).__name__}: no attention projections named like {TEXT_ENCODER_LORA_TARGETS} "
        f"(its linear layers: {leaves}); train LoRA on the U-Net only (train.train_text_encoder=false)"
    )


def export_lora(components: Components, folder: Path) -> Components:
    """Write the adapters in diffusers format; return copies of the adapted modules with LoRA merged in."""
    text_encoder = components.text_encoder
    layers = {
        "unet_lora_layers": _diffusers_lora_state_dict(components.unet),
        # The metadata carries rank and α, so a loader scales the update by α/r as in training.
        "unet_lora_adapter_metadata": components.unet.peft_config["default"].to_dict(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    clip_names = set(TEXT_ENCODER_LORA_TARGETS[0])
    if _has_adapter(text_encoder) and set(text_encoder.peft_config["default"].target_modules) == clip_names:
        layers["text_encoder_lora_layers"] = _diffusers_lora_state_dict(text_encoder)
        layers["text_encoder_lora_adapter_metadata"] = text_encoder.peft_config["default"].to_dict()
    elif _has_adapter(text_encoder):
        # diffusers' text-encoder LoRA loader knows CLIP's projection names only: a peft adapter folder
        # instead, for `text_encoder.load_adapter(folder / "text_encoder_lora")` (transformers).
        with atomic_folder(folder / TEXT_ENCODER_ADAPTER_NAME) as staging:
            text_encoder.save_pretrained(staging)
    with atomic_path(folder / LORA_WEIGHT_NAME) as temporary:
        StableDiffusionPipeline.save_lora_weights(temporary.parent, weight_name=temporary.name, **layers)
    return _merged_lora(components)


def _merged_lora(components: Components) -> Components:
    """Copies of the adapted modules with W ← W + α/r·BA and the peft wrappers gone: plain diffusers/transformers."""
    # 1. Copies, so training (or sampling with the adapters) can go on after the export
    text_encoder = components.text_encoder
    if _has_adapter(text_encoder):
        text_encoder = copy.deepcopy(text_encoder)
    pipeline = StableDiffusionPipeline(
        vae=components.vae,
        text_encoder=text_encoder,
        tokenizer=components.tokenizer,
        unet=copy.deepcopy(components.unet),
        scheduler=DDPMScheduler.from_config(components.scheduler.config),  # the pipeline may rewrite its config
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    # 2. Merge into the base weights, then drop the adapters
    pipeline.fuse_lora(components=["unet", "text_encoder"] if _has_adapter(text_encoder) else ["unet"])
    pipeline.unload_lora_weights()
    return dataclasses.replace(components, unet=pipeline.unet, text_encoder=pipeline.text_encoder)


def _diffusers_lora_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """peft's lora_A/lora_B keys in diffusers' naming, as diffusers' LoRA training scripts save them."""
    return convert_state_dict_to_diffusers(get_peft_model_state_dict(module))


def _has_adapter(module: nn.Module) -> bool:
    return bool(getattr(module, "peft_config", None))
