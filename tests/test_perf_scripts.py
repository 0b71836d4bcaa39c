"""The `benchmarks/` performance scripts in their --quick mode (CI smoke tests: no speed thresholds here, as
timings on shared machines are noise; the images medcf and diffusers make must still agree)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_sampling_overhead_quick_writes_its_table_and_the_images_agree(tmp_path: Path) -> None:
    script = BENCHMARKS / "sampling_overhead.py"
    result = subprocess.run([sys.executable, script, "--quick", "--out", tmp_path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "sampling_overhead-quick.json").read_text())
    assert record["max abs image difference"] < 1e-4  # the same images: only the loop differs
    assert record["seconds medcf"] > 0 and record["seconds diffusers"] > 0
    assert record["environment"]["versions"]["diffusers"]
    assert "| ratio medcf / diffusers |" in (tmp_path / "sampling_overhead-quick.md").read_text()


def test_training_throughput_quick_measures_all_three_loops(tmp_path: Path) -> None:
    script = BENCHMARKS / "training_throughput.py"
    result = subprocess.run([sys.executable, script, "--quick", "--out", tmp_path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "training_throughput-quick.json").read_text())
    rates = [record[f"samples/s {name}"] for name in ("medcf", "reference", "loader alone")]
    assert all(rate > 0 for rate in rates)
    assert record["ratio medcf / reference"] == rates[0] / rates[1]


def test_scaling_quick_counts_flops_that_grow_with_size_and_batch(tmp_path: Path) -> None:
    script = BENCHMARKS / "scaling.py"
    result = subprocess.run([sys.executable, script, "--quick", "--out", tmp_path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "scaling-quick.json").read_text())
    flops = {(row["size"], row["batch"]): row["GFLOP / forward"] for row in record["rows"]}
    assert flops[(32, 2)] == 2 * flops[(32, 1)]  # FLOP are linear in the batch
    assert flops[(64, 1)] > 3 * flops[(32, 1)]  # and grow at least with the latent area (4×, less fixed costs)
    assert record["fp32 matmul GFLOP/s (2048², this run)"] > 0
