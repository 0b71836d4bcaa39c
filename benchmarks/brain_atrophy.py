"""Ageing and Alzheimer's disease edits of the shipped brain model, scored against the renderer's truth.

Unseen cognitively normal patients without a lesion (aged ≤ 75, so +20 years stays in the cohort's range) are
edited by the inversion engine (strength 0.8, the shipped sampler: DDIM 25 steps, guidance 3) under "age+=20" and
under "alzheimers_disease=present". Each atrophy measure of medcf.metrics.brain (CSF-dark area of the deep brain
and of the outer rim as fractions of the brain, the rim's mean signal) is read from the image before and after,
the same way on the model's edit and on the renderer's true counterfactual; ageing is reported per decade.

    python benchmarks/brain_atrophy.py            # the shipped brain64 model, 32 patients
    python benchmarks/brain_atrophy.py --quick    # a tiny model, 4 patients: the smoke test
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from results_table import write_results

from medcf.evaluation.atrophy import BRAIN_EDITS, atrophy_cases, atrophy_effect
from medcf.models import tiny_components
from medcf.pretrained import PretrainedModel, pretrained_path
from medcf.prompts import PromptTemplate

EDITS = {"20 years older (per decade)": "20 years older", "Alzheimer's disease": "Alzheimer's disease added"}


def measure(components, template: PromptTemplate, *, patients: int, size: int, sampler: dict) -> list[dict]:  # noqa: ANN001
    rows = []
    for name, edit in EDITS.items():
        edits, truth_of, years, _, per = BRAIN_EDITS[edit]
        cases = atrophy_cases(patients, truth_of, size=size, years=years)
        for row in atrophy_effect(components, template, cases, edits, per=per, **sampler):
            rows.append({"edit": name, **{key: round(v, 4) if isinstance(v, float) else v for key, v in row.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 4 patients: a smoke test")
    parser.add_argument("--patients", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.quick:
        components, template, size = tiny_components(sample_size=16), PromptTemplate("brain MRI"), 32
        patients, sampler = 4, {"num_inference_steps": 2}
    else:
        model = PretrainedModel.load(pretrained_path("brain64"))
        components, template, size, patients = model.components, model.template, model.resolution, args.patients
        sampler = model.sampler()
    rows = measure(components, template, patients=patients, size=size, sampler=sampler)
    name = "brain_atrophy" + ("-quick" if args.quick else "")
    result = {"patients per edit": patients, "size": size, "engine": "inversion, strength 0.8", **sampler}
    method = __doc__.split("\n\n")[1].replace("\n", " ")
    title = "Brain ageing and Alzheimer's edits against the true change"
    print(write_results(result, args.out, name, title, method, rows).read_text())


if __name__ == "__main__":
    main()
