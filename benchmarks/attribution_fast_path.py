"""Counterfactual + attribution map: the straightforward way against medcf's fast path, at equal quality.

Straightforward: one image at a time, 50 DDIM steps (inversion, then the healthy re-generation), and
classifier-free guidance as two separate U-Net passes (conditional and unconditional), as a loop written
from the papers would. Fast path: the cases of a finding in one batch, both guidance halves in one U-Net
batch, and `--steps` (default 25) DDIM steps; and the fast path again under bf16 autocast (where the device
has native bf16 it runs the convolutions and matmuls at half width). All make healthy-counterpart maps for the same
semi-synthetic cases, scored against the true effect masks (pixel AUROC, NCC, Dice after Otsu); the fast
path must be ≥ 3× faster with AUROC within 0.01.

    python benchmarks/attribution_fast_path.py            # the shipped model, 8 cases per finding
    python benchmarks/attribution_fast_path.py --quick    # a tiny model, 1 case per finding: the CI smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
from results_table import write_results

from medcf.attribution.difference import counterpart_attribution
from medcf.attribution.scoring import finding_cases, score_maps
from medcf.editing import healthy_prompts
from medcf.editing.files import model_resolution
from medcf.evaluation.attribution import binary_findings
from medcf.models import Components, load_components, tiny_components
from medcf.pretrained import pretrained_path
from medcf.prompts import PromptTemplate

METHODS = ("straightforward", "fast path", "fast path, bf16 autocast")


class TwoPassUNet(torch.nn.Module):
    """The U-Net evaluated on each half of its batch separately: guidance as two passes, same numbers."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet
        self.config, self.device, self.dtype = unet.config, unet.device, unet.dtype

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, **kwargs):
        halves = [
            self.unet(part, timestep, encoder_hidden_states=states, **kwargs).sample
            for part, states in zip(sample.chunk(2), encoder_hidden_states.chunk(2), strict=True)
        ]
        return UNet2DConditionOutput(sample=torch.cat(halves))


def attribute(
    components: Components, template: PromptTemplate, images, rows, steps: int, *, bf16: bool = False
) -> torch.Tensor:
    source, healthy = healthy_prompts(template, rows)
    options = {"engine": "inversion", "strength": 0.6, "num_inference_steps": steps, "guidance_scale": 3.0}
    precision = "bf16" if bf16 else "fp32"  # explicit: medcf's default "auto" would pick bf16 on such a device
    with torch.no_grad():
        return counterpart_attribution(components, images, source, healthy, precision=precision, **options).maps


def measure(components: Components, template: PromptTemplate, *, cases: int, steps: int) -> dict[str, object]:
    two_pass = dataclasses.replace(components, unet=TwoPassUNet(components.unet))
    size, seconds, scores = model_resolution(components), dict.fromkeys(METHODS, 0.0), {}
    for finding in binary_findings("cxr"):
        found = finding_cases(finding, n=cases, size=size, seed=0)
        started = time.perf_counter()
        slow = torch.cat([
            attribute(two_pass, template, found.images[i : i + 1], found.rows[i : i + 1], 50) for i in range(cases)
        ])  # fmt: skip
        seconds["straightforward"] += time.perf_counter() - started
        maps = {"straightforward": slow}
        for method, bf16 in (("fast path", False), ("fast path, bf16 autocast", True)):
            started = time.perf_counter()
            maps[method] = attribute(components, template, found.images, found.rows, steps, bf16=bf16)
            seconds[method] += time.perf_counter() - started
        scores[finding] = {method: score_maps(maps[method], found.masks) for method in METHODS}
    result = {"cases per finding": cases, "fast path steps": steps, **{f"seconds {k}": v for k, v in seconds.items()}}
    for method in METHODS[1:]:
        result[f"speed-up {method}"] = seconds["straightforward"] / seconds[method]
    rows = [
        {"finding": finding, "method": name, **values} for finding, by in scores.items() for name, values in by.items()
    ]
    for method in METHODS:
        result[f"mean AUROC {method}"] = sum(s[method]["auroc"] for s in scores.values()) / len(scores)
    return result | {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 1 case per finding: a smoke test")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps of the fast path")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        components, template, cases = tiny_components(sample_size=16), PromptTemplate("chest X-ray"), 1
    else:
        folder = pretrained_path()
        components, template, cases = load_components(folder), PromptTemplate.from_pretrained(folder), 8
    result = measure(components, template, cases=cases, steps=args.steps)
    rows = result.pop("rows")
    name = "attribution_fast_path" + ("-quick" if args.quick else "")
    title = "Counterfactual + attribution: straightforward vs medcf's fast path"
    print(write_results(result, args.out, name, title, __doc__.split("\n\n")[1].replace("\n", " "), rows).read_text())


if __name__ == "__main__":
    main()
