"""Prompt text → per-token embeddings for the U-Net's cross-attention."""

from __future__ import annotations

import warnings

import torch
from transformers import PreTrainedTokenizerBase

from medcf.models.components import Components


def encode_prompts(components: Components, prompts: list[str]) -> torch.Tensor:
    """Prompts → last hidden states (B, L, D), L = tokenizer.model_max_length (77 for every medcf model).

    Padded to a fixed length and encoded without an attention mask, exactly as Stable Diffusion pipelines
    do, so embeddings match vanilla diffusers. No `torch.no_grad` here: editing and attribution need gradients.
    Longer prompts are cut at L, as in diffusers' pipelines and training scripts (the model was trained so);
    where a person typed the prompt, or an edit must survive the cut, the callers check first (below).
    """
    if isinstance(prompts, str):
        raise ValueError(f"prompts={prompts!r}: pass a list of strings, e.g. [{prompts!r}]")
    # Each distinct prompt is encoded once: a batch's B null prompts (classifier-free guidance) cost one pass.
    position = {prompt: index for index, prompt in enumerate(dict.fromkeys(prompts))}
    tokens = components.tokenizer(
        list(position),
        padding="max_length",
        max_length=components.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    device = next(components.text_encoder.parameters()).device  # also for a DDP-wrapped encoder (no .device)
    hidden = components.text_encoder(tokens.input_ids.to(device))[0]
    if len(position) == len(prompts):
        return hidden
    return hidden[torch.tensor([position[prompt] for prompt in prompts], device=hidden.device)]


def check_prompt_lengths(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> None:
    """Refuse, in one line, a prompt the text encoder would cut at tokenizer.model_max_length tokens, or whose
    words it cannot read (its tokenizer's unknown token: e.g. a 10,000-character "word" becomes one [UNK])."""
    limit = tokenizer.model_max_length
    for prompt in dict.fromkeys(prompts):
        ids = tokenizer(prompt).input_ids  # with the start and end tokens, as encoded
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
            unknown = [word for word in prompt.split() if tokenizer.unk_token_id in tokenizer(word).input_ids]
            shown = ", ".join(repr(word[:20] + ("…" if len(word) > 20 else "")) for word in unknown[:3])
            raise ValueError(
                f"prompt {prompt[:40]!r}…: the text encoder cannot read {shown} (its tokenizer has no token for "
                "it, so it would pass as unknown); use plain words"
            )
        count = len(ids)
        if count > limit:
            raise ValueError(
                f"prompt {prompt[:40]!r}… is {count} tokens; the model's text encoder reads {limit} and would cut the "
                "rest: shorten it (e.g. drop patient info or use the simple prompt style)"
            )


def check_training_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str], *, keep: str = "") -> int:
    """How many distinct training prompts the text encoder's window cuts (as diffusers' training scripts and
    medcf cut them); a warning says so. Refused when a cut loses `keep` (textual inversion's placeholder): that
    prompt would teach the new token nothing."""
    limit, distinct = tokenizer.model_max_length, list(dict.fromkeys(prompts))
    cut = [prompt for prompt, ids in zip(distinct, tokenizer(distinct).input_ids, strict=True) if len(ids) > limit]
    if keep and cut:
        token = tokenizer.convert_tokens_to_ids(keep)
        windows = tokenizer(cut, truncation=True, max_length=limit).input_ids
        if lost := [prompt for prompt, ids in zip(cut, windows, strict=True) if token not in ids]:
            raise ValueError(
                f"{len(lost)} of {len(distinct)} training prompts lose the placeholder {keep!r} to the text encoder's "
                f"{limit}-token window (e.g. {lost[0][:60]!r}…); put it first (train.instance_prompt='{keep} "
                "{prompt}', the default) or shorten the prompts (data.patient_info=false, data.prompt_style=simple)"
            )
    if cut:
        warnings.warn(
            f"{len(cut)} of {len(distinct)} training prompts are longer than the text encoder's {limit} tokens and "
            f"are cut there (e.g. {cut[0][:60]!r}…); words past the cut teach nothing — shorten them with "
            "data.patient_info=false or data.prompt_style=simple",
            stacklevel=2,
        )
    return len(cut)


def check_edit_survives_truncation(tokenizer: PreTrainedTokenizerBase, source: str, target: str) -> None:
    """Refuse an edit whose prompts differ only beyond the text encoder's window: it would change nothing."""
    limit = tokenizer.model_max_length
    cut = [tokenizer(prompt, truncation=True, max_length=limit).input_ids for prompt in (source, target)]
    if source != target and cut[0] == cut[1]:
        raise ValueError(
            f"the edit changes the prompt only after the text encoder's {limit} tokens ({target[:40]!r}…), so it "
            "would change nothing: edit without age, sex and smoking in the prompts (--no-patient-info)"
        )
