"""The paired (instruct) engine's strength and text guidance, chosen on validation patients.

Each finding's first N subjects of cohort seed 1 (unseen indices; the engines benchmark scores seed 0, so nothing
here is tuned on its cases) get the instruct engine's per-finding residual map (`medcf attribute --engine instruct
--finding F`: the counterpart without the scored finding only, from the engine's own DDIM inversion of the source to
t₀ = strength·T, minus its answer to "keep the image as it is" from the same start), scored against the true effect
mask by pixel AUROC / NCC / Dice after Otsu, for every strength × text guidance s_T × image guidance s_I of the grid
(25 DDIM steps, δ = 0).

    python benchmarks/instruct_settings.py --instruct runs/ip2p/model   # the InstructPix2Pix model to tune
    python benchmarks/instruct_settings.py --instruct M --cases 48 --findings cardiomegaly --strengths 0.6 \
        --text-guidance 1.5 3 --image-guidance 1 1.5 2.5 --name cardiomegaly   # another grid, one finding
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
from medcf.generate import IMAGE_GUIDANCE
from medcf.models import load_components, tiny_components
from medcf.pretrained import pretrained_path
from medcf.prompts import PromptTemplate

STRENGTHS = (0.3, 0.45, 0.6)
GUIDANCE_SCALES = (3.0, 6.0, 9.0)
IMAGE_GUIDANCE_SCALES = (IMAGE_GUIDANCE,)
VALIDATION_SEED = 1


def validation_cases(n: int, size: int, findings: tuple[str, ...] = ()) -> dict[str, FindingCases]:
    """The first `n` subjects with each finding (default: every cxr finding) of cohort VALIDATION_SEED, by finding."""
    findings = findings or binary_findings("cxr")
    return {finding: finding_cases(finding, n=n, size=size, seed=VALIDATION_SEED) for finding in findings}


def per_finding_maps(
    components,  # noqa: ANN001
    template: PromptTemplate,
    found: FindingCases,
    *,
    strength: float,
    guidance: float,
    steps: int,
    image_guidance: float = IMAGE_GUIDANCE,
) -> torch.Tensor:
    """The instruct engine's per-finding residual maps of the cases (`medcf attribute --engine instruct --finding`)."""
    inputs = engine_inputs("instruct", template, found.rows, null=False, finding=found.finding)
    return counterpart_attribution(
        components, found.images, **inputs, seeds=(0,), engine="instruct", strength=strength,
        num_inference_steps=steps, guidance_scale=guidance, image_guidance_scale=image_guidance, residual=True,
        precision=OPTIONS["precision"],
    ).maps  # fmt: skip


def quick_model():  # noqa: ANN201
    """A tiny untrained InstructPix2Pix model whose source-image input channels get random weights (they start at
    zero, which would make image guidance a no-op), so s_I changes its answer as it does a trained model's."""
    components = tiny_components(source_image=True)
    weight = components.unet.conv_in.weight
    latent_channels = weight.shape[1] // 2
    with torch.no_grad():
        weight[:, latent_channels:].normal_(std=weight[:, :latent_channels].std().item())
    return components


def measure(
    components,  # noqa: ANN001
    template: PromptTemplate,
    cases: dict[str, FindingCases],
    *,
    steps: int,
    grid: tuple[tuple[float, ...], ...] = (STRENGTHS, GUIDANCE_SCALES, IMAGE_GUIDANCE_SCALES),
) -> list[dict]:
    """Scores per finding and (strength, s_T, s_I) of the product of `grid`'s three axes."""
    rows = []
    for finding, found in cases.items():
        for strength, guidance, image_guidance in product(*grid):
            maps = per_finding_maps(
                components, template, found, strength=strength, guidance=guidance, steps=steps,
                image_guidance=image_guidance,
            )  # fmt: skip
            scores = score_maps(maps, found.masks)
            rows.append({"finding": finding, "strength": strength, "s_T": guidance, "s_I": image_guidance,
                         **{key: round(scores[key], 3) for key in ("auroc", "ncc", "dice")}})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruct", type=Path, help="an InstructPix2Pix model folder (medcf train output)")
    parser.add_argument("--cases", type=int, default=16, help="validation subjects per finding")
    parser.add_argument("--quick", action="store_true", help="tiny untrained model, 1 case: the CI smoke test")
    parser.add_argument("--findings", nargs="+", choices=binary_findings("cxr"), default=(), help="default: all")
    parser.add_argument("--strengths", nargs="+", type=float, default=STRENGTHS)
    parser.add_argument("--text-guidance", nargs="+", type=float, default=GUIDANCE_SCALES, help="s_T values")
    parser.add_argument("--image-guidance", nargs="+", type=float, default=IMAGE_GUIDANCE_SCALES, help="s_I values")
    parser.add_argument("--name", default="", help="results/instruct_settings-NAME.{md,json}")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if not args.quick and args.instruct is None:
        parser.error("--instruct MODEL is required (or --quick)")
    torch.manual_seed(0)
    if args.quick:
        components, cases, size, steps = quick_model(), 1, 32, 2
    else:
        components, cases, size, steps = load_components(args.instruct), args.cases, 64, OPTIONS["num_inference_steps"]
    template = PromptTemplate.from_pretrained(pretrained_path())
    grid = tuple(map(tuple, (args.strengths, args.text_guidance, args.image_guidance)))
    rows = measure(components, template, validation_cases(cases, size, tuple(args.findings)), steps=steps, grid=grid)
    name = "-".join(["instruct_settings", *filter(None, [args.name, "quick" if args.quick else ""])])
    result = {"instruct model": str(args.instruct or "tiny, untrained"), "cases per finding": cases,
              "cohort seed": VALIDATION_SEED, "image size": size, "num_inference_steps": steps}  # fmt: skip
    method = __doc__.split("\n\n")[1].replace("\n", " ")
    title = "The instruct engine's strength and guidance on validation patients"
    print(write_results(result, args.out, name, title, method, rows).read_text())


if __name__ == "__main__":
    main()
