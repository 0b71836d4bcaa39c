"""InstructPix2Pix models of different training recipes, compared on validation patients at one guidance setting.

Each model's per-finding residual map (instruct_settings.py's per_finding_maps: the counterpart without the scored
finding only, from the engine's DDIM inversion of the source at the benchmark's strength, minus its answer to "keep the
image as it is"; text and image guidance s_T / s_I the engine's defaults unless given) on the first N subjects per
finding of cohort seed 1, scored against the true effect mask by pixel AUROC / NCC / Dice; with a classifier, its
Grad-CAM and gradient saliency on the same patients. Each AUROC has a 95% interval from resampling the patients
(bootstrap), and with a classifier each method's differences from Grad-CAM's AUROC and from gradient saliency's have
one from the same resamples (paired). Used to choose a training recipe (e.g. train.edit_weight) without touching the
engines benchmark's cases.

    python benchmarks/instruct_models.py --model "plain=runs/a/model" --model "edit weight 20=runs/b/model"
    python benchmarks/instruct_models.py --cases 48 --name instruct_models-48cases --model ...   # less noise
    python benchmarks/instruct_models.py --cases 48 --classifier CLASSIFIER --name instruct_models-48cases-baselines
    python benchmarks/instruct_models.py --text-guidance 1.5 --image-guidance 1 --model ...   # other guidance
    python benchmarks/instruct_models.py --quick      # two tiny untrained models: the CI smoke test
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from counterfactual_engines import BASELINES, OPTIONS, baseline_maps
from instruct_settings import VALIDATION_SEED, per_finding_maps, validation_cases
from results_table import write_results

from medcf.attribution.scoring import FindingCases, score_maps
from medcf.classifier import ImageClassifier, load_classifier
from medcf.evaluation.attribution import binary_findings
from medcf.generate import IMAGE_GUIDANCE
from medcf.metrics import auroc_resamples, percentile_interval
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


def method_maps(
    models: dict,
    classifier,  # noqa: ANN001
    cases: dict[str, FindingCases],
    options: dict,
) -> dict[tuple[str, str], torch.Tensor]:
    """(method, finding) → maps on the same patients: each model's per-finding residual at `options` (strength,
    guidance, image_guidance, steps of per_finding_maps), then the classifier's Grad-CAM and gradient saliency."""
    template, maps = PromptTemplate.from_pretrained(pretrained_path()), {}
    for label, components in models.items():
        for finding, found in cases.items():
            maps[label, finding] = per_finding_maps(components, template, found, **options)
            print(label, finding, flush=True)
    if classifier is not None:
        for finding, found in cases.items():
            maps |= {(name, finding): value for name, value in baseline_maps(classifier, finding, found).items()}
    return maps


def versus(aurocs: dict, draws: dict, key: tuple[str, str], baseline: str) -> str:
    """The AUROC of `key` = (method, finding) minus `baseline`'s on the same patients, with the paired bootstrap's
    95% interval ('-' for the baseline itself)."""
    reference = baseline, key[1]
    if key == reference:
        return "-"
    low, high = percentile_interval(draws[key] - draws[reference])
    return f"{aurocs[key] - aurocs[reference]:+.3f} [{low:+.3f}, {high:+.3f}]"


def scored_rows(maps: dict, cases: dict[str, FindingCases], resamples: int) -> list[dict]:
    """A row per method and finding: AUROC with its 95% patient-bootstrap interval, NCC and Dice; with the
    classifier's maps among the methods, each method's AUROC minus Grad-CAM's and minus gradient saliency's, each
    with the paired bootstrap's 95% interval."""
    scores = {key: score_maps(value, cases[key[1]].masks) for key, value in maps.items()}
    draws = {key: auroc_resamples(value, cases[key[1]].masks, resamples=resamples) for key, value in maps.items()}
    aurocs = {key: score["auroc"] for key, score in scores.items()}
    rows = []
    for method, finding in maps:
        row = {"model": method, "finding": finding, **{k: round(v, 3) for k, v in scores[method, finding].items()}}
        row["auroc 95% CI"] = "[{:.3f}, {:.3f}]".format(*percentile_interval(draws[method, finding]))
        for baseline in BASELINES:  # with a classifier: the map to beat, paired
            if (baseline, finding) in maps:
                row[f"auroc − {baseline}'s, 95% CI"] = versus(aurocs, draws, (method, finding), baseline)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=labelled, action="append", default=[], help="LABEL=PATH, repeatable")
    parser.add_argument("--classifier", type=Path, help="add its Grad-CAM and saliency rows (train-classifier output)")
    parser.add_argument("--cases", type=int, default=16, help="validation subjects per finding")
    parser.add_argument("--quick", action="store_true", help="two tiny untrained models, 2 cases: the CI smoke test")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="instruct_models", help="results file name, without .md / .json")
    parser.add_argument("--resamples", type=int, default=1000, help="patient-bootstrap resamples of each AUROC")
    parser.add_argument("--text-guidance", type=float, default=OPTIONS["guidance_scale"], help="s_T (engine default)")
    parser.add_argument("--image-guidance", type=float, default=IMAGE_GUIDANCE, help="s_I (engine default)")
    args = parser.parse_args()
    if not args.quick and not args.model and args.classifier is None:
        parser.error("give --model LABEL=PATH at least once, or --classifier (or --quick)")
    if args.quick:
        models, cases, size, steps = quick_models(), 2, 32, 2
        classifier = ImageClassifier(binary_findings("cxr"), image_size=size)  # untrained, so its rows run too
    else:
        models = {label: load_components(path) for label, path in args.model}
        cases, size, steps = args.cases, 64, OPTIONS["num_inference_steps"]
        classifier = load_classifier(args.classifier) if args.classifier else None
    found = validation_cases(cases, size)  # the same patients for every method
    options = {"strength": OPTIONS["strength"], "guidance": args.text_guidance, "image_guidance": args.image_guidance,
               "steps": steps}  # fmt: skip
    rows = scored_rows(method_maps(models, classifier, found, options), found, args.resamples)
    name = args.name + ("-quick" if args.quick else "")
    paths = "; ".join(f"{label}: {path}" for label, path in args.model)
    models_note, classifier_note = ("tiny, untrained",) * 2 if args.quick else (paths or "none", str(args.classifier))
    result = {"models": models_note, "classifier": classifier_note,
              "cases per finding": cases, "cohort seed": VALIDATION_SEED, "image size": size,
              "strength": OPTIONS["strength"], "s_T": args.text_guidance, "s_I": args.image_guidance,
              "num_inference_steps": steps,
              "bootstrap resamples": args.resamples}  # fmt: skip
    method = __doc__.split("\n\n")[1].replace("\n", " ")
    title = "InstructPix2Pix training recipes on validation patients"
    print(write_results(result, args.out, name, title, method, rows).read_text())


if __name__ == "__main__":
    main()
