"""Device and precision plumbing on a CPU-only machine: what is chosen, what is recorded, what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medcf.generate import generate
from medcf.models import save_components, tiny_components
from medcf.models.device import device_name, resolve_device, run_settings
from medcf.models.precision import inference_precision
from medcf.sampling import generate_to_folder

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for an absent CUDA device")


def test_auto_takes_the_cpu_when_no_accelerator_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert run_settings(torch.device("cpu"), "auto") == {"device": "cpu", "precision": "fp32"}


def test_auto_prefers_cuda_then_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tpu", "device='tpu': unknown; choose auto, cpu, cuda, cuda:N or mps"),
        ("cuda:x", "device='cuda:x': unknown"),
        ("CPU", "device='CPU': unknown"),
    ],
)
def test_unknown_devices_are_refused_by_name(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        resolve_device(name)


@NO_CUDA
def test_an_absent_gpu_is_a_one_line_error_not_a_silent_cpu_run() -> None:
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"device={name}: torch .* sees no CUDA GPU; use --device cpu"):
            resolve_device(name)
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="device=mps: this torch build sees no Apple GPU"):
            resolve_device("mps")


def test_cuda_index_beyond_the_visible_devices_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"device=cuda:2: only 2 CUDA device\(s\) visible \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2")


def test_device_name_is_plain_for_the_cpu() -> None:
    assert device_name(torch.device("cpu")) == "cpu"


def test_noise_comes_from_the_generator_wherever_the_model_runs() -> None:
    components = tiny_components()
    prompts = ["a chest x-ray", "a normal chest x-ray"]
    options = {"num_inference_steps": 2, "guidance_scale": 2.0}
    drawn = generate(components, prompts, generator=torch.Generator().manual_seed(3), **options)
    shape = (2, components.unet.config.out_channels, 16, 16)
    given = generate(components, prompts, latents=torch.randn(shape, generator=torch.Generator().manual_seed(3)),
                     **options)  # fmt: skip
    assert torch.equal(drawn, given)


def test_bf16_autocast_really_runs_and_stays_close_to_fp32() -> None:
    components = tiny_components()
    noise = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(0))
    images = {}
    for precision in ("fp32", "bf16"):
        with inference_precision(precision, torch.device("cpu")):
            images[precision] = generate(components, ["a chest x-ray"], latents=noise, num_inference_steps=2)
    assert images["bf16"].dtype == torch.float32  # the VAE decodes in fp32 under any autocast
    assert not torch.equal(images["bf16"], images["fp32"])
    assert (images["bf16"] - images["fp32"]).abs().mean() < 0.05


def test_generate_to_folder_records_the_device_and_precision_that_ran(tmp_path: Path) -> None:
    folder = generate_to_folder(tiny_components(), ["a chest x-ray"], tmp_path / "out", num_inference_steps=2,
                                device="cpu", precision="bf16")  # fmt: skip
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["device"] == "cpu" and settings["precision"] == "bf16" and settings["steps"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "tpu"], "device='tpu': unknown; choose auto, cpu, cuda, cuda:N or mps"),
        (["--device", "cpu", "--precision", "fp16"], "precision=fp16: half-precision autocast needs a GPU"),
    ],
)
def test_cli_refuses_an_impossible_device_before_any_work(
    tmp_path: Path, extra: list[str], message: str, medcf_main
) -> None:
    model = save_components(tiny_components(), tmp_path / "model")
    result = medcf_main("generate", "--model", model, "--prompt", "x", "--out", tmp_path / "o", *extra, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@NO_CUDA
def test_cli_says_there_is_no_gpu_when_asked_for_cuda(tmp_path: Path, medcf_main) -> None:
    result = medcf_main("attribute", "--model", ".", "--image", ".", "--out", "o", "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 1  # the model check comes first; then the device
    model = save_components(tiny_components(), tmp_path / "model")
    args = ["effect", "--model", model, "--attribute", "smoking", "--device", "cuda:0", "--out", tmp_path / "e"]
    result = medcf_main(*args, cwd=tmp_path)
    assert result.returncode == 1 and "device=cuda:0: torch" in result.stderr and "sees no CUDA GPU" in result.stderr
    assert not (tmp_path / "e").exists()


def test_every_model_command_takes_device_and_precision() -> None:
    import inspect

    from medcf.cli import app

    commands = {command.name or command.callback.__name__.replace("_", "-"): command.callback
                for command in app.registered_commands}  # fmt: skip
    for name in ("generate", "counterfactual", "attribute", "inpaint", "effect", "evaluate", "benchmark",
                 "drift-search", "train-classifier", "demo", "app"):  # fmt: skip
        assert {"device", "precision"} <= set(inspect.signature(commands[name]).parameters), name

