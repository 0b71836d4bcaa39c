"""Scaling: U-Net time and peak memory against image size and batch, beside the cost model.

For the shipped model's U-Net at each (size, batch): GFLOP of one forward (torch's FlopCounterMode),
seconds per forward (median of timed calls after a warm-up), the achieved GFLOP/s and its fraction of this
machine's fp32 matmul throughput measured in the same run (a 2048² torch.mm), the peak resident memory
that forward adds, and the cost model's time for one 25-step guided sample (25 steps × a forward at twice
the batch). Each configuration runs in its own process so its peak memory is its own.

    python benchmarks/scaling.py            # 64–512 px, batch 1 / 4 / 16 where it fits in minutes
    python benchmarks/scaling.py --quick    # 32 and 64 px, batch 1 and 2: the CI smoke test
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from results_table import write_results
from torch.utils.flop_counter import FlopCounterMode

from medcf.pretrained import pretrained_path

FULL = [(64, 1), (64, 4), (64, 16), (128, 1), (128, 4), (128, 16), (256, 1), (256, 4), (512, 1), (512, 4)]
QUICK = [(32, 1), (32, 2), (64, 1), (64, 2)]
STEPS = 25  # the sampler steps of the cost model, as in `medcf generate`'s default


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 matmul throughput: 2n³ FLOP per n × n product, best of `repeats`."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def one_configuration(size: int, batch: int, repeats: int) -> dict[str, float]:
    """Measured in this process: FLOP, seconds per forward, peak memory added by the forward."""
    torch.manual_seed(0)
    folder = pretrained_path()
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True).eval()
    side = size // (2 ** (len(AutoencoderKL.load_config(folder / "vae")["block_out_channels"]) - 1))
    latents = torch.randn(batch, unet.config.in_channels, side, side)
    embeds = torch.randn(batch, 77, unet.config.cross_attention_dim)
    t = torch.tensor(500)
    before = _resident_kb()  # the model and inputs, before any forward
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            unet(latents, t, encoder_hidden_states=embeds)
        seconds = statistics.median(
            _seconds(lambda: unet(latents, t, encoder_hidden_states=embeds)) for _ in range(repeats)
        )
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"gflop": counter.get_total_flops() / 1e9, "seconds": seconds, "peak_mb": max(after - before, 0) / 1024}


def _resident_kb() -> int:
    """Resident memory now (Linux /proc), in the kB of ru_maxrss, the peak it is compared with."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() // 1024


def measure(configurations: list[tuple[int, int]], repeats: int) -> tuple[list[dict], float]:
    peak = matmul_gflops()
    rows = []
    for size, batch in configurations:
        command = [sys.executable, __file__, "--one", str(size), str(batch), "--repeats", str(repeats)]
        child = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        rate = child["gflop"] / child["seconds"]
        rows.append({
            "size": size, "batch": batch, "GFLOP / forward": child["gflop"], "s / forward": child["seconds"],
            "GFLOP/s": rate, "of matmul peak": rate / peak, "forward peak MB": child["peak_mb"],
        })  # fmt: skip
    for row in rows:  # guidance runs one forward at twice the batch: measured where that configuration ran
        twice = _seconds_at(rows, row["size"], 2 * row["batch"]) or 2 * row["s / forward"]
        row[f"{STEPS}-step guided sample s (model)"] = STEPS * twice
    return rows, peak


def _seconds_at(rows: list[dict], size: int, batch: int) -> float | None:
    """Seconds per forward measured at (size, batch), if that configuration ran already."""
    return next((row["s / forward"] for row in rows if (row["size"], row["batch"]) == (size, batch)), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--one", nargs=2, type=int, metavar=("SIZE", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_configuration(*args.one, args.repeats)))
        return
    rows, peak = measure(QUICK if args.quick else FULL, repeats=2 if args.quick else 3)
    result = {"fp32 matmul GFLOP/s (2048², this run)": peak, "cost model steps": STEPS}
    name, title = (
        "scaling" + ("-quick" if args.quick else ""),
        "Scaling: U-Net time and memory vs image size and batch",
    )
    path = write_results(result, args.out, name, title, __doc__.split("\n\n")[1].replace("\n", " "), rows)
    print(path.read_text())


if __name__ == "__main__":
    main()
