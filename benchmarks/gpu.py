"""GPU: medcf against the diffusers way at Stable Diffusion 1.5's size, in time, fraction of peak and memory.

An SD-1.5-shaped model (U-Net 859.5 M parameters, SD's VAE, a CLIP ViT-L/14-shaped text encoder over MiniLM's
tokenizer) with seeded random weights, built from configs as nothing is downloaded; speed does not depend on
the weights. Training: medcf's optimizer step (training/loop.py; a run from setup_run on semi-synthetic CXRs,
bf16 mixed precision on a GPU, EMA, clipping, the frozen encoders' cache on) against a loop written like
diffusers' train_text_to_image.py (VAE and text encoder cast to bf16, U-Net fp32 under bf16 autocast, MSE,
clipping, AdamW, EMA), at equal batch, with and without gradient checkpointing; batches drawn before timing.
Sampling, DDIM, guidance 3, same initial noise: medcf's generate (fp32 weights under bf16 or fp16 autocast, the
VAE in fp32 by design) against StableDiffusionPipeline built from the same modules and cast as its users cast
it, pipe.to(dtype) (U-Net, text encoder and VAE in bf16 or fp16); at the largest batch, medcf with a
channels-last U-Net and with torch.compile(unet) (mode default; the first call, which compiles, timed apart)
against plain medcf. Healthy-counterpart attribution: counterpart_attribution's defaults (inversion, strength
0.6). On CPUs everything runs in fp32. Fraction of peak: FLOP per image (FlopCounterMode: a U-Net forward +
backward for training, checkpointing's recomputation not counted; medcf's whole call for sampling and
attribution) per second per image over the device's matmul rate measured in the same run (bf16 on a GPU; median
of 10 after warm-up). Runs alternate (medcf, reference, ...) after an untimed round; medians; CUDA synchronised
before each clock read. Peak memory: torch.cuda.max_memory_allocated above what was allocated before a training
loop was built (so its weights, gradients, AdamW and EMA state count) or before attribution was called (the
model does not).

    python benchmarks/gpu.py              # CUDA: batch 8 and 32, 512 px, 25 steps; ~5 min, then torch.compile
    python benchmarks/gpu.py --quick      # the same code paths on the CPU: tiny model, 32 px, 2 steps, fp32

The full run writes its table before torch.compile's rows, and again after them: compiling the SD-1.5 U-Net
took over 3 minutes on an H200 machine here (16 CPU cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from gpu_models import FULL, QUICK, Plan, matmul_peak, parameter_count, random_components, training_flops
from gpu_sampling import attribution_row, option_rows, sampling_flops, sampling_rows
from gpu_training import training_rows
from results_table import write_results

from medcf.attribution.scoring import finding_cases
from medcf.data.synthetic import synthesize
from medcf.models import Components, save_components
from medcf.models.device import device_name

CACHE_MB = 2048  # medcf's default encoding cache: holds every posterior and prompt embedding of this data


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 32 px, 2 steps, CPU, fp32: a smoke test")
    parser.add_argument("--device", default=None, help="cuda (default), cuda:N; with --quick: cpu (default) or cuda")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.device = torch.device(args.device or ("cpu" if args.quick else "cuda"))
    if args.device.type == "cuda" and args.device.index is None and torch.cuda.is_available():
        args.device = torch.device("cuda", torch.cuda.current_device())
    if args.device.type != "cuda" and not args.quick:
        parser.exit(2, f"gpu.py: the full run measures a CUDA GPU, not --device {args.device}; --quick runs on CPUs\n")
    if args.device.type == "cuda" and not torch.cuda.is_available():
        parser.exit(2, f"gpu.py: --device {args.device}: torch {torch.__version__} sees no CUDA GPU; use --quick\n")
    if args.device.type == "cuda":
        torch.cuda.set_device(args.device)  # accelerate, inside setup_run, trains on the current CUDA device
    return args


def measure(plan: Plan, device: torch.device, work: Path) -> Iterator[tuple[dict, list[dict]]]:
    """The summary and the rows so far, after the inference and training rows and again after torch.compile's
    (minutes of compilation, and it needs a C compiler: the other rows are written first)."""
    cuda = device.type == "cuda"
    precisions = ("bf16", "fp16") if cuda else ("fp32",)  # half-precision autocast is GPU-only
    peak = matmul_peak(device, torch.bfloat16 if cuda else torch.float32, n=plan.matmul)
    components = random_components(plan.shape)
    folder = save_components(components, work / "model")
    data = synthesize("cxr", work / "data", n=plan.subjects, size=plan.size, counterfactuals=False, progress=False)
    cases = finding_cases("consolidation", n=plan.batches[0], size=plan.size, seed=0)
    tokens = components.tokenizer.model_max_length  # prompts are padded to it, as in SD
    training = {batch: training_flops(components.unet, batch, tokens) / batch for batch in plan.batches}
    overrides = [
        f"data.root={data}", f"data.resolution={plan.size}", f"model.pretrained={folder}",
        f"train.mixed_precision={'bf16' if cuda else 'no'}", f"train.encoding_cache_mb={CACHE_MB}",
        "train.sample_every=0", "train.checkpoint_every=0",
    ]  # fmt: skip
    peak_name = f"{'bf16' if cuda else 'fp32'} matmul TFLOP/s (measured, {plan.matmul}³)"
    result = {
        "device": device_name(device), peak_name: peak / 1e12, "resolution": plan.size,
        "U-Net parameters (M)": parameter_count(components.unet) / 1e6,
        "timed repeats": plan.repeats, "training steps per timed block": plan.training_steps,
        "training overrides": " ".join(overrides[1:]),
    }  # fmt: skip
    place(components, device)
    flops, rows = sampling_flops(components, precisions[0], plan), []
    for precision in precisions:
        rows += report(sampling_rows(components, precision, flops, plan, peak))
    largest = {plan.batches[-1]: flops[plan.batches[-1]]}  # the speed options at the throughput batch only
    rows += report(option_rows(components, "channels-last", precisions[0], largest, plan, peak))
    rows += report([attribution_row(components, cases, precisions[0], plan, peak)])
    place(components, torch.device("cpu"))  # out of training's way: it loads its own copies from `folder`
    rows += report(training_rows(overrides, work, device, training, plan, peak))
    yield result, rows
    if plan.compile:
        place(components, device)
        rows += report(option_rows(components, "torch.compile", precisions[0], largest, plan, peak))
        yield result, rows


def place(components: Components, device: torch.device) -> None:
    for module in (components.vae, components.unet, components.text_encoder):
        module.to(device)
    if device.type == "cpu" and torch.cuda.is_available():
        torch.cuda.empty_cache()


def report(rows: list[dict]) -> list[dict]:
    """`rows`, printed as they finish (the full run takes minutes)."""
    for row in rows:
        cells = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if v != "—")
        print(cells, flush=True)
    return rows


def main() -> None:
    args = arguments()
    name = "gpu" + ("-quick" if args.quick else "")
    title = "GPU: medcf vs diffusers at Stable Diffusion 1.5's size (random weights)"
    method = __doc__.split("\n\n")[1].replace("\n", " ")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        for result, rows in measure(QUICK if args.quick else FULL, args.device, Path(work)):
            result["seconds, whole run"] = time.perf_counter() - started
            path = write_results(result, args.out, name, title, method, rows)
    print(path.read_text())


if __name__ == "__main__":
    main()
