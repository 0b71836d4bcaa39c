"""Per-finding counterparts against healthy ones, on patients with several findings.

A healthy counterpart removes every finding of the patient, so on a patient with a nodule and an effusion the map
of the nodule also holds the effusion. A per-finding counterpart (`medcf attribute --finding`) removes the scored
finding only, as the true counterpart of the semi-synthetic cohort does. Both are scored against the finding's
true effect mask (pixel AUROC, NCC, Dice after Otsu) on the unseen patients who have that finding and at least one
other, with the inversion engine (strength 0.6, one deterministic run).

    python benchmarks/per_finding_counterparts.py            # the shipped model, the first 48 cases per finding
    python benchmarks/per_finding_counterparts.py --quick    # a tiny model, 4 cases: the CI smoke test
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from results_table import write_results

from medcf.attribution.scoring import FindingCases, compare_methods, finding_cases
from medcf.evaluation.attribution import binary_findings
from medcf.models import load_components, tiny_components
from medcf.pretrained import pretrained_path
from medcf.prompts import PromptTemplate
from medcf.prompts.fields import parse_finding

FINDINGS = ("pleural_effusion", "consolidation", "nodule")


def multi_finding(cases: FindingCases, findings: list[str]) -> FindingCases:
    """The cases whose row has at least one present finding besides the scored one."""
    keep = [i for i, row in enumerate(cases.rows) if sum(parse_finding(k, row.get(k)) == 1 for k in findings) > 1]
    index = torch.tensor(keep, dtype=torch.long)
    rows = [cases.rows[i] for i in keep]
    return FindingCases(cases.finding, cases.images[index], cases.healthy[index], cases.masks[index], rows)


def measure(components, template: PromptTemplate, *, cases: int, size: int, steps: int) -> list[dict]:  # noqa: ANN001
    rows, findings = [], binary_findings("cxr")
    for finding in FINDINGS:
        subset = multi_finding(finding_cases(finding, n=cases, size=size), findings)
        for per_finding in (False, True):
            scored = compare_methods(
                components, template, subset, per_finding=per_finding, seeds=(0,), engine="inversion",
                strength=0.6, num_inference_steps=steps,
            )  # fmt: skip
            model = next(row for row in scored if row["method"].startswith("healthy counterpart"))
            counterpart = "per finding" if per_finding else "healthy (every finding)"
            rows.append({"finding": finding, "patients": len(subset.rows), "counterpart": counterpart,
                         **{key: round(model[key], 3) for key in ("auroc", "ncc", "dice", "seconds")}})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 4 cases per finding: a smoke test")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.quick:
        components, template, cases, size = tiny_components(sample_size=16), PromptTemplate("chest X-ray"), 4, 32
    else:
        folder = pretrained_path()
        components, template, cases, size = load_components(folder), PromptTemplate.from_pretrained(folder), 48, 64
    steps = 2 if args.quick else args.steps
    rows = measure(components, template, cases=cases, size=size, steps=steps)
    name = "per_finding_counterparts" + ("-quick" if args.quick else "")
    result = {"cases drawn per finding": cases, "size": size, "steps": steps, "engine": "inversion, 0.6"}
    method = __doc__.split("\n\n")[1].replace("\n", " ")
    title = "Per-finding vs healthy counterparts on multi-finding patients"
    print(write_results(result, args.out, name, title, method, rows).read_text())


if __name__ == "__main__":
    main()
