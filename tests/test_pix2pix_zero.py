"""pix2pix-zero (Parmar et al., SIGGRAPH 2023): edit direction, null edit, cross-attention maps and guidance,
noise regularisation, and the engine through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medcf.data import write_png
from medcf.editing import counterfactual, edit_direction, healthy_paraphrases, paraphrase_prompts
from medcf.editing.cross_attention import cross_attention_loss, recording_cross_attention
from medcf.editing.noise_regularization import kl_divergence, regularize_noise
from medcf.editing.pix2pix_zero import cross_attention_gradient
from medcf.models import Components, save_components, tiny_components
from medcf.prompts import DEFAULT_VOCABULARY, PromptTemplate
from test_cli import medcf
from test_editing import SOURCE, STEPS, TARGET, _images  # the same two images and prompts as the other engines

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NULL_DIRECTION = ([[prompt] for prompt in SOURCE], [[prompt] for prompt in SOURCE])  # Δc = 0
ROW = {"age": 70, "sex": "F", "pleural_effusion": 1}


@pytest.fixture(scope="module")
def components() -> Components:
    torch.manual_seed(0)
    return tiny_components(in_channels=1)


def _embed(components: Components, prompts: list[str]) -> torch.Tensor:
    """The text encoder's last hidden states, padded as Stable Diffusion pads (not through medcf.models)."""
    tokenizer = components.tokenizer
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    with torch.no_grad():
        return components.text_encoder(ids.input_ids).last_hidden_state


def test_the_direction_is_the_mean_embedding_difference_of_the_rows_paraphrases(components) -> None:
    rows = [ROW, {"age": 50, "sex": "M", "pleural_effusion": 1, "nodule": 1}]
    sources, targets = paraphrase_prompts(PromptTemplate("chest X-ray"), rows, ["pleural_effusion=absent"], count=8)
    assert [len(sentences) for sentences in (*sources, *targets)] == [8, 8, 8, 8]
    assert len(set(sources[0])) > 4 and len(set(targets[0])) > 1  # diverse wordings, not one sentence repeated

    def names(key: str, sentence: str) -> bool:
        return any(wording in sentence.lower() for wording in DEFAULT_VOCABULARY.findings[key].paraphrases)

    assert all(names("pleural_effusion", sentence) for sentence in sources[0] + sources[1])
    assert not any(names("pleural_effusion", sentence) for sentence in targets[0] + targets[1])
    assert all(names("nodule", sentence) for sentence in sources[1] + targets[1])  # the other finding stays

    direction = edit_direction(components, sources, targets)
    pairs = zip(sources, targets, strict=True)
    expected = torch.stack([_embed(components, t).mean(0) - _embed(components, s).mean(0) for s, t in pairs])
    assert direction.shape == (2, components.tokenizer.model_max_length, components.text_encoder.config.hidden_size)
    torch.testing.assert_close(direction, expected, atol=1e-6, rtol=0)
    assert direction.abs().amax(dim=(1, 2)).min() > 1e-3

    unchanged = paraphrase_prompts(PromptTemplate("chest X-ray"), [ROW], ["pleural_effusion=present"])
    assert unchanged[0] == unchanged[1] and torch.equal(edit_direction(components, *unchanged), torch.zeros(1, 77, 32))
    sources, healthy = healthy_paraphrases(PromptTemplate("chest X-ray"), [ROW], count=4)
    assert all("normal" in sentence.lower() or "unremarkable" in sentence.lower() for sentence in healthy[0])


@pytest.mark.parametrize("latent_drift", [0.0, [0.1, -0.05, 0.0, 0.2]])
def test_a_null_direction_returns_the_inversion_engines_reconstruction(components, latent_drift) -> None:
    settings = {"num_inference_steps": STEPS, "latent_drift": latent_drift}
    reconstruction = counterfactual(components, _images(), SOURCE, SOURCE, engine="inversion", **settings)
    null = {"engine": "pix2pix-zero", "direction_prompts": NULL_DIRECTION, **settings}
    for guidance in (0.0, 0.1, 10.0):  # M_t^edit = M_t^ref at every step: the guidance has nothing to correct
        edited = counterfactual(
            components,
            _images(),
            SOURCE,
            TARGET,
            cross_attention_guidance=guidance,
            noise_regularization=False,
            **null,
        )
        torch.testing.assert_close(edited, reconstruction, atol=1e-4, rtol=0)
    regularized = [
        counterfactual(components, _images(), SOURCE, TARGET, cross_attention_guidance=guidance, **null)
        for guidance in (0.0, 10.0)
    ]
    torch.testing.assert_close(regularized[0], regularized[1], atol=1e-4, rtol=0)
    assert (regularized[0] - reconstruction).abs().max() > 1e-3  # the regularised inversion is another start
    edited = counterfactual(components, _images(), SOURCE, TARGET, engine="pix2pix-zero", **settings)
    assert (edited - regularized[0]).abs().mean() > 1e-3  # a real direction edits
    again = counterfactual(components, _images(), SOURCE, TARGET, engine="pix2pix-zero", **settings)
    assert torch.equal(edited, again)  # deterministic, like the inversion engine


def test_the_recorder_stores_every_cross_attention_map_and_restores_the_processors(components) -> None:
    unet = components.unet
    before = dict(unet.attn_processors)
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    t, embeds = torch.tensor(501), _embed(components, SOURCE)
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    captured = {}  # the layer's inputs in the recorded pass
    with torch.no_grad():
        plain = unet(latents, t, encoder_hidden_states=embeds).sample
        with recording_cross_attention(unet) as store:
            hook = unet.get_submodule(layer).register_forward_pre_hook(
                lambda module, args, kwargs: captured.update(hidden=args[0], context=kwargs["encoder_hidden_states"]),
                with_kwargs=True,
            )
            with store.recording() as maps:
                recorded = unet(latents, t, encoder_hidden_states=embeds).sample
            hook.remove()
            unet(latents, t, encoder_hidden_states=_embed(components, TARGET))  # not recording: maps kept
    assert torch.equal(recorded, plain)  # the layers' outputs are their own processors'
    assert set(maps) == {name.removesuffix(".processor") for name in before if ".attn2." in name}
    for name, probabilities in maps.items():
        side = 8 if name.startswith("mid_block") else 16  # the mid block runs at half the latent size
        heads = unet.get_submodule(name).heads
        assert probabilities.shape == (2, heads, side * side, 77)
        torch.testing.assert_close(probabilities.sum(dim=-1), torch.ones(2, heads, side * side))
    attention = unet.get_submodule(layer)  # M = softmax(QKᵀ/√d), head by head, computed here from the layer's input
    query = attention.to_q(captured["hidden"]).unflatten(-1, (attention.heads, -1)).transpose(1, 2)
    key = attention.to_k(captured["context"]).unflatten(-1, (attention.heads, -1)).transpose(1, 2)
    expected = (query @ key.transpose(-1, -2) / query.shape[-1] ** 0.5).softmax(dim=-1)
    torch.testing.assert_close(maps[layer], expected.detach(), atol=1e-6, rtol=0)
    assert all(unet.attn_processors[name] is processor for name, processor in before.items())

    with pytest.raises(RuntimeError, match="inside the block"), recording_cross_attention(unet):
        raise RuntimeError("inside the block")
    assert all(unet.attn_processors[name] is processor for name, processor in before.items())


def test_one_guidance_step_lowers_the_cross_attention_loss(components) -> None:
    unet = components.unet
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    t, source, edit = torch.tensor(801), _embed(components, SOURCE), _embed(components, TARGET)
    with torch.no_grad(), recording_cross_attention(unet) as store:
        with store.recording() as reference:
            unet(latents, t, encoder_hidden_states=source)

        def loss(x: torch.Tensor) -> float:
            with store.recording() as maps:
                unet(x, t, encoder_hidden_states=edit)
            return float(cross_attention_loss(maps, reference))

        gradient = cross_attention_gradient(components, store, latents, t, edit, reference)
        step = 0.1 / gradient.norm()  # a small step, so the first-order prediction holds
        before, after = loss(latents), loss(latents - step * gradient)
    assert gradient.shape == latents.shape and before > 0
    assert after < before
    assert before - after == pytest.approx(float(step * gradient.pow(2).sum()), rel=0.2)
    assert all(parameter.grad is None for parameter in unet.parameters())  # only the latents got a gradient


def test_noise_regularization_decorrelates_noise_and_leaves_white_noise_nearly_alone() -> None:
    generator = torch.Generator().manual_seed(0)
    white = torch.randn(2, 4, 16, 16, generator=generator)
    smooth = F.interpolate(torch.randn(2, 4, 4, 4, generator=generator), size=16, mode="bilinear") * 2 + 0.5

    def auto_correlation(noise: torch.Tensor) -> float:  # L_pair at every offset, not the random ones drawn
        shifts = [(shift, dim) for shift in range(1, 9) for dim in (2, 3)]
        return sum(float((noise * noise.roll(s, dims=d)).mean(dim=(2, 3)).pow(2).sum()) for s, d in shifts)

    def neighbour_correlation(noise: torch.Tensor) -> float:
        centred = noise - noise.mean(dim=(2, 3), keepdim=True)
        return float((centred[..., 1:, :] * centred[..., :-1, :]).mean() / centred.pow(2).mean())

    once = regularize_noise(smooth, generator=torch.Generator().manual_seed(0))
    twice = regularize_noise(once, generator=torch.Generator().manual_seed(1))  # as inversion applies it per step
    assert auto_correlation(once) < 0.1 * auto_correlation(smooth)
    assert kl_divergence(once) < 0.5 * kl_divergence(smooth)
    assert neighbour_correlation(smooth) > neighbour_correlation(once) > neighbour_correlation(twice)
    kept = regularize_noise(white, generator=torch.Generator().manual_seed(0))
    assert (kept - white).abs().mean() < 0.1 * white.abs().mean()
    drifted = regularize_noise(white + 0.3, mean=0.3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(drifted - 0.3, kept, atol=1e-5, rtol=0)  # centred on δ, as the model predicts ε + δ


def test_a_masked_pix2pix_zero_edit_leaves_the_outside_bit_for_bit(components) -> None:
    images, mask = _images(), torch.zeros(2, 1, 32, 32)
    mask[:, :, 4:20, 8:28] = 1
    settings = {"engine": "pix2pix-zero", "mask": mask, "num_inference_steps": 3}
    edited = counterfactual(components, images, SOURCE, TARGET, **settings)
    outside = mask.expand_as(images) == 0
    assert torch.equal(edited[outside], images[outside]) and (edited - images)[~outside].abs().mean() > 1e-2


def test_pix2pix_zero_options_are_refused_elsewhere_and_out_of_range(components) -> None:
    images = _images()
    with pytest.raises(ValueError, match="cross_attention_guidance: pix2pix-zero options"):
        counterfactual(components, images, SOURCE, TARGET, cross_attention_guidance=0.1)
    with pytest.raises(ValueError, match="direction_prompts, noise_regularization: pix2pix-zero options"):
        counterfactual(components, images, SOURCE, TARGET, engine="sdedit", direction_prompts=NULL_DIRECTION,
                       noise_regularization=False)  # fmt: skip
    with pytest.raises(ValueError, match="give λ_xa ≥ 0"):
        counterfactual(components, images, SOURCE, TARGET, engine="pix2pix-zero", cross_attention_guidance=-1)
    with pytest.raises(ValueError, match=r"\[1, 1\] sentence sets for 2 images"):
        counterfactual(components, images, SOURCE, TARGET, engine="pix2pix-zero", direction_prompts=([[""]], [[""]]))
    with pytest.raises(ValueError, match="empty sentence set"):
        edit_direction(components, [[]], [["normal chest x-ray"]])


@pytest.mark.slow  # end to end through subprocesses, ~15-25 s: runs in CI's slow pass
def test_the_command_line_runs_pix2pix_zero_for_counterfactuals_and_attribution(tmp_path: Path) -> None:
    model = save_components(tiny_components(in_channels=1), tmp_path / "model")
    image = tmp_path / "x.png"
    write_png(image, np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32), bit_depth=16)
    args = ["--model", model, "--image", image, "--row", "age=70", "--steps", 2, "--engine", "pix2pix-zero"]
    result = medcf("counterfactual", *args, "--set", "pleural_effusion=absent", "--cross-attention-guidance", 0.5,
                   "--out", tmp_path / "cf")  # fmt: skip
    assert result.returncode == 0, result.stderr
    settings = json.loads((tmp_path / "cf" / "settings.json").read_text())
    assert settings["engine"] == "pix2pix-zero" and settings["cross-attention guidance"] == 0.5
    sentences = settings["direction prompts"]
    assert len(sentences["source"]) == len(sentences["target"]) == 16 and len(set(sentences["source"])) > 4
    assert all("70" in sentence for sentence in sentences["source"] + sentences["target"])

    result = medcf("attribute", *args, "--row", "nodule=1", "--seeds", 1, "--out", tmp_path / "va")
    assert result.returncode == 0, result.stderr
    settings = json.loads((tmp_path / "va" / "settings.json").read_text())
    assert settings["cross-attention guidance"] == 0.1 and np.load(tmp_path / "va" / "map.npy").shape == (32, 32)
