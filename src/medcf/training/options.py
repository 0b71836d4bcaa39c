"""Checks of a training config against what the methods and the run folder allow, and each method's options."""

from __future__ import annotations

from pathlib import Path

from accelerate import Accelerator

from medcf.config import Config, config_dict, load_config
from medcf.training.step import EDIT_WEIGHT_NORMS


def check_options(config: Config, accelerator: Accelerator, folder: Path) -> None:
    """Refuse combinations that cannot work, before any model is built."""
    if config.train.uses_prior and config.model.mask_conditioning:
        method = config.train.method
        raise ValueError(f"train.method={method}: class images have no masks; turn model.mask_conditioning off")
    instruct, pairs = config.train.method == "instruct-pix2pix", config.data.pairs
    if instruct != bool(pairs):
        raise ValueError(
            "train.method=instruct-pix2pix trains on image pairs: set data.pairs (counterfactuals, longitudinal or a "
            "CSV)"
            if instruct
            else f"data.pairs={pairs!r} is for train.method=instruct-pix2pix; set that or drop it"
        )
    if instruct and (config.model.mask_conditioning or config.train.uses_prior):
        raise ValueError("train.method=instruct-pix2pix reads a source image, not masks or class images")
    if config.train.edit_weight and not instruct:
        raise ValueError("train.edit_weight weights the edit of image pairs: set train.method=instruct-pix2pix or 0")
    if config.train.edit_weight < 0:
        raise ValueError(f"train.edit_weight={config.train.edit_weight}: use 0 (plain loss) or a positive weight")
    if config.train.edit_weight_norm not in EDIT_WEIGHT_NORMS:
        norms = " or ".join(EDIT_WEIGHT_NORMS)
        raise ValueError(f"train.edit_weight_norm={config.train.edit_weight_norm!r}: use {norms}")
    if config.train.train_vae_decoder and accelerator.num_processes > 1:
        raise ValueError("train.train_vae_decoder runs in one process only; launch without accelerate multi-process")
    check_run_folder(config, folder)


def check_run_folder(config: Config, folder: Path) -> None:
    """A run folder is new, empty, or this config's own run (resumed; only train.max_steps may grow, and the
    sample section, which draws previews and never touches the weights, may change)."""
    saved = folder / "config.yaml"
    if folder.is_dir() and any(folder.iterdir()) and not saved.is_file():
        raise ValueError(f"{folder} ({folder.resolve()}): a folder of other files, not a medcf run; pass a new --out")
    if saved.is_file():
        # read as a Config: a field added to medcf since (at its default) is no reason to refuse the run
        before, now = config_dict(load_config(saved)), config_dict(config)
        for values in (before, now):
            values["train"].pop("max_steps", None)  # a finished run may be extended with more steps
            values.pop("sample", None)
        if before != now:
            raise ValueError(f"{folder}: holds a run with another config; pass a new output folder or the same config")


def method_options(config: Config) -> dict:
    """The keyword arguments of train.method's prepare function (training/methods.py), checked."""
    train_config = config.train
    if train_config.modifier_token and train_config.method != "custom-diffusion":
        raise ValueError(
            f"train.modifier_token is Custom Diffusion's new word, not {train_config.method}'s; "
            "set train.method=custom-diffusion or train.modifier_token=false"
        )
    if train_config.method == "custom-diffusion" and not train_config.modifier_token:
        return {}
    if train_config.method == "full":
        return {
            "train_text_encoder": train_config.train_text_encoder,
            "train_vae_decoder": train_config.train_vae_decoder,
        }
    if train_config.method == "lora":
        return {
            "rank": train_config.lora_rank,
            "alpha": train_config.lora_alpha,
            "train_text_encoder": train_config.train_text_encoder,
        }
    if train_config.method in ("textual-inversion", "custom-diffusion"):  # custom-diffusion: with modifier_token
        if train_config.placeholder_token not in train_config.instance_template:
            token = train_config.placeholder_token
            raise ValueError(
                f"train.instance_prompt={train_config.instance_prompt!r} lacks the placeholder {token!r}; e.g. "
                f"--set 'train.instance_prompt={token} {{prompt}}' (first, where the text encoder's window never cuts "
                "it off), which '' also means"
            )
        return {
            "placeholder_token": train_config.placeholder_token,
            "initializer_token": train_config.initializer_token,
        }
    return {"train_text_encoder": train_config.train_text_encoder}
