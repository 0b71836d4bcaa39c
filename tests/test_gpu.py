"""Every model command and API entry point on a CUDA GPU, with tiny models (skipped where none is visible).

Run with `pytest -m gpu`. Each CLI run records the device it ran on in its output settings; API results on
the GPU must match the CPU's (fp32: up to cuDNN's TF32 convolutions; bf16/fp16: finite and close).
MEDCF_GPU_TESTS_ON=cpu runs the same file on the CPU, a dry run of the tests themselves before a GPU is at hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from medcf.attribution import counterpart_attribution
from medcf.data import write_png
from medcf.data.synthetic import synthesize
from medcf.editing import counterfactual, inpaint
from medcf.generate import generate
from medcf.models import save_components, tiny_components
from medcf.models.device import device_name
from medcf.models.precision import inference_precision, resolve_precision
from medcf.prompts import PromptTemplate
from medcf.sampling import generate_to_folder
from test_cli import medcf

CUDA = torch.device(os.environ.get("MEDCF_GPU_TESTS_ON", "cuda:0"))
AVAILABLE = CUDA.type == "cpu" or torch.cuda.is_available()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not AVAILABLE, reason="needs a CUDA GPU")]
SIZE = 32


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model run (with its config, so `evaluate` finds its split), a cohort, an image and a mask."""
    root = tmp_path_factory.mktemp("gpu")
    cohort = synthesize("cxr", root / "cxr", n=24, size=SIZE, seed=0, counterfactuals=False, progress=False)
    model = save_components(tiny_components(in_channels=1, sample_size=SIZE), root / "run" / "model")
    PromptTemplate("chest X-ray", style="diverse").save_pretrained(model)
    (root / "run" / "config.yaml").write_text(yaml.safe_dump({"data": {"holdout_fraction": 0.25}}))
    image, mask = root / "x.png", root / "m.png"
    write_png(image, np.linspace(0, 1, SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE), bit_depth=16)
    region = np.zeros((SIZE, SIZE), dtype=np.float32)
    region[8:20, 8:20] = 1
    write_png(mask, region)
    return {"model": model, "cohort": cohort, "image": image, "mask": mask, "root": root}


def _settings(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


COMMANDS = {
    "generate": (["--prompt", "chest X-ray", "--n", "3", "--steps", "2"], "settings.json"),
    "counterfactual": (["--image", "{image}", "--set", "nodule=1", "--steps", "2"], "settings.json"),
    "inpaint": (["--image", "{image}", "--mask", "{mask}", "--prompt", "consolidation", "--steps", "2"],
                "settings.json"),
    "attribute": (["--image", "{image}", "--row", "nodule=1", "--steps", "2"], "settings.json"),
    "effect": (["--attribute", "smoking", "--n", "4", "--steps", "2", "--batch-size", "4"], "effect.json"),
    "drift-search": (["--data", "{cohort}", "--n", "4", "--deltas", "0,0.1", "--steps", "2", "--no-fid"],
                     "drift_search.md"),
    "evaluate": (["--data", "{cohort}", "--n", "4", "--steps", "2", "--attribution-cases", "1"], "metrics.json"),
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_each_model_command_runs_on_cuda_and_says_so(files: dict[str, Path], command: str, precision: str) -> None:
    args, record = COMMANDS[command]
    out = files["root"] / f"{command}-{precision}"
    options = [arg.format(**files) for arg in args]
    result = medcf(command, "--model", files["model"], *options, "--out", out, "--device", CUDA,
                   "--precision", precision)  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = (out / record).read_text()
    assert device_name(CUDA) in text, text[:400]  # e.g. "cuda:0 (NVIDIA H200)": the device really used
    assert resolve_precision(precision, CUDA) in text


def test_train_classifier_runs_on_cuda(files: dict[str, Path]) -> None:
    out = files["root"] / "classifier"
    result = medcf("train-classifier", "--data", files["cohort"], "--resolution", SIZE, "--steps", 5,
                   "--batch-size", 8, "--out", out, "--device", CUDA)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _settings(out, "metrics.json")["device"] == device_name(CUDA)


@pytest.mark.slow  # minutes: trains and scores the whole quick suite
def test_train_then_benchmark_quick_run_on_the_gpu(tmp_path: Path) -> None:
    result = medcf("benchmark", "--quick", "--out", tmp_path / "out", "--work", tmp_path / "work", "--device", CUDA)
    assert result.returncode == 0, result.stderr
    table = json.loads((tmp_path / "out" / "cxr-synth-quick.json").read_text())
    assert table["device"] == device_name(CUDA) and table["runs"]


def test_generate_with_a_cpu_generator_and_no_latents_on_cuda() -> None:
    components = tiny_components()
    prompts, options = ["a chest x-ray"] * 2, {"num_inference_steps": 3}
    cpu = generate(components, prompts, generator=torch.Generator().manual_seed(1), **options)
    gpu = generate(_to(components, CUDA), prompts, generator=torch.Generator().manual_seed(1), **options)
    assert gpu.device == CUDA
    torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-2, rtol=0)  # the same noise; TF32 convolutions differ slightly


def test_generate_to_folder_from_cuda_components(tmp_path: Path) -> None:
    folder = generate_to_folder(_to(tiny_components(), CUDA), ["a chest x-ray"] * 3, tmp_path / "out",
                                num_inference_steps=2, batch_size=2)  # fmt: skip
    assert len(list(folder.glob("[0-9]*.png"))) == 3
    assert _settings(folder, "settings.json")["device"] == device_name(CUDA)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_editing_and_attribution_on_cuda_match_the_cpu(precision: str) -> None:
    if precision == "fp16" and CUDA.type == "cpu":
        pytest.skip("fp16 autocast is GPU-only")
    components = tiny_components(in_channels=1)
    images = torch.linspace(-1, 1, 2 * 32 * 32).reshape(2, 1, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    source, target = ["chest x-ray with a nodule"] * 2, ["normal chest x-ray"] * 2
    options = {"num_inference_steps": 3, "generator": None}

    def run(model) -> dict[str, torch.Tensor]:
        device = model.unet.device
        on_gpu = device == CUDA
        with inference_precision(precision if on_gpu else "fp32", device):
            options["generator"] = torch.Generator().manual_seed(0)
            edited = counterfactual(model, images, source, target, **options)
            options["generator"] = torch.Generator().manual_seed(0)
            filled = inpaint(model, images, mask, target, **options)
        maps = counterpart_attribution(model, images, source, target, num_inference_steps=3, sigma=0.0,
                                       precision=precision if on_gpu else "fp32").maps  # fmt: skip
        return {"counterfactual": edited, "inpaint": filled, "map": maps}

    cpu, gpu = run(components), run(_to(tiny_components(in_channels=1), CUDA))
    for name, value in gpu.items():
        assert value.device.type == "cpu" and value.dtype == torch.float32, name  # back on the caller's device
        assert torch.isfinite(value).all(), name
        tolerance = 2e-2 if precision == "fp32" else 0.15
        assert (value - cpu[name]).abs().mean() < tolerance, (name, float((value - cpu[name]).abs().mean()))
    torch.testing.assert_close(gpu["inpaint"] * (1 - mask), images * (1 - mask))  # outside the mask: the input


def test_the_demo_model_steps_and_the_app_on_cuda(tmp_path: Path) -> None:
    from medcf.app.session import Workspace, demo_patient, run_edit, run_inpaint
    from medcf.demo import MODEL_STEPS
    from medcf.pretrained import PretrainedModel

    # a tiny 64 px model in the shipped one's place (whose stock text encoder is too large to carry to a lent GPU)
    folder = save_components(tiny_components(in_channels=1, sample_size=32), tmp_path / "model")
    PromptTemplate("chest X-ray", style="diverse").save_pretrained(folder)
    loaded = PretrainedModel.load(folder, device=str(CUDA), precision="auto")
    model = dataclasses.replace(loaded, settings={"num_inference_steps": 3})
    assert model.device == CUDA and model.precision == resolve_precision("auto", CUDA)
    for name, step in MODEL_STEPS.items():
        with model.autocast():
            section = step(tmp_path / "demo", model, seed=0)
        assert section.heading, name
    workspace = Workspace(model, tmp_path / "app")
    source = demo_patient(workspace, 0)
    edit = run_edit(workspace, source, "pleural_effusion=absent", strength=0.6, latent_drift=0.0, steps=3)
    assert _settings(edit.folder, "settings.json")["device"] == device_name(CUDA)
    mask = np.zeros((64, 64))
    mask[20:40, 20:40] = 1
    folder, image = run_inpaint(workspace, source, mask, "A chest X-ray with consolidation.", steps=3)
    assert np.isfinite(image).all() and (folder / "inpainted.png").is_file()


def _to(components, device: torch.device):
    for module in (components.vae, components.unet, components.text_encoder):
        module.to(device)
    return components
