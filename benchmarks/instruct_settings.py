"""The paired (instruct) engine's strength and text guidance, chosen on validation patients.

Each finding's first N subjects of cohort seed 1 (unseen indices; the engines benchmark scores seed 0, so nothing
here is tuned on its cases) get the instruct engine's per-finding residual map (`medcf attribute --engine instruct
--finding F`: the counterpart without the scored finding only, from the engine's own DDIM inversion of the source to
t₀ = strength·T, minus its answer to "keep the image as it is" from the same start), scored against the true effect
mask by pixel AUROC / NCC / Dice after Otsu, for every strength × text guidance s_T of the grid (image guidance
s_I 1.5, 25 DDIM steps, δ = 0).

    python benchmarks/instruct_settings.py --instruct runs/ip2p/model   # the InstructPix2Pix model to tune
    python benchmarks/instruct_settings.py --quick                      # a tiny untrained model: the CI smoke test
"""

from __future__ import annotations

import argparse
from itertools import product
from pathlib import Path

import torch
from counterfactual_engines import OPTIONS, engine_inputs
from results_table import write_results

from medcf.attribution.difference import counterpart_attribution
from medcf.attribution.scoring import FindingCases, finding_cases, score_maps
from medcf.evaluation.attribution import binary_findings
from medcf.models import load_components, tiny_components
from medcf.pretrained import pretrained_path
from medcf.prompts import PromptTemplate

STRENGTHS = (0.3, 0.45, 0.6)
GUIDANCE_SCALES = (3.0, 6.0, 9.0)
VALIDATION_SEED = 1


def validation_cases(n: int, size: int) -> dict[str, FindingCases]:
    """The first `n` subjects with each finding of cohort VALIDATION_SEED, by finding."""
    findings = binary_findings("cxr")
    return {finding: finding_cases(finding, n=n, size=size, seed=VALIDATION_SEED) for finding in findings}


def per_finding_maps(
    components,  # noqa: ANN001
    template: PromptTemplate,
    found: FindingCases,
    *,
    strength: float,
    guidance: float,
    steps: int,
) -> torch.Tensor:
    """The instruct engine's per-finding residual maps of the cases (`medcf attribute --engine instruct --finding`)."""
    inputs = engine_inputs("instruct", template, found.rows, null=False, finding=found.finding)
    return counterpart_attribution(
        components, found.images, **inputs, seeds=(0,), engine="instruct", strength=strength,
        num_inference_steps=steps, guidance_scale=guidance, residual=True, precision=OPTIONS["precision"],
    ).maps  # fmt: skip


def measure(
    components,  # noqa: ANN001
    template: PromptTemplate,
    cases: dict[str, FindingCases],
    *,
    steps: int,
    grid: tuple[tuple[float, float], ...] = (),
) -> list[dict]:
    """Scores per finding and (strength, s_T) of `grid` (default: every pair of STRENGTHS × GUIDANCE_SCALES)."""
    rows = []
    for finding, found in cases.items():
        for strength, guidance in grid or product(STRENGTHS, GUIDANCE_SCALES):
            maps = per_finding_maps(components, template, found, strength=strength, guidance=guidance, steps=steps)
            scores = score_maps(maps, found.masks)
            rows.append({"finding": finding, "strength": strength, "s_T": guidance,
                         **{key: round(scores[key], 3) for key in ("auroc", "ncc", "dice")}})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruct", type=Path, help="an InstructPix2Pix model folder (medcf train output)")
    parser.add_argument("--cases", type=int, default=16, help="validation subjects per finding")
    parser.add_argument("--quick", action="store_true", help="tiny untrained model, 1 case: the CI smoke test")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if not args.quick and args.instruct is None:
        parser.error("--instruct MODEL is required (or --quick)")
    torch.manual_seed(0)
    if args.quick:
        components, cases, size, steps = tiny_components(source_image=True), 1, 32, 2
    else:
        components, cases, size, steps = load_components(args.instruct), args.cases, 64, OPTIONS["num_inference_steps"]
    template = PromptTemplate.from_pretrained(pretrained_path())
    rows = measure(components, template, validation_cases(cases, size), steps=steps)
    name = "instruct_settings" + ("-quick" if args.quick else "")
    result = {"instruct model": str(args.instruct or "tiny, untrained"), "cases per finding": cases,
              "cohort seed": VALIDATION_SEED, "image size": size, "num_inference_steps": steps}  # fmt: skip
    method = __doc__.split("\n\n")[1].replace("\n", " ")
    title = "The instruct engine's strength and guidance on validation patients"
    print(write_results(result, args.out, name, title, method, rows).read_text())


if __name__ == "__main__":
    main()
