"""`medcf.training.train` end to end on tiny components: the loss falls, the run folder is complete, the
saved model loads in vanilla diffusers, a resumed run equals an uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from medcf.config import Config, config_dict, load_config
from medcf.models import load_components
from medcf.prompts import PromptTemplate
from medcf.training import train
from medcf.training.data import HOLDOUT
from medcf.training.options import check_run_folder
from medcf.training.run import training_datasets
from medcf.training.setup import build_components
from medcf.training.validation import held_out_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(root: Path, *overrides: str) -> Config:
    base = [
        f"data.root={root}",
        "data.resolution=32",
        "data.holdout_fraction=0.25",
        "model.tiny=true",
        "train.batch_size=4",
        "train.learning_rate=1e-3",
        "train.checkpoint_every=3",
        "train.sample_every=0",
        "sample.num_images=4",
        "sample.num_inference_steps=3",
    ]
    return load_config(None, [*base, *overrides])


def unet_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "model" / "unet" / "diffusion_pytorch_model.safetensors")


def test_training_lowers_the_loss_and_writes_a_complete_run(tmp_path: Path, cxr_synth_root: Path) -> None:
    config = tiny_config(
        cxr_synth_root,
        "train.max_steps=40",
        "train.checkpoint_every=20",
        "train.ema_decay=0",
        "train.learning_rate=3e-3",
    )
    model_dir = train(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    losses = [float(line.split(",")[1]) for line in (run / "loss.csv").read_text().splitlines()[1:]]
    assert len(losses) == 40
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])  # the tiny model learns the latent statistics
    for name in ("config.yaml", "manifest.json", "loss.png", "index.html", "report.md", "model/README.md"):
        assert (run / name).is_file(), name
    assert PromptTemplate.from_pretrained(model_dir).style == config.data.prompt_style  # editing renders as trained
    assert [path.name for path in (run / "samples").iterdir()] == ["step-0000040.png"]
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["step-0000020", "step-0000040"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 0 and len(manifest["data_fingerprint"]) == 64
    assert manifest["sessions"][0]["end_step"] == 40 and manifest["num_processes"] == 1
    assert load_config(run / "config.yaml") == config
    # The held-out loss (unseen patients, fixed noise) is repeatable and below the untrained model's.
    holdout = training_datasets(config)[HOLDOUT]
    untrained = build_components(**dataclasses.asdict(config.model), resolution=32)
    trained = load_components(model_dir)
    assert held_out_loss(trained, holdout) == pytest.approx(manifest["held_out_loss"], abs=1e-5)
    assert manifest["held_out_loss"] < 0.8 * held_out_loss(untrained, holdout)

    pipeline = StableDiffusionPipeline.from_pretrained(
        model_dir, safety_checker=None, requires_safety_checker=False, local_files_only=True
    )
    image = pipeline("chest X-ray", num_inference_steps=2, output_type="np", height=32, width=32).images
    assert image.shape == (1, 32, 32, 1) and torch.isfinite(torch.from_numpy(image)).all()


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path, cxr_synth_root: Path) -> None:
    options = ("train.ema_decay=0.9", "train.snr_gamma=5.0", "train.latent_drift=0.05")
    train(tiny_config(cxr_synth_root, "train.max_steps=6", *options), tmp_path / "straight", progress=False)
    train(tiny_config(cxr_synth_root, "train.max_steps=3", *options), tmp_path / "resumed", progress=False)
    train(tiny_config(cxr_synth_root, "train.max_steps=6", *options), tmp_path / "resumed", progress=False)
    straight, resumed = (tmp_path / "straight", tmp_path / "resumed")
    assert (straight / "loss.csv").read_text() == (resumed / "loss.csv").read_text()
    for name, weight in unet_weights(straight).items():
        torch.testing.assert_close(unet_weights(resumed)[name], weight, rtol=0, atol=1e-6)
    sessions = json.loads((resumed / "manifest.json").read_text())["sessions"]
    assert [(s["start_step"], s["resumed_from"]) for s in sessions] == [(0, None), (3, "step-0000003")]


def test_a_run_folder_refuses_another_config(tmp_path: Path, cxr_synth_root: Path) -> None:
    train(tiny_config(cxr_synth_root, "train.max_steps=1"), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="holds a run with another config"):
        train(
            tiny_config(cxr_synth_root, "train.max_steps=1", "train.learning_rate=0.5"),
            tmp_path / "run",
            progress=False,
        )


def test_no_progress_silences_every_bar_before_the_first_step(
    tmp_path: Path, cxr_synth_root: Path, capfd: pytest.CaptureFixture
) -> None:
    config = tiny_config(cxr_synth_root, "train.max_steps=1", "data.bad_files=error")
    train(config, tmp_path / "shown", progress=True)
    shown = capfd.readouterr().err
    assert "medcf check files" in shown and "caching image latents" in shown and "medcf train" in shown
    train(config, tmp_path / "quiet", progress=False)
    assert "medcf" not in capfd.readouterr().err  # --no-progress: the file check and the cache stay quiet too


def test_a_run_saved_before_a_config_field_existed_is_still_its_own_run(tmp_path: Path, cxr_synth_root: Path) -> None:
    config = tiny_config(cxr_synth_root, "train.max_steps=1")
    (tmp_path / "run").mkdir()
    saved = config_dict(config)
    del saved["train"]["zero_terminal_snr"]  # a config.yaml written by an older medcf, the field at its default
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved))
    check_run_folder(config, tmp_path / "run")
    with pytest.raises(ValueError, match="holds a run with another config"):
        check_run_folder(tiny_config(cxr_synth_root, "train.max_steps=1", "train.seed=1"), tmp_path / "run")


def test_mask_conditioned_model_trains_on_the_masks(tmp_path: Path, cxr_synth_root: Path) -> None:
    config = tiny_config(cxr_synth_root, "train.max_steps=2", "model.mask_conditioning=true")
    components = load_components(train(config, tmp_path / "run", progress=False))
    assert components.unet.config.in_channels == components.unet.config.out_channels + 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.method=dreambooth"], "needs train.class_prompt"),
        (["train.method=textual-inversion", "train.instance_prompt={prompt}"], "lacks the placeholder"),
        (["train.mixed_precision=fp16"], "needs a GPU"),
        (["train.prediction_type=sample"], "prediction_type='sample'"),
    ],
)
def test_bad_training_options_fail_before_training(tmp_path: Path, cxr_synth_root: Path, overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        train(tiny_config(cxr_synth_root, "train.max_steps=1", *overrides), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model").exists()


@pytest.mark.parametrize(
    ("method", "options", "extra_file"),
    [
        ("lora", ["train.learning_rate=1e-2"], "adapter/pytorch_lora_weights.safetensors"),
        ("textual-inversion", ["train.instance_prompt=<medcf> chest X-ray"], "adapter/learned_embeds.safetensors"),
        ("dreambooth", ["train.class_prompt=chest X-ray", "train.num_class_images=4"], "class_images.png"),
    ],
)
def test_each_method_trains_through_the_loop_and_saves_a_vanilla_model(
    tmp_path: Path, cxr_synth_root: Path, method: str, options: list[str], extra_file: str
) -> None:
    config = tiny_config(cxr_synth_root, "train.max_steps=4", "train.ema_decay=0", f"train.method={method}", *options)
    model_dir = train(config, tmp_path / "run", progress=False)
    losses = [float(line.split(",")[1]) for line in (tmp_path / "run" / "loss.csv").read_text().splitlines()[1:]]
    assert len(losses) == 4 and all(loss > 0 for loss in losses)
    assert (tmp_path / "run" / extra_file).is_file(), sorted(p.name for p in (tmp_path / "run").iterdir())
    pipeline = StableDiffusionPipeline.from_pretrained(
        model_dir, safety_checker=None, requires_safety_checker=False, local_files_only=True
    )
    if method == "textual-inversion":  # the learned word is one token of the saved tokenizer
        assert len(pipeline.tokenizer.tokenize("<medcf>")) == 1
    image = pipeline("<medcf> chest X-ray", num_inference_steps=2, output_type="np", height=32, width=32).images
    assert image.shape == (1, 32, 32, 1) and torch.isfinite(torch.from_numpy(image)).all()


def test_train_refuses_a_folder_of_other_files_even_through_a_link(tmp_path: Path, cxr_synth_root: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    (tmp_path / "link").symlink_to(theirs)
    for out in (theirs, tmp_path / "link"):
        with pytest.raises(ValueError, match="a folder of other files, not a medcf run; pass a new --out"):
            train(tiny_config(cxr_synth_root, "train.max_steps=1"), out, progress=False)
    assert [path.name for path in theirs.iterdir()] == ["notes.txt"]
