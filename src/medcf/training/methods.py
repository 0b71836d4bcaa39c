"""Fine-tuning methods: which weights train, what follows each optimizer step, and what a finished run exports.

full: the U-Net, optionally with the text encoder and the VAE decoder (the component study of Chambon et al.
2022, RoentGen). lora: low-rank adapters on the U-Net's attention projections (Hu et al. 2022), through peft.
textual-inversion: one new token whose input embedding is the only trained weight (Gal et al. 2023).
dreambooth: the U-Net (+ text encoder) like full; the loop adds the class-prior loss (Ruiz et al. 2023, prior.py).
custom-diffusion: the U-Net's cross-attention W_k, W_v, optionally with a new token V* (Kumari et al. 2023,
custom_diffusion.py). instruct-pix2pix: the U-Net widened to read a source image (Brooks et al. 2023), on pairs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from medcf.models import Components
from medcf.models.instruct import is_instruct, widen_for_source_image
from medcf.training.custom_diffusion import prepare_cross_attention_kv, save_custom_diffusion_weights
from medcf.training.lora import add_lora_adapters, export_lora
from medcf.training.textual_inversion import (
    add_placeholder_token,
    export_textual_inversion,
    has_placeholder_token,
    restore_other_embeddings,
)

METHODS = ("full", "lora", "textual-inversion", "dreambooth", "custom-diffusion", "instruct-pix2pix")


def prepare_method(components: Components, method: str, **options: object) -> list[nn.Parameter]:
    """Set up `components` for `method` (one of METHODS); returns the parameters the optimizer trains."""
    _check_method(method)
    prepare = {
        "full": prepare_full,
        "lora": prepare_lora,
        "textual-inversion": prepare_textual_inversion,
        "dreambooth": prepare_dreambooth,
        "custom-diffusion": prepare_custom_diffusion,
        "instruct-pix2pix": prepare_instruct_pix2pix,
    }[method]
    return prepare(components, **options)


def prepare_full(
    components: Components, *, train_text_encoder: bool = False, train_vae_decoder: bool = False
) -> list[nn.Parameter]:
    """Train the U-Net, plus the text encoder and the VAE decoder (post_quant_conv included) when asked."""
    _freeze(components)
    modules: list[nn.Module] = [components.unet]
    if train_text_encoder:
        modules.append(components.text_encoder)
    if train_vae_decoder:
        vae = components.vae
        modules += [vae.decoder] if vae.post_quant_conv is None else [vae.post_quant_conv, vae.decoder]
    for module in modules:
        module.requires_grad_(True).train()
    return [parameter for module in modules for parameter in module.parameters()]


def prepare_dreambooth(components: Components, *, train_text_encoder: bool = False) -> list[nn.Parameter]:
    """DreamBooth trains what full training trains; its prior-preservation loss is the loop's (Ruiz et al. 2023)."""
    return prepare_full(components, train_text_encoder=train_text_encoder)


def prepare_instruct_pix2pix(components: Components, *, train_text_encoder: bool = False) -> list[nn.Parameter]:
    """InstructPix2Pix (Brooks et al. 2023): the U-Net, its conv_in widened to read the source latent (new weights
    zero, so training starts from the text-to-image model), trained in full on (source, instruction, target)."""
    if not is_instruct(components):  # a text-to-image model (an InstructPix2Pix one is fine-tuned as it is)
        widen_for_source_image(components.unet)
    return prepare_full(components, train_text_encoder=train_text_encoder)


def prepare_lora(
    components: Components, *, rank: int = 8, alpha: float = 8.0, train_text_encoder: bool = False
) -> list[nn.Parameter]:
    """Add LoRA adapters (update α/r·BA, Hu et al. 2022) to the U-Net's attention (+ the text encoder's)."""
    _freeze(components)
    return add_lora_adapters(components, rank=rank, alpha=alpha, train_text_encoder=train_text_encoder)


def prepare_textual_inversion(
    components: Components, *, placeholder_token: str, initializer_token: str
) -> list[nn.Parameter]:
    """Add `placeholder_token`, start its embedding at `initializer_token`'s; only the embedding table trains."""
    _freeze(components)
    return add_placeholder_token(components, placeholder_token=placeholder_token, initializer_token=initializer_token)


def prepare_custom_diffusion(
    components: Components, *, placeholder_token: str = "", initializer_token: str = ""
) -> list[nn.Parameter]:
    """Train the U-Net's cross-attention W_k, W_v (Kumari et al. 2023, §3.1), and a new token when given one.

    `placeholder_token` is the paper's modifier token V*, added and trained as in textual inversion.
    """
    if placeholder_token:
        parameters = prepare_textual_inversion(
            components, placeholder_token=placeholder_token, initializer_token=initializer_token
        )
    else:
        _freeze(components)
        parameters = []
    return parameters + prepare_cross_attention_kv(components.unet)


def after_optimizer_step(components: Components, method: str) -> None:
    """A new token (textual inversion, Custom Diffusion's V*): put back every other embedding row, as it was."""
    _check_method(method)
    if _learns_a_token(components, method):
        restore_other_embeddings(components)


def export_method(components: Components, method: str, folder: str | Path) -> Components:
    """Components for `save_components` (LoRA merged in) and the method's extra files written into `folder`.

    LoRA: `folder/pytorch_lora_weights.safetensors` (diffusers format, `pipe.load_lora_weights(folder)`); a
    non-CLIP text encoder's LoRA goes to `folder/text_encoder_lora/` (peft format) since diffusers cannot load it.
    Textual inversion: `folder/learned_embeds.safetensors` (`pipe.load_textual_inversion`). Custom Diffusion:
    the U-Net already holds its trained W_k, W_v; `folder/pytorch_custom_diffusion_weights.bin` holds them for
    diffusers' `unet.load_attn_procs` (custom_diffusion.py), plus learned_embeds.safetensors for a modifier token.
    Full and DreamBooth have no extras. The training components are left as they are.
    """
    _check_method(method)
    if method == "lora":
        return export_lora(components, Path(folder))
    if method == "custom-diffusion":
        save_custom_diffusion_weights(components.unet, Path(folder))
    if _learns_a_token(components, method):
        export_textual_inversion(components, Path(folder))
    return dataclasses.replace(components)


def _learns_a_token(components: Components, method: str) -> bool:
    """Textual inversion does; Custom Diffusion does when prepared with a modifier token."""
    return method == "textual-inversion" or (method == "custom-diffusion" and has_placeholder_token(components))


def _freeze(components: Components) -> None:
    """No weight trains, and dropout is off, until a method turns its modules back on."""
    for module in (components.vae, components.unet, components.text_encoder):
        module.requires_grad_(False).eval()


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"train.method={method!r}: unknown fine-tuning method; choose one of {METHODS}")
