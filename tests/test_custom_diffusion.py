"""Custom Diffusion (Kumari et al. 2023): only cross-attention W_k, W_v (+ the token V*) train, the gradients are
diffusers' own, and the run's model and adapter load in vanilla diffusers into the fine-tuned outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import safetensors.torch
import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import CustomDiffusionAttnProcessor

from medcf.config import load_config
from medcf.evaluation.suite import SUITES, suite_runs
from medcf.models import Components, encode_prompts, save_components, tiny_components
from medcf.training import train as train_run
from medcf.training.custom_diffusion import CUSTOM_DIFFUSION_WEIGHT_NAME, cross_attentions
from medcf.training.methods import after_optimizer_step, export_method, prepare_method
from medcf.training.options import method_options
from medcf.training.setup import build_components
from medcf.training.textual_inversion import LEARNED_EMBEDS_NAME
from test_training_methods import PARTS, changed, prompt, snapshot, train, trainable

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOKEN = "<concept>"
KV_NAMES = ("attn2.to_k.weight", "attn2.to_v.weight")
TABLE = "embeddings.word_embeddings.weight"  # BertModel's input embedding table
EMBEDDING = f"text_encoder.{TABLE}"


def kv_names(components: Components) -> set[str]:
    return {f"unet.{name}" for name, _ in components.unet.named_parameters() if name.endswith(KV_NAMES)}


@pytest.fixture(scope="module")
def custom() -> tuple[Components, dict[str, torch.Tensor], set[str], list[float]]:
    """Custom Diffusion with the modifier token on the fixed batch: (components, before, trainable, losses)."""
    components = tiny_components()
    parameters = prepare_method(components, "custom-diffusion", placeholder_token=TOKEN, initializer_token="left")
    assert components.unet.training and not components.text_encoder.training
    names = trainable(components)
    assert len(parameters) == len(names)
    before = snapshot(components)
    losses = train(components, "custom-diffusion", parameters, prompt(TOKEN), steps=30, lr=2e-2)
    return components, before, names, losses


def test_only_cross_attention_key_value_and_the_new_token_train(custom) -> None:
    components, before, names, losses = custom
    assert losses[-1] < 0.8 * losses[0], losses[::6]
    # the tiny U-Net has 4 transformer blocks: 4 cross-attentions × (W_k, W_v), nothing else of the U-Net
    assert len(cross_attentions(components.unet)) == 4 and len(kv_names(components)) == 8
    assert names == kv_names(components) | {EMBEDDING}
    assert changed(before, components) == names  # every other tensor of VAE, U-Net, text encoder bit-identical
    table = components.text_encoder.get_input_embeddings().weight
    token_id = components.tokenizer.convert_tokens_to_ids(TOKEN)
    rows = torch.ones(len(table), dtype=torch.bool)
    rows[token_id] = False
    assert torch.equal(table[rows], before[EMBEDDING][rows])  # the old vocabulary is restored after every step
    assert not torch.equal(table[token_id], before[EMBEDDING][token_id])
    initializer = components.tokenizer.convert_tokens_to_ids("left")
    assert torch.equal(before[EMBEDDING][token_id], before[EMBEDDING][initializer])  # V* started at 'left'


def test_without_a_modifier_token_only_key_and_value_train(tmp_path: Path) -> None:
    components = tiny_components()
    vocabulary = len(components.tokenizer)
    parameters = prepare_method(components, "custom-diffusion")
    assert trainable(components) == kv_names(components) and len(parameters) == 8
    before = snapshot(components)
    train(components, "custom-diffusion", parameters, prompt("right"), steps=3, lr=1e-2)
    assert changed(before, components) == kv_names(components)
    assert len(components.tokenizer) == vocabulary
    export_method(components, "custom-diffusion", tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [CUSTOM_DIFFUSION_WEIGHT_NAME]


def test_gradients_equal_diffusers_custom_diffusion_processor() -> None:
    """Same weights, same input: medcf's outputs and W_k, W_v gradients are those of diffusers'
    CustomDiffusionAttnProcessor, which gives the start token's K/V no gradient (plain K/V training differs)."""
    components, reference, plain = tiny_components(), tiny_components(), tiny_components()
    prepare_method(components, "custom-diffusion")
    reference.unet.requires_grad_(False)
    processors = {}
    for name in reference.unet.attn_processors:
        layer = reference.unet.get_submodule(name.removesuffix(".processor"))
        if not layer.is_cross_attention:
            processors[name] = CustomDiffusionAttnProcessor(train_kv=False, train_q_out=False)
            continue
        width, text_width = layer.to_k.out_features, layer.to_k.in_features
        processors[name] = CustomDiffusionAttnProcessor(
            train_kv=True, train_q_out=False, hidden_size=width, cross_attention_dim=text_width
        )
        processors[name].load_state_dict(
            {"to_k_custom_diffusion.weight": layer.to_k.weight, "to_v_custom_diffusion.weight": layer.to_v.weight}
        )
    reference.unet.set_attn_processor(processors)
    plain.unet.requires_grad_(False)
    for layer in cross_attentions(plain.unet).values():
        layer.to_k.weight.requires_grad_(True)
        layer.to_v.weight.requires_grad_(True)
    generator = torch.Generator().manual_seed(3)
    sample, states = torch.randn(2, 4, 16, 16, generator=generator), torch.randn(2, 12, 32, generator=generator)
    outputs, gradients = {}, {}
    for label, unet in (("medcf", components.unet), ("diffusers", reference.unet), ("plain", plain.unet)):
        outputs[label] = unet(sample, torch.tensor([100, 600]), encoder_hidden_states=states).sample
        outputs[label].square().mean().backward()
        gradients[label] = [parameter.grad for parameter in unet.parameters() if parameter.requires_grad]
    torch.testing.assert_close(outputs["medcf"], outputs["diffusers"], atol=1e-5, rtol=0)
    assert [len(found) for found in gradients.values()] == [8, 8, 8]
    for ours, theirs, plain_gradient in zip(*gradients.values(), strict=True):  # W_k, W_v of each layer in turn
        assert ours.shape == theirs.shape and ours.abs().max() > 0
        torch.testing.assert_close(ours, theirs, atol=1e-7, rtol=1e-4)
        assert (plain_gradient - theirs).abs().max() > 1e-3 * theirs.abs().max()  # the start-token rule matters


def _unet_output(unet: torch.nn.Module, encoder_hidden_states: torch.Tensor | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(2, 4, 16, 16, generator=generator)
    states = torch.randn(2, 12, 32, generator=generator) if encoder_hidden_states is None else encoder_hidden_states
    with torch.no_grad():
        return unet(sample, torch.tensor([200, 800]), encoder_hidden_states=states).sample


def _pipeline(components: Components) -> StableDiffusionPipeline:
    return StableDiffusionPipeline(
        **{part: getattr(components, part) for part in (*PARTS, "tokenizer", "scheduler")},
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def test_export_loads_in_vanilla_diffusers_and_with_the_custom_diffusion_loader(custom, tmp_path: Path) -> None:
    components = custom[0]
    adapter = tmp_path / "adapter"
    exported = export_method(components, "custom-diffusion", adapter)
    assert exported.unet is components.unet  # trained in place: the U-Net is already the fine-tuned model
    assert {path.name for path in adapter.iterdir()} == {CUSTOM_DIFFUSION_WEIGHT_NAME, LEARNED_EMBEDS_NAME}
    expected = _unet_output(components.unet)
    base = tiny_components()
    assert (_unet_output(base.unet) - expected).abs().max() > 1e-2

    # 1. The adapter file: one entry per attention layer, W_k/W_v for the cross-attentions, {} for the others
    state = torch.load(adapter / CUSTOM_DIFFUSION_WEIGHT_NAME, weights_only=True)
    assert sum(value == {} for value in state.values()) == 4 and len(state) == 4 + 8
    for name, layer in cross_attentions(components.unet).items():
        assert torch.equal(state[f"{name}.to_k_custom_diffusion.weight"], layer.to_k.weight)
        assert torch.equal(state[f"{name}.to_v_custom_diffusion.weight"], layer.to_v.weight)

    # 2. ... read by diffusers' custom-diffusion loader into the base U-Net (with `_pipeline`: diffusers#9320)
    pipeline = _pipeline(base)
    pipeline.unet.load_attn_procs(adapter, weight_name=CUSTOM_DIFFUSION_WEIGHT_NAME, _pipeline=pipeline)
    kinds = {type(pipeline.unet.attn_processors[name]) for name in cross_attentions(pipeline.unet)}
    assert kinds == {CustomDiffusionAttnProcessor}
    torch.testing.assert_close(_unet_output(pipeline.unet), expected, atol=1e-5, rtol=0)

    # 3. The modifier token, by diffusers' textual-inversion loader: the same embedding and prompt embeddings
    learned = safetensors.torch.load_file(adapter / LEARNED_EMBEDS_NAME)
    token_id = components.tokenizer.convert_tokens_to_ids(TOKEN)
    assert list(learned) == [TOKEN]
    assert torch.equal(learned[TOKEN], components.text_encoder.get_input_embeddings().weight[token_id])
    pipeline.load_textual_inversion(adapter, weight_name=LEARNED_EMBEDS_NAME)
    with torch.no_grad():
        trained_states = encode_prompts(components, [prompt(TOKEN), "a chest x-ray"])
        loaded_states = encode_prompts(base, [prompt(TOKEN), "a chest x-ray"])
    torch.testing.assert_close(loaded_states, trained_states, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        _unet_output(pipeline.unet, loaded_states), _unet_output(components.unet, trained_states), atol=1e-5, rtol=0
    )

    # 4. The saved model in a vanilla pipeline: the fine-tuned U-Net, tokenizer and text encoder
    model = save_components(exported, tmp_path / "model")
    vanilla = StableDiffusionPipeline.from_pretrained(
        model, safety_checker=None, requires_safety_checker=False, local_files_only=True
    )
    assert all(type(processor).__name__ == "AttnProcessor2_0" for processor in vanilla.unet.attn_processors.values())
    torch.testing.assert_close(_unet_output(vanilla.unet), expected, atol=1e-5, rtol=0)
    reloaded = dataclasses.replace(components, text_encoder=vanilla.text_encoder, tokenizer=vanilla.tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(encode_prompts(reloaded, [prompt(TOKEN)]), trained_states[:1], atol=1e-6, rtol=0)


def test_options_are_checked_before_training() -> None:
    options = method_options(load_config(None, ["train.method=custom-diffusion"]))
    assert options == {}  # no modifier token: nothing for the text encoder
    modifier = ["train.method=custom-diffusion", "train.modifier_token=true", "train.placeholder_token=<v>"]
    options = method_options(load_config(None, [*modifier, "train.instance_prompt=<v> {prompt}"]))
    shadow = {"initializer_token": "shadow"}
    assert options == {"placeholder_token": "<v>", **shadow}
    assert method_options(load_config(None, modifier)) == options  # '' means '<v> {prompt}'
    with pytest.raises(ValueError, match=r"lacks the placeholder '<v>'; e.g. --set 'train.instance_prompt=<v> \{"):
        method_options(load_config(None, [*modifier, "train.instance_prompt={prompt}"]))
    with pytest.raises(ValueError, match="train.modifier_token is Custom Diffusion's.*train.method=custom-diffusion"):
        method_options(load_config(None, ["train.method=lora", "train.modifier_token=true"]))
    components = tiny_components()
    prepare_method(components, "custom-diffusion")
    after_optimizer_step(components, "custom-diffusion")  # without V*: nothing to restore, no error
    cxr = SUITES["cxr-synth"]
    suite = {run.name: run for run in suite_runs(cxr, cxr.sizes["quick"])}["Custom Diffusion, δ=0.1"]
    assert method_options(load_config(None, suite.overrides)) == {"placeholder_token": "<medcf>", **shadow}


def test_training_run_with_latent_drift_writes_a_diffusers_model(tmp_path: Path, cxr_synth_root: Path) -> None:
    overrides = [
        f"data.root={cxr_synth_root}", "data.resolution=32", "model.tiny=true", "train.batch_size=4",
        "train.max_steps=4", "train.learning_rate=1e-2", "train.ema_decay=0", "train.checkpoint_every=0",
        "train.sample_every=0", "sample.num_images=2", "sample.num_inference_steps=2", "train.latent_drift=0.1",
        "train.method=custom-diffusion", "train.modifier_token=true", "train.instance_prompt=<medcf> {prompt}",
    ]  # fmt: skip
    config = load_config(None, overrides)
    model = train_run(config, tmp_path / "run", progress=False)
    untrained = build_components(**dataclasses.asdict(config.model), resolution=32)
    trained = StableDiffusionPipeline.from_pretrained(
        model, safety_checker=None, requires_safety_checker=False, local_files_only=True
    )
    before, after = untrained.unet.state_dict(), trained.unet.state_dict()
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    assert moved == {name for name in before if name.endswith(KV_NAMES)} and len(moved) == 8
    token_id = trained.tokenizer.convert_tokens_to_ids("<medcf>")
    table = trained.text_encoder.get_input_embeddings().weight
    old_table = untrained.text_encoder.get_input_embeddings().weight
    assert token_id == len(old_table) and len(table) == len(old_table) + 1
    assert torch.equal(table[:token_id], old_table)  # the vocabulary the base model knew is unchanged
    for part in ("vae", "text_encoder"):  # and nothing else of the text encoder or the VAE moved
        old, new = getattr(untrained, part).state_dict(), getattr(trained, part).state_dict()
        assert all(torch.equal(old[name], new[name]) for name in old if name != TABLE)
    shadow = old_table[untrained.tokenizer.convert_tokens_to_ids("shadow")]
    assert not torch.equal(table[token_id], shadow)  # V* moved off its initializer

    adapter = tmp_path / "run" / "adapter"
    pipeline = _pipeline(untrained)
    pipeline.unet.load_attn_procs(adapter, weight_name=CUSTOM_DIFFUSION_WEIGHT_NAME, _pipeline=pipeline)
    torch.testing.assert_close(_unet_output(pipeline.unet), _unet_output(trained.unet), atol=1e-5, rtol=0)
    pipeline.load_textual_inversion(adapter, weight_name=LEARNED_EMBEDS_NAME)
    torch.testing.assert_close(pipeline.text_encoder.get_input_embeddings().weight[token_id], table[token_id])
    losses = (tmp_path / "run" / "loss.csv").read_text().splitlines()[1:]
    assert len(losses) == 4


def test_custom_diffusion_puts_its_token_first_and_takes_class_images_when_asked() -> None:
    from medcf.config import load_config

    plain = load_config(None, ["train.method=custom-diffusion"]).train
    assert not plain.learns_token and not plain.uses_prior and plain.instance_template == ""
    token = load_config(None, ["train.method=custom-diffusion", "train.modifier_token=true"]).train
    assert token.learns_token and token.instance_template == "<medcf> {prompt}"
    regularised = load_config(None, ["train.method=custom-diffusion", "train.class_prompt=A chest X-ray."]).train
    assert regularised.uses_prior and load_config(None, ["train.method=dreambooth"]).train.uses_prior
