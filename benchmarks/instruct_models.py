"""InstructPix2Pix models of different training recipes, compared on validation patients at the engine's defaults.

Each model's per-finding residual map (instruct_settings.py's measure: the counterpart without the scored finding
only, from the engine's DDIM inversion of the source at the benchmark's strength, minus its answer to "keep the image
as it is") on the first N subjects per finding of cohort seed 1, scored against the true effect mask by pixel AUROC /
NCC / Dice; with a classifier, its Grad-CAM and gradient saliency on the same patients. Used to choose a training
recipe (e.g. train.edit_weight) without touching the engines benchmark's cases.

    python benchmarks/instruct_models.py --model "plain=runs/a/model" --model "edit weight 20=runs/b/model"
    python benchmarks/instruct_models.py --cases 48 --name instruct_models-48cases --model ...   # less noise
    python benchmarks/instruct_models.py --cases 48 --classifier CLASSIFIER --name instruct_models-48cases-baselines
    python benchmarks/instruct_models.py --quick      # two tiny untrained models: the CI smoke test
"""

from __future__ import annotations

import argparse
from pathlib import Path

from counterfactual_engines import OPTIONS, baseline_rows
from instruct_settings import VALIDATION_SEED, measure, validation_cases
from results_table import write_results

from medcf.attribution.scoring import FindingCases
from medcf.classifier import ImageClassifier, load_classifier
from medcf.evaluation.attribution import binary_findings
from medcf.models import load_components, tiny_components
from medcf.pretrained import pretrained_path
from medcf.prompts import PromptTemplate


def labelled(text: str) -> tuple[str, Path]:
    """'LABEL=PATH' → (label, path), split at the last '=' (a label may hold one); a clear error for anything else."""
    label, separator, path = text.rpartition("=")
    if not separator or not label or not path:
        raise argparse.ArgumentTypeError(f"--model {text!r}: write LABEL=PATH, e.g. 'edit weight 20=runs/b/model'")
    return label, Path(path)


def quick_models() -> dict[str, object]:
    """Two tiny untrained InstructPix2Pix U-Nets of different seeds: the CI smoke test's 'recipes'."""
    return {f"tiny seed {seed}": tiny_components(seed=seed, source_image=True) for seed in (0, 1)}


def classifier_rows(classifier, cases: dict[str, FindingCases]) -> list[dict]:  # noqa: ANN001
    """Grad-CAM and gradient saliency of `classifier` on the same validation patients, scored the same way."""
    rows = []
    for finding, found in cases.items():
        for row in baseline_rows(classifier, finding, found):
            scores = {key: round(row[key], 3) for key in ("auroc", "ncc", "dice")}
            rows.append({"model": row["engine"], "finding": finding, "strength": "-", "s_T": "-", **scores})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=labelled, action="append", default=[], help="LABEL=PATH, repeatable")
    parser.add_argument("--classifier", type=Path, help="add its Grad-CAM and saliency rows (train-classifier output)")
    parser.add_argument("--cases", type=int, default=16, help="validation subjects per finding")
    parser.add_argument("--quick", action="store_true", help="two tiny untrained models, 1 case: the CI smoke test")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="instruct_models", help="results file name, without .md / .json")
    args = parser.parse_args()
    if not args.quick and not args.model and args.classifier is None:
        parser.error("give --model LABEL=PATH at least once, or --classifier (or --quick)")
    if args.quick:
        models, cases, size, steps = quick_models(), 1, 32, 2
        classifier = ImageClassifier(binary_findings("cxr"), image_size=size)  # untrained, so its rows run too
    else:
        models = {label: load_components(path) for label, path in args.model}
        cases, size, steps = args.cases, 64, OPTIONS["num_inference_steps"]
        classifier = load_classifier(args.classifier) if args.classifier else None
    template = PromptTemplate.from_pretrained(pretrained_path())
    grid = ((OPTIONS["strength"], OPTIONS["guidance_scale"]),)
    found, rows = validation_cases(cases, size), []  # the same patients for every model
    for label, components in models.items():
        scored = measure(components, template, found, steps=steps, grid=grid)
        rows += [{"model": label, **row} for row in scored]
    rows += classifier_rows(classifier, found) if classifier is not None else []
    name = args.name + ("-quick" if args.quick else "")
    paths = "; ".join(f"{label}: {path}" for label, path in args.model)
    models_note, classifier_note = ("tiny, untrained",) * 2 if args.quick else (paths or "none", str(args.classifier))
    result = {"models": models_note, "classifier": classifier_note,
              "cases per finding": cases, "cohort seed": VALIDATION_SEED, "image size": size,
              "num_inference_steps": steps}  # fmt: skip
    method = __doc__.split("\n\n")[1].replace("\n", " ")
    title = "InstructPix2Pix training recipes on validation patients"
    print(write_results(result, args.out, name, title, method, rows).read_text())


if __name__ == "__main__":
    main()
