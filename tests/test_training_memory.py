"""Memory options: gradient checkpointing keeps the loss and gradients, the optimizer and attention kernel are
stated in the manifest, 8-bit AdamW fails early without bitsandbytes, VAE slicing / tiling keep the images."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor

from medcf.config import load_config
from medcf.models import decode_latents, encode_posterior, encode_prompts, scratch_vae, tiny_components
from medcf.models import latents as latents_module
from medcf.models.latents import untiled_side_limit
from medcf.training.loss import diffusion_loss
from medcf.training.memory import (
    attention_implementation,
    enable_gradient_checkpointing,
    make_optimizer,
    optimizer_implementation,
)
from medcf.training.methods import prepare_full
from medcf.training.run import setup_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _loss_and_gradients(components, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Loss of one fixed batch through text encoder and U-Net, and the gradient of every trained weight."""
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(2, 4, 16, 16, generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    torch.manual_seed(seed)  # the text encoder's dropout (train mode) draws the same masks in both runs
    embeddings = encode_prompts(components, ["a chest X-ray", "pleural effusion"])
    timesteps = torch.tensor([10, 700])
    loss = diffusion_loss(components.unet, components.scheduler, latents, embeddings, noise=noise, timesteps=timesteps)
    loss = loss.mean()
    parameters = [p for module in (components.unet, components.text_encoder) for p in module.parameters()]
    trained = [p for p in parameters if p.requires_grad]
    loss.backward()
    return loss.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in trained]  # pooler: None


def test_gradient_checkpointing_keeps_loss_and_gradients() -> None:
    components = tiny_components()
    prepare_full(components, train_text_encoder=True)
    loss, gradients = _loss_and_gradients(components)
    components.unet.zero_grad(set_to_none=True)
    components.text_encoder.zero_grad(set_to_none=True)
    assert enable_gradient_checkpointing(components) == ["unet", "text_encoder"]
    assert components.unet.is_gradient_checkpointing
    assert any(getattr(module, "gradient_checkpointing", False) for module in components.text_encoder.modules())
    checkpointed_loss, checkpointed_gradients = _loss_and_gradients(components)
    assert torch.allclose(loss, checkpointed_loss)
    for plain, checkpointed in zip(gradients, checkpointed_gradients, strict=True):
        assert torch.allclose(plain, checkpointed, atol=1e-6)


def test_frozen_text_encoder_is_not_checkpointed() -> None:
    components = tiny_components()
    prepare_full(components)  # the U-Net alone trains
    assert enable_gradient_checkpointing(components) == ["unet"]
    assert not any(getattr(module, "gradient_checkpointing", False) for module in components.text_encoder.modules())


def test_run_applies_checkpointing_and_states_attention_and_optimizer(tmp_path: Path, cxr_synth_root: Path) -> None:
    overrides = [f"data.root={cxr_synth_root}", "data.resolution=32", "model.tiny=true", "train.batch_size=4"]
    config = load_config(None, [*overrides, "train.gradient_checkpointing=true", "train.encoding_cache_mb=0"])
    run = setup_run(config, tmp_path / "run")
    assert run.components.unet.is_gradient_checkpointing
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    implementation = "fused" if torch.cuda.is_available() else "for-loop"
    assert manifest["memory"] == {
        "attention": "PyTorch SDPA (AttnProcessor2_0)",
        "optimizer": f"torch AdamW ({implementation})",
        "gradient_checkpointing": ["unet"],
    }


def test_8bit_adam_without_bitsandbytes_fails_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # not importable, even where it is installed
    config = load_config(None, ["train.use_8bit_adam=true"])  # data.root is empty: that check comes later
    message = r"train.use_8bit_adam needs bitsandbytes: pip install 'medcf\[gpu\]' \(CUDA only\)"
    with pytest.raises(ValueError, match=message):
        setup_run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_8bit_adam_comes_from_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    class AdamW8bit(torch.optim.Optimizer):  # stands in for bitsandbytes.optim.AdamW8bit (CUDA only)
        __module__ = "bitsandbytes.optim.adamw"

        def __init__(self, params, lr: float, weight_decay: float) -> None:
            super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    fake = types.ModuleType("bitsandbytes")
    fake.optim = types.SimpleNamespace(AdamW8bit=AdamW8bit)
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = make_optimizer([weight], learning_rate=1e-4, weight_decay=1e-2, use_8bit_adam=True)
    assert isinstance(optimizer, AdamW8bit) and optimizer.defaults == {"lr": 1e-4, "weight_decay": 1e-2}
    assert optimizer_implementation(optimizer) == "bitsandbytes AdamW8bit"


@pytest.mark.parametrize(
    ("device", "implementation"),
    [("cpu", "for-loop"), pytest.param("cuda", "fused", marks=[pytest.mark.gpu, CUDA])],
)
def test_adamw_is_fused_on_cuda(device: str, implementation: str) -> None:
    weight = torch.nn.Parameter(torch.zeros(3, device=device))
    optimizer = make_optimizer([weight], learning_rate=1e-3, weight_decay=0.0)
    assert optimizer.defaults["fused"] == (device == "cuda")
    assert optimizer_implementation(optimizer) == f"torch AdamW ({implementation})"


def test_attention_implementation_names_the_processor() -> None:
    unet = tiny_components().unet
    assert attention_implementation(unet) == "PyTorch SDPA (AttnProcessor2_0)"
    unet.set_attn_processor(AttnProcessor())
    assert attention_implementation(unet) == "AttnProcessor"


def test_untiled_side_limit_follows_the_vae_width() -> None:
    stable_diffusion = types.SimpleNamespace(config=types.SimpleNamespace(block_out_channels=[128, 256, 512, 512]))
    assert untiled_side_limit(stable_diffusion) == 1024
    assert untiled_side_limit(scratch_vae(64)) == 2048  # a 2000 px radiograph in one pass


def _count_decoder_passes(vae) -> list[int]:
    calls: list[int] = []
    vae.decoder.register_forward_hook(lambda module, args, output: calls.append(len(output)))
    return calls


def test_sliced_decode_equals_batched_decode() -> None:
    components = tiny_components()
    latents = torch.randn(3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    calls = _count_decoder_passes(components.vae)
    with torch.no_grad():
        batched = decode_latents(components, latents, slicing=False)
        sliced = decode_latents(components, latents, slicing=True)
    assert calls == [3, 1, 1, 1]
    assert torch.allclose(batched, sliced, atol=1e-5)  # the same weights; only the kernels' batching differs
    assert not components.vae.use_slicing  # restored


def test_large_images_are_tiled_and_stay_close(monkeypatch: pytest.MonkeyPatch) -> None:
    components = tiny_components()
    vae = components.vae
    monkeypatch.setattr(latents_module, "MAX_PASS_VALUES", 8 * 64**2)  # tiny VAE (C0 = 8): 64 px tiles
    assert untiled_side_limit(vae) == 64
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 64, 64, generator=generator)  # a 128 px image: 3 × 3 overlapping tiles
    calls = _count_decoder_passes(vae)
    with torch.no_grad():
        whole = decode_latents(components, latents, tiling=False)
        tiled = decode_latents(components, latents)  # automatic: 128 px > 64 px
        assert len(calls) == 1 + 9
        # A smooth image, as radiographs are: tiles see the same statistics as the whole.
        pixels = torch.nn.functional.interpolate(torch.rand(1, 1, 8, 8, generator=generator) * 2 - 1, size=(128, 128))
        posterior_whole = encode_posterior(components, pixels, tiling=False).parameters
        posterior_tiled = encode_posterior(components, pixels).parameters
    assert tiled.shape == whole.shape and posterior_tiled.shape == posterior_whole.shape
    # Random weights: tiles differ from the whole through zero padding at their borders and their own GroupNorm
    # statistics. Measured mean |Δ|: 13% of the decoded image's std, 16% of the posterior's; allowed: 20%.
    assert (tiled - whole).abs().mean() < 0.2 * whole.std()
    assert (posterior_tiled - posterior_whole).abs().mean() < 0.2 * posterior_whole.std()
    assert not vae.use_tiling and vae.tile_sample_min_size == vae.config.sample_size  # restored
