"""Fine-tuning methods: which weights train, what follows each optimizer step, and what a finished run exports.

full: the U-Net, optionally with the text encoder and the VAE decoder (the component study of Chambon et al.
2022, RoentGen). lora: low-rank adapters on the U-Net's attention projections (Hu et al. 2022), through peft.
textual-inversion: one new token whose input embedding is the only trained weight (Gal et al. 2023).
dreambooth: the U-Net (+ text encoder) like full; the loop adds the class-prior loss (Ruiz et al. 2023, prior.py).
custom-diffusion: the U-Net's cross-attention W_k, W_v, optionally with a new token V* (Kumari et al. 2023,
custom_diffusion.py). instruct-pix2pix: the U-Net widened to read a source image (Brooks et al. 2023), on pairs.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from weakref import WeakKeyDictionary

import safetensors.torch
import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from torch import nn

from medcf.atomic import atomic_folder, atomic_path
from medcf.models import Components
from medcf.models.instruct import is_instruct, widen_for_source_image
from medcf.training.custom_diffusion import prepare_cross_attention_kv, save_custom_diffusion_weights

METHODS = ("full", "lora", "textual-inversion", "dreambooth", "custom-diffusion", "instruct-pix2pix")
UNET_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # attention projections, as diffusers' LoRA scripts
# Attention projections of the text encoders medcf meets; the first family whose names all occur is used.
TEXT_ENCODER_LORA_TARGETS = (
    ("q_proj", "k_proj", "v_proj", "out_proj"),  # CLIPTextModel (Stable Diffusion)
    ("query", "key", "value", "attention.output.dense"),  # BertModel (MiniLM); not the MLP's or pooler's dense
)
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # what `pipe.load_lora_weights(folder)` looks for
TEXT_ENCODER_ADAPTER_NAME = "text_encoder_lora"  # peft adapter folder of a non-CLIP text encoder's LoRA
LEARNED_EMBEDS_NAME = "learned_embeds.safetensors"  # diffusers' textual-inversion file: {token: (D,)}


@dataclass
class PlaceholderEmbedding:
    """A textual-inversion token and the embedding table it was added to, as it was before training."""

    token: str
    token_id: int
    original: torch.Tensor  # (V, D) the initial table, new row included; every other row is restored from it


# Keyed by the text encoder's input embedding module, so the state lives exactly as long as that module.
_PLACEHOLDERS: WeakKeyDictionary[nn.Module, PlaceholderEmbedding] = WeakKeyDictionary()


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
    if rank < 1:
        raise ValueError(f"train.lora_rank={rank}: must be a positive integer, e.g. 8")
    _freeze(components)
    modules: list[nn.Module] = [components.unet]
    # Gaussian A, zero B: training starts exactly at the base model (diffusers' LoRA scripts).
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


# Radiology words to suggest as textual inversion's initializer: the first that a model's tokenizer keeps as one
# token are named when the user's word is split (which words are whole depends on the tokenizer's vocabulary).
INITIALIZER_WORDS = ("shadow", "opacity", "lung", "chest", "scan", "image", "photo", "x")


def prepare_textual_inversion(
    components: Components, *, placeholder_token: str, initializer_token: str
) -> list[nn.Parameter]:
    """Add `placeholder_token`, start its embedding at `initializer_token`'s; only the embedding table trains."""
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
    _freeze(components)
    tokenizer.add_tokens([placeholder_token])
    placeholder_id = tokenizer.convert_tokens_to_ids(placeholder_token)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # the new row is set below
    embedding = text_encoder.get_input_embeddings()
    with torch.no_grad():
        embedding.weight[placeholder_id] = embedding.weight[initializer_ids[0]]
    _PLACEHOLDERS[embedding] = PlaceholderEmbedding(
        placeholder_token, placeholder_id, embedding.weight.detach().clone()
    )
    # The encoder stays in eval mode (from _freeze): no dropout noise on the one vector being fitted.
    embedding.weight.requires_grad_(True)
    return [embedding.weight]


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
    if not _learns_a_token(components, method):
        return
    embedding = components.text_encoder.get_input_embeddings()
    placeholder = _placeholder(embedding)
    # The whole table gets gradients (and AdamW updates); only the new row may keep them (diffusers'
    # textual_inversion.py restores the others the same way).
    keep = torch.ones(len(placeholder.original), dtype=torch.bool, device=embedding.weight.device)
    keep[placeholder.token_id] = False
    with torch.no_grad():
        embedding.weight[keep] = placeholder.original[keep].to(embedding.weight)


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
        return _export_lora(components, Path(folder))
    if method == "custom-diffusion":
        save_custom_diffusion_weights(components.unet, Path(folder))
    if _learns_a_token(components, method):
        _export_textual_inversion(components, Path(folder))
    return dataclasses.replace(components)


def _export_lora(components: Components, folder: Path) -> Components:
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


def _export_textual_inversion(components: Components, folder: Path) -> None:
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


def _learns_a_token(components: Components, method: str) -> bool:
    """Textual inversion does; Custom Diffusion does when prepared with a modifier token."""
    has_token = components.text_encoder.get_input_embeddings() in _PLACEHOLDERS
    return method == "textual-inversion" or (method == "custom-diffusion" and has_token)


def _has_adapter(module: nn.Module) -> bool:
    return bool(getattr(module, "peft_config", None))


def _freeze(components: Components) -> None:
    """No weight trains, and dropout is off, until a method turns its modules back on."""
    for module in (components.vae, components.unet, components.text_encoder):
        module.requires_grad_(False).eval()


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"train.method={method!r}: unknown fine-tuning method; choose one of {METHODS}")
