"""`medcf.training.train` with model.backend=gan: the generator learns the data, the run folder is complete, a
resumed run equals an uninterrupted one, diffusion-only settings are refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from medcf.config import Config, load_config
from medcf.models.gan_components import gan_generate, load_gan
from medcf.prompts import PromptTemplate
from medcf.training import train
from medcf.training.gan_run import build_gan_components
from medcf.training.setup import build_components

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BRIGHTNESS = 0.8  # display value of every fixture image: 0.6 in the model's [-1, 1]


@pytest.fixture(scope="module")
def bright_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 bright 16 px chest X-rays with lung masks, in the layout `medcf synth cxr` writes (metadata.csv, images/,
    masks/)."""
    root = tmp_path_factory.mktemp("gan-cohort")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for index in range(12):
        name = f"cxr{index:05d}"
        pixels = (BRIGHTNESS + 0.05 * rng.standard_normal((16, 16))).clip(0, 1)
        Image.fromarray((pixels * 65535).astype(np.uint16)).save(root / "images" / f"{name}.png")
        mask = np.zeros((16, 16), np.uint8)
        mask[3:13, 2 + index % 3 : 14] = 255
        Image.fromarray(mask).save(root / "masks" / f"{name}_lungs.png")
        rows.append({"id": name, "patient_id": name, "path": f"images/{name}.png",
                     "mask_path": f"masks/{name}_lungs.png", "age": 40 + index, "sex": "MF"[index % 2],
                     "smoking": ("never", "current")[index % 2], "pleural_effusion": index % 3 == 0})  # fmt: skip
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "pleural_effusion": int(row["pleural_effusion"])} for row in rows)
    return root


def gan_config(root: Path, *overrides: str) -> Config:
    base = [
        f"data.root={root}",
        "data.resolution=16",
        "data.holdout_fraction=0.25",
        "model.backend=gan",
        "model.tiny=true",
        "train.batch_size=4",
        "train.learning_rate=2e-3",
        "train.checkpoint_every=0",
        "train.sample_every=0",
        "train.ema_decay=0",
        "sample.num_images=4",
    ]
    return load_config(None, [*base, *overrides])


def mean_intensity(gan, prompts: list[str], mask: torch.Tensor | None = None) -> float:
    return gan_generate(gan, prompts, mask=mask, generator=torch.Generator().manual_seed(1)).mean().item()


def test_the_generator_learns_the_data_and_the_run_is_complete(tmp_path: Path, bright_cohort: Path) -> None:
    config = gan_config(bright_cohort, "train.max_steps=30")
    prompts = ["chest X-ray"] * 8
    target = 2 * BRIGHTNESS - 1
    before = abs(mean_intensity(build_gan_components(config), prompts) - target)
    model_dir = train(config, tmp_path / "run", progress=False)
    after = abs(mean_intensity(load_gan(model_dir), prompts) - target)
    assert after < 0.5 * before and after < 0.2  # the generator moved its intensity to the data's
    run = tmp_path / "run"
    with open(run / "loss.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 30 and set(rows[0]) == {"step", "generator_loss", "discriminator_loss"}
    assert all(np.isfinite(float(row["generator_loss"])) for row in rows)
    for name in ("config.yaml", "manifest.json", "loss.png", "index.html", "report.md", "model/README.md"):
        assert (run / name).is_file(), name
    assert [path.name for path in (run / "samples").iterdir()] == ["step-0000030.png"]
    assert PromptTemplate.from_pretrained(model_dir).style == config.data.prompt_style
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["backend"] == "gan" and manifest["sessions"][0]["end_step"] == 30
    assert "generator" in (run / "report.md").read_text().lower()


def test_a_resumed_run_reaches_the_weights_of_an_uninterrupted_one(tmp_path: Path, bright_cohort: Path) -> None:
    options = ("train.checkpoint_every=3", "train.ema_decay=0.9")  # EMA state is resumed too
    train(gan_config(bright_cohort, "train.max_steps=6", *options), tmp_path / "whole", progress=False)
    train(gan_config(bright_cohort, "train.max_steps=3", *options), tmp_path / "split", progress=False)
    assert (tmp_path / "split" / "checkpoints" / "step-0000003").is_dir()
    train(gan_config(bright_cohort, "train.max_steps=6", *options), tmp_path / "split", progress=False)
    for part in ("generator", "discriminator"):
        whole, split = (load_file(tmp_path / run / "model" / part / "diffusion_pytorch_model.safetensors")
                        for run in ("whole", "split"))  # fmt: skip
        assert whole.keys() == split.keys()
        assert all(torch.equal(whole[key], split[key]) for key in whole), part
    sessions = json.loads((tmp_path / "split" / "manifest.json").read_text())["sessions"]
    assert sessions[1]["resumed_from"] == "step-0000003" and sessions[1]["start_step"] == 3  # not a fresh start
    losses = [(tmp_path / run / "loss.csv").read_text() for run in ("whole", "split")]
    assert losses[0] == losses[1]


def test_a_mask_conditioned_gan_trains_on_the_cohort_masks(tmp_path: Path, bright_cohort: Path) -> None:
    config = gan_config(bright_cohort, "train.max_steps=2", "model.mask_conditioning=true")
    gan = load_gan(train(config, tmp_path / "run", progress=False))
    assert gan.mask_conditioning
    assert gan_generate(gan, ["chest X-ray"], mask=torch.ones(1, 1, 16, 16)).shape == (1, 1, 16, 16)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model.pretrained={root}",), "model.backend=gan trains from scratch"),
        (("train.method=lora",), "set train.method=full"),
        (("train.gradient_accumulation_steps=2",), "gradient_accumulation_steps must be 1"),
    ],
)
def test_diffusion_only_settings_are_refused(
    tmp_path: Path, bright_cohort: Path, overrides: tuple[str, ...], message: str
) -> None:
    config = gan_config(bright_cohort, *(item.format(root=bright_cohort) for item in overrides))
    with pytest.raises(ValueError, match=message):
        train(config, tmp_path / "run", progress=False)


def test_the_backend_is_checked() -> None:
    with pytest.raises(ValueError, match="model.backend='vae' unknown; use one of diffusion, gan"):
        load_config(None, ["model.backend=vae"])
    with pytest.raises(ValueError, match="GAN models are built by"):
        build_components(backend="gan")
