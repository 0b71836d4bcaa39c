"""The model and the yardsticks of benchmarks/gpu.py: an SD-1.5-shaped model with random weights, the device's
measured matmul peak, FLOP counts, and clocks and memory read the way GPU work must be read."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPTextConfig, CLIPTextModel

from medcf.models import Components
from medcf.models.components import MAX_PROMPT_TOKENS, training_scheduler
from medcf.models.scratch import minilm_tokenizer


@dataclass(frozen=True)
class Plan:
    """What one run of benchmarks/gpu.py measures, and how often."""

    shape: str  # a key of SHAPES
    size: int  # image side in pixels
    batches: tuple[int, ...]  # images per batch; the first is also the attribution's number of cases
    subjects: int  # semi-synthetic CXRs written for training
    repeats: int  # timed rounds, after one untimed round
    training_steps: int  # optimizer steps per timed block
    inference_steps: int  # DDIM steps of sampling and attribution
    matmul: int  # side of the square matmul that measures the peak
    compile: bool  # try torch.compile(unet) (minutes of compilation)


FULL = Plan("sd15", 512, (8, 32), 40, repeats=2, training_steps=3, inference_steps=25, matmul=8192, compile=True)
QUICK = Plan("tiny", 32, (1, 2), 16, repeats=1, training_steps=2, inference_steps=2, matmul=512, compile=False)

# Stable Diffusion v1.5's unet/config.json, vae/config.json and text_encoder/config.json (CLIP ViT-L/14's text
# tower), written out because nothing can be downloaded; QUICK is the same classes at tiny_components' size.
SHAPES = {
    "sd15": {
        "unet": {"block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "cross_attention_dim": 768,
                 "attention_head_dim": 8, "norm_num_groups": 32, "sample_size": 64,
                 "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3},
        "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32,
                "sample_size": 512},
        "text": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
    },
    "tiny": {
        "unet": {"block_out_channels": (16, 32), "layers_per_block": 1, "cross_attention_dim": 32,
                 "attention_head_dim": 4, "norm_num_groups": 8, "sample_size": 16,
                 "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
                 "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D")},
        "vae": {"block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 32},
        "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
    },
}  # fmt: skip


def random_components(shape: str, *, seed: int = 0) -> Components:
    """SD's five parts at `shape` ("sd15" or "tiny") with seeded random weights, on the CPU, in fp32."""
    sizes, tokenizer = SHAPES[shape], minilm_tokenizer()  # the tokenizer of medcf's tiny models
    blocks = len(sizes["vae"]["block_out_channels"])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(in_channels=4, out_channels=4, **sizes["unet"])
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, scaling_factor=0.18215,
            down_block_types=("DownEncoderBlock2D",) * blocks, up_block_types=("UpDecoderBlock2D",) * blocks,
            **sizes["vae"],
        )  # fmt: skip
        special = {"bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id}  # [CLS], [SEP]
        text_config = CLIPTextConfig(
            vocab_size=tokenizer.vocab_size, max_position_embeddings=MAX_PROMPT_TOKENS,
            pad_token_id=tokenizer.pad_token_id, **special, **sizes["text"],
        )  # fmt: skip
        text_encoder = CLIPTextModel(text_config)
    return Components(vae.eval(), unet.eval(), text_encoder.eval(), tokenizer, training_scheduler())


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: CUDA kernels run asynchronously, so a clock read before this lies."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(call: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Wall seconds of `call()`, queued device work included, and what it returned."""
    synchronize(device)
    started = time.perf_counter()
    value = call()
    synchronize(device)
    return time.perf_counter() - started, value


def matmul_peak(device: torch.device, dtype: torch.dtype, *, n: int, repeats: int = 10) -> float:
    """The device's measured matmul FLOP/s at `dtype`: 2n³ FLOP per n×n product, median of `repeats` after 3
    untimed warm-ups (the first launches pick kernels and raise the clocks)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        torch.mm(a, b)
    return 2 * n**3 / statistics.median(seconds(lambda: torch.mm(a, b), device)[0] for _ in range(repeats))


def count_flops(call: Callable[[], object]) -> int:
    """FLOP of everything `call()` runs, as torch's FlopCounterMode counts them (matmuls, convolutions,
    attention; elementwise work is not counted, as in the usual model-FLOP-utilisation convention)."""
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def training_flops(unet: UNet2DConditionModel, batch: int, text_tokens: int) -> int:
    """FLOP of one U-Net forward + backward at `batch`, the model work of a training step, counted on a copy on
    torch's meta device: shapes only, so no memory or time whatever the batch (attention counted as its matmuls)."""
    config, side = unet.config, unet.config.sample_size
    with torch.device("meta"):
        model = UNet2DConditionModel.from_config(config)
        latents = torch.randn(batch, config.in_channels, side, side)
        states = torch.randn(batch, text_tokens, config.cross_attention_dim)
        timesteps = torch.zeros(batch, dtype=torch.long)
    return count_flops(lambda: model(latents, timesteps, encoder_hidden_states=states).sample.sum().backward())


COLUMNS = (
    "measure", "reference", "precision", "batch", "medcf s / image", "reference s / image",
    "time ratio medcf / reference", "medcf of peak", "reference of peak", "GFLOP / image", "medcf peak GiB",
    "reference peak GiB", "max abs image difference", "note",
)  # fmt: skip


def table_row(
    measure: str,
    reference: str,
    precision: str,
    batch: int,
    medcf: float | str,
    other: float | str | None,
    *,
    flops: float,
    peak: float,
    note: str = "",
    **cells: object,
) -> dict[str, object]:
    """One row of the wide table: seconds per image (or why not, e.g. "out of memory"), their ratio, and the
    fraction of the device's matmul peak that `flops` per image at that speed is."""
    timed = {name: value for name, value in (("medcf", medcf), ("reference", other)) if isinstance(value, float)}
    row = dict.fromkeys(COLUMNS, "—") | {
        "measure": measure, "reference": reference, "precision": precision, "batch": batch,
        "medcf s / image": medcf, "reference s / image": "—" if other is None else other,
        "GFLOP / image": flops / 1e9, "note": note,
    }  # fmt: skip
    for name, value in timed.items():
        row[f"{name} of peak"] = flops / value / peak
    if len(timed) == 2:
        row["time ratio medcf / reference"] = medcf / other
    unknown = set(cells) - set(COLUMNS)
    assert not unknown, f"not columns of the table: {unknown}"
    return row | cells


def alternate(
    calls: dict[str, Callable[[], object]], device: torch.device, *, repeats: int
) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds of each call over `repeats` rounds in which the calls alternate (machine noise hits all
    alike), after one untimed round (kernel selection, caches, lazy state); and each call's last output."""
    outputs = {name: call() for name, call in calls.items()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            elapsed, outputs[name] = seconds(call, device)
            times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}, outputs


def peak_memory(device: torch.device, baseline: int) -> float | str:
    """GiB allocated at the peak since the last reset, above `baseline` bytes; a string on a CPU."""
    if device.type != "cuda":
        return "n/a on CPU"
    return (torch.cuda.max_memory_allocated(device) - baseline) / 2**30


def allocated(device: torch.device) -> int:
    """Bytes allocated now, after resetting the peak counter (so `peak_memory` measures from here)."""
    if device.type != "cuda":
        return 0
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)
