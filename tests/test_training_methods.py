"""Fine-tuning methods: the loss falls on a fixed batch, only the chosen weights move, exports load in diffusers."""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import safetensors.torch
import torch
from diffusers import StableDiffusionPipeline
from peft.tuners.tuners_utils import BaseTunerLayer
from transformers import CLIPTextConfig, CLIPTextModel, GPT2Config, GPT2Model

from medcf.models import Components, encode_images, encode_prompts, load_components, save_components, tiny_components
from medcf.training.lora import LORA_WEIGHT_NAME, TEXT_ENCODER_ADAPTER_NAME, text_encoder_lora_targets
from medcf.training.loss import diffusion_loss
from medcf.training.methods import after_optimizer_step, export_method, prepare_method
from medcf.training.prior import generate_class_images
from medcf.training.textual_inversion import LEARNED_EMBEDS_NAME

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PARTS = ("vae", "unet", "text_encoder")
# The concept word fills 20 of the 77 prompt positions, so the tiny U-Net's cross-attention clearly feels it.
REPEATS = 20


def prompt(word: str) -> str:
    return " ".join([word] * REPEATS)


@dataclass
class Batch:
    latents: torch.Tensor  # (4, 4, 16, 16)
    noise: torch.Tensor
    timesteps: torch.Tensor


def disc_images() -> torch.Tensor:
    """(4, 1, 32, 32) in [-1, 1]: a bright disc at four places on a dark ramp."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    centres = [(-0.5, -0.3), (-0.5, 0.3), (0.5, -0.3), (0.5, 0.3)]
    discs = [((x - cx) ** 2 + (y - cy) ** 2 < 0.15).float() * 1.4 - 0.8 + 0.2 * x for cx, cy in centres]
    return torch.stack(discs)[:, None].clamp(-1, 1)


def fixed_batch(components: Components) -> Batch:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        latents = encode_images(components, disc_images(), sample=False)
    return Batch(latents, torch.randn(latents.shape, generator=generator), torch.tensor([100, 300, 500, 700]))


def batch_loss(components: Components, batch: Batch, text: str) -> torch.Tensor:
    embeds = encode_prompts(components, [text] * len(batch.latents))
    loss = diffusion_loss(
        components.unet, components.scheduler, batch.latents, embeds, noise=batch.noise, timesteps=batch.timesteps
    )
    return loss.mean()


def train(components: Components, method: str, parameters: list, text: str, *, steps: int, lr: float) -> list[float]:
    """AdamW steps on the fixed batch; returns the loss before each step and, last, the loss after training."""
    for part in PARTS:  # dropout off: the loss then depends on the weights alone
        getattr(components, part).eval()
    batch = fixed_batch(components)
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        loss = batch_loss(components, batch, text)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        after_optimizer_step(components, method)
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(batch_loss(components, batch, text).item())
    return losses


def snapshot(components: Components) -> dict[str, torch.Tensor]:
    return {
        f"{part}.{name}": parameter.detach().clone()
        for part in PARTS
        for name, parameter in getattr(components, part).named_parameters()
    }


def changed(before: dict[str, torch.Tensor], components: Components) -> set[str]:
    after = snapshot(components)
    return {name for name, value in before.items() if not torch.equal(value, after[name])}


def trainable(components: Components) -> set[str]:
    return {
        f"{part}.{name}"
        for part in PARTS
        for name, parameter in getattr(components, part).named_parameters()
        if parameter.requires_grad
    }


@pytest.fixture(scope="module")
def fitted() -> tuple[Components, set[str], set[str], list[float]]:
    """Full fine-tuning of the U-Net on the batch under prompt('right'): (components, trainable, changed, losses)."""
    components = tiny_components()
    parameters = prepare_method(components, "full")
    assert components.unet.training and not components.text_encoder.training
    before = snapshot(components)
    names = trainable(components)
    losses = train(components, "full", parameters, prompt("right"), steps=40, lr=3e-3)
    return components, names, changed(before, components), losses


def test_full_trains_the_unet_only(fitted) -> None:
    _, names, moved, losses = fitted
    assert losses[-1] < 0.2 * losses[0], losses[:: len(losses) // 5]
    assert names == {name for name in names if name.startswith("unet.")} and names
    assert moved == names  # every U-Net tensor moved; VAE and text encoder bit-identical


def test_full_options_add_text_encoder_and_vae_decoder() -> None:
    components = tiny_components()
    parameters = prepare_method(components, "full", train_text_encoder=True, train_vae_decoder=True)
    names = trainable(components)
    assert len(parameters) == len(names)
    parts = {name.split(".")[0] + "." + name.split(".")[1] for name in names if name.startswith("vae.")}
    assert parts == {"vae.decoder", "vae.post_quant_conv"}  # the encoder stays frozen (Chambon et al.)
    assert any(name.startswith("text_encoder.") for name in names)
    assert components.vae.decoder.training and not components.vae.encoder.training


@pytest.fixture(scope="module")
def two_words() -> tuple[Components, Batch]:
    """A U-Net that must read the prompt: one z_t, target ε under prompt('right'), another under prompt('left').

    The 'left' batch holds the negated latents with ε' = ε + √ᾱ_t/√(1−ᾱ_t)·(z_0 − z_0'), so both batches give
    the same noisy input z_t and only the words tell the targets apart. Returns (components, 'right' batch).
    """
    components = tiny_components()
    parameters = prepare_method(components, "full")
    for part in PARTS:
        getattr(components, part).eval()
    right = fixed_batch(components)
    right.timesteps = torch.tensor([100, 200, 300, 400])  # low noise: the two targets lie far apart
    alphas_cumprod = components.scheduler.alphas_cumprod[right.timesteps].view(-1, 1, 1, 1)
    shift = (alphas_cumprod / (1 - alphas_cumprod)).sqrt() * 2 * right.latents
    left = Batch(-right.latents, right.noise + shift, right.timesteps)
    optimizer = torch.optim.AdamW(parameters, lr=3e-3, weight_decay=0.0)
    for _ in range(40):
        loss = batch_loss(components, right, prompt("right")) + batch_loss(components, left, prompt("left"))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return components, right


def test_textual_inversion_learns_a_word_the_model_knows(two_words, tmp_path: Path) -> None:
    components, batch = copy.deepcopy(two_words[0]), two_words[1]
    with torch.no_grad():
        left, right = batch_loss(components, batch, prompt("left")), batch_loss(components, batch, prompt("right"))
    assert right < 0.3 * left  # the U-Net reads the words
    parameters = prepare_method(
        components, "textual-inversion", placeholder_token="<concept>", initializer_token="left"
    )
    embedding = components.text_encoder.get_input_embeddings()
    assert parameters == [embedding.weight] and trainable(components) == {"text_encoder." + _embedding_name()}
    assert not components.text_encoder.training  # eval: no dropout noise on the one vector being fitted
    token_id = components.tokenizer.convert_tokens_to_ids("<concept>")
    table = embedding.weight.detach().clone()
    optimizer = torch.optim.AdamW(parameters, lr=0.1, weight_decay=0.0)
    losses = []
    for _ in range(10):  # the 'right' batch under the new token, which starts as 'left'
        loss = batch_loss(components, batch, prompt("<concept>"))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        after_optimizer_step(components, "textual-inversion")
        losses.append(loss.item())
    assert losses[0] == pytest.approx(left.item(), rel=1e-5)  # started at the initializer's embedding
    assert losses[-1] < 0.3 * losses[0] and losses[-1] < 1.3 * right.item(), (losses, right.item())
    rows = torch.ones(len(table), dtype=torch.bool)
    rows[token_id] = False
    assert torch.equal(embedding.weight[rows], table[rows])  # the old vocabulary is bit-identical
    assert not torch.equal(embedding.weight[token_id], table[token_id])

    exported = export_method(components, "textual-inversion", tmp_path / "adapter")
    learned = safetensors.torch.load_file(tmp_path / "adapter" / LEARNED_EMBEDS_NAME)
    assert list(learned) == ["<concept>"]
    assert torch.equal(learned["<concept>"], embedding.weight[token_id].detach())
    assert exported.text_encoder is components.text_encoder and exported.tokenizer is components.tokenizer


def _embedding_name() -> str:
    return "embeddings.word_embeddings.weight"  # BertModel's input embedding table


@pytest.fixture(scope="module")
def lora() -> tuple[Components, dict[str, torch.Tensor], list[float]]:
    """LoRA (rank 4) on the U-Net and the BERT text encoder, trained on the batch: (components, before, losses)."""
    components = tiny_components()
    parameters = prepare_method(components, "lora", rank=4, alpha=8.0, train_text_encoder=True)
    before = snapshot(components)
    assert {name for name in trainable(components)} == {name for name in before if ".lora_" in name}
    assert len(parameters) == len(trainable(components))
    losses = train(components, "lora", parameters, prompt("right"), steps=30, lr=2e-2)
    return components, before, losses


def test_lora_trains_only_adapters(lora) -> None:
    components, before, losses = lora
    assert losses[-1] < 0.8 * losses[0], losses[:: len(losses) // 5]
    moved = changed(before, components)
    assert moved and all(".lora_" in name for name in moved)
    assert any(name.startswith("text_encoder.") for name in moved)


def test_lora_export_merges_and_loads_in_vanilla_diffusers(lora, tmp_path: Path) -> None:
    components = lora[0]
    exported = export_method(components, "lora", tmp_path / "adapter")
    for module in (exported.unet, exported.text_encoder):
        assert not any(isinstance(layer, BaseTunerLayer) for layer in module.modules())
        assert not getattr(module, "peft_config", None)
    assert any(isinstance(layer, BaseTunerLayer) for layer in components.unet.modules())  # training copy kept
    expected = _unet_output(components)
    torch.testing.assert_close(_unet_output(exported), expected, atol=1e-5, rtol=0)

    # The adapter file, in a vanilla pipeline built on the untrained base model
    base = tiny_components()
    pipeline = _pipeline(base)
    lora_file = tmp_path / "adapter" / LORA_WEIGHT_NAME
    # diffusers loads text-encoder LoRA under CLIP's names only: BERT's adapter is a peft folder beside the file
    assert not any(key.startswith("text_encoder.") for key in safetensors.torch.load_file(lora_file))
    pipeline.load_lora_weights(tmp_path / "adapter", weight_name=LORA_WEIGHT_NAME)
    base.text_encoder.load_adapter(str(tmp_path / "adapter" / TEXT_ENCODER_ADAPTER_NAME))
    torch.testing.assert_close(_unet_output(base), expected, atol=1e-5, rtol=0)

    # The merged model, saved as a plain Stable Diffusion folder
    reloaded = load_components(save_components(exported, tmp_path / "model"))
    torch.testing.assert_close(_unet_output(reloaded), expected, atol=1e-5, rtol=0)


def _pipeline(components: Components) -> StableDiffusionPipeline:
    return StableDiffusionPipeline(
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=components.tokenizer,
        unet=components.unet,
        scheduler=components.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def test_lora_with_clip_text_encoder_loads_from_the_one_diffusers_file(tmp_path: Path) -> None:
    """Stable Diffusion's CLIP text encoder: both adapters in pytorch_lora_weights.safetensors."""
    config = CLIPTextConfig(
        vocab_size=100, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4
    )
    components = dataclasses.replace(tiny_components(), text_encoder=CLIPTextModel(config).eval())
    base_text_encoder = copy.deepcopy(components.text_encoder)
    parameters = prepare_method(components, "lora", rank=4, alpha=8.0, train_text_encoder=True)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for parameter in parameters:  # a stand-in for training: every adapter off its start (B = 0)
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    input_ids = torch.randint(0, 100, (4, 12), generator=generator)
    with torch.no_grad():
        expected = components.text_encoder.eval()(input_ids).last_hidden_state
        assert base_text_encoder(input_ids).last_hidden_state.sub(expected).abs().max() > 1e-3
        exported = export_method(components, "lora", tmp_path)
        torch.testing.assert_close(exported.text_encoder(input_ids).last_hidden_state, expected, atol=1e-5, rtol=0)
    assert not (tmp_path / TEXT_ENCODER_ADAPTER_NAME).exists()
    pipeline = _pipeline(dataclasses.replace(components, unet=tiny_components().unet, text_encoder=base_text_encoder))
    pipeline.load_lora_weights(tmp_path, weight_name=LORA_WEIGHT_NAME)
    with torch.no_grad():
        torch.testing.assert_close(pipeline.text_encoder(input_ids).last_hidden_state, expected, atol=1e-5, rtol=0)


def _unet_output(components: Components) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(2, 4, 16, 16, generator=generator)
    with torch.no_grad():
        embeds = encode_prompts(components, [prompt("right"), "a chest x-ray"])
        return components.unet(sample, torch.tensor([200, 800]), encoder_hidden_states=embeds).sample


def test_text_encoder_lora_targets_clip_and_bert() -> None:
    clip = CLIPTextModel(
        CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    )
    assert text_encoder_lora_targets(clip) == ("q_proj", "k_proj", "v_proj", "out_proj")
    assert text_encoder_lora_targets(tiny_components().text_encoder)[:3] == ("query", "key", "value")
    gpt2 = GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="no attention projections.*train_text_encoder=false"):
        text_encoder_lora_targets(gpt2)


def test_dreambooth_with_prior_preservation(tmp_path: Path) -> None:
    components = tiny_components()
    parameters = prepare_method(components, "dreambooth", train_text_encoder=True)
    class_images = generate_class_images(components, "a disc", 4, seed=0, num_inference_steps=4, batch_size=3)
    assert components.unet.training and components.text_encoder.training  # flags given back after sampling
    before = snapshot(components)
    names = trainable(components)
    for part in PARTS:
        getattr(components, part).eval()
    instance, prior = fixed_batch(components), fixed_batch(components)
    with torch.no_grad():
        prior.latents = encode_images(components, class_images, sample=False)
    optimizer = torch.optim.AdamW(parameters, lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(30):  # L = L_instance + λ·L_prior with λ = 1 (Ruiz et al. 2023, Eq. 2)
        loss = batch_loss(components, instance, prompt("<sks> disc")) + batch_loss(components, prior, "a disc")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        after_optimizer_step(components, "dreambooth")
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::6]
    moved = changed(before, components)
    assert moved <= names and not any(name.startswith("vae.") for name in moved)
    assert any(name.startswith("text_encoder.") for name in moved)
    exported = export_method(components, "dreambooth", tmp_path / "adapter")
    assert exported.unet is components.unet and not (tmp_path / "adapter").exists()  # no extra files


def test_class_images_are_seeded() -> None:
    components = tiny_components()
    options = {"num_inference_steps": 3, "batch_size": 2}
    images = generate_class_images(components, "a disc", 3, seed=5, **options)
    assert images.shape == (3, 1, 32, 32) and images.min() >= -1 and images.max() <= 1
    torch.testing.assert_close(generate_class_images(components, "a disc", 3, seed=5, **options), images)
    assert not torch.equal(generate_class_images(components, "a disc", 3, seed=6, **options), images)


def test_bad_names_raise_clear_errors(tmp_path: Path) -> None:
    components = tiny_components()
    for call in (
        lambda: prepare_method(components, "hypernetwork"),
        lambda: after_optimizer_step(components, "hypernetwork"),
        lambda: export_method(components, "hypernetwork", tmp_path),
    ):
        with pytest.raises(ValueError, match="unknown fine-tuning method; choose one of"):
            call()
    with pytest.raises(ValueError, match="'chest' is already in the tokenizer's vocabulary"):
        prepare_method(components, "textual-inversion", placeholder_token="chest", initializer_token="lung")
    with pytest.raises(ValueError, match=r"'nodule' is 2 tokens \['nod', '##ule'\], not one") as refused:
        prepare_method(components, "textual-inversion", placeholder_token="<x>", initializer_token="nodule")
    suggested = re.findall(r"'(\w+)'", str(refused.value).split("e.g.")[1])
    assert suggested and all(len(components.tokenizer.tokenize(word)) == 1 for word in suggested)
    with pytest.raises(ValueError, match="call prepare_textual_inversion first"):
        after_optimizer_step(components, "textual-inversion")
    assert "<x>" not in components.tokenizer.get_vocab()  # a refused call leaves the tokenizer alone


def test_training_prompts_cut_by_the_window_warn_and_a_lost_placeholder_is_refused() -> None:
    from medcf.config import load_config
    from medcf.models.text import check_training_prompts

    tokenizer = tiny_components().tokenizer
    tokenizer.add_tokens(["<medcf>"])
    tokenizer.model_max_length = 12
    long = "a chest x-ray of a 70 year old female former smoker with a right lower lobe consolidation"
    assert check_training_prompts(tokenizer, ["a chest x-ray", "a chest x-ray"]) == 0
    with pytest.warns(UserWarning, match=r"1 of 2 training prompts are longer than the text encoder's 12 tokens"):
        assert check_training_prompts(tokenizer, [long, "a chest x-ray"]) == 1
    with pytest.raises(ValueError, match=r"1 of 1 training prompts lose the placeholder '<medcf>'.*put it first"):
        check_training_prompts(tokenizer, [f"{long}, <medcf>"], keep="<medcf>")
    with pytest.warns(UserWarning, match="1 of 1 training prompts are longer"):  # first: cut, but kept
        check_training_prompts(tokenizer, [f"<medcf> {long}"], keep="<medcf>")
    inversion = load_config(None, ["train.method=textual-inversion"]).train
    assert inversion.instance_template == "<medcf> {prompt}" and inversion.instance_prompt == ""
    assert load_config(None, ["train.method=dreambooth"]).train.instance_template == ""
