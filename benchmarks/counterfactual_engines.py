"""Every counterfactual engine scored against the truth on unseen semi-synthetic patients (issue 22's benchmark).

For each finding, the first N unseen subjects that have it (cohort seed 0, index ≥ 100 000: no model saw them) are
rendered with their true healthy counterpart and true effect mask. Each engine makes the healthy counterpart x_cf
and the map M = x − x_cf (medcf attribute's defaults: 25 DDIM steps, guidance 3, strength 0.6, σ = 1), scored by
pixel AUROC / NCC / Dice (after Otsu) against the true mask; `error` is the mean |x_cf − x_healthy,true| and
`outside` the mean |x_cf − x| outside the true mask (minimality), both in display units [0, 1]. The null edit asks
each engine for the image it was given (target row = source row; instruct: "keep the image as it is") and reports
its mean |change|. Engines: inversion, sdedit (3 seeds), pix2pix-zero (paraphrase direction) on the shipped cxr64
model; instruct (from its own DDIM inversion of the source at strength 0.6: one deterministic run) on an
InstructPix2Pix model fine-tuned from it on true counterfactual pairs of training
subjects and each subject unchanged (`medcf train --set train.method=instruct-pix2pix --set
data.pairs=counterfactuals`; docs/tutorials/counterfactuals.md gives the recipe used); each also with Latent
Drift δ at sampling. With a classifier (`medcf train-classifier`), its gradient saliency and Grad-CAM
are scored on the same cases: the baselines an engine must beat.

    python benchmarks/counterfactual_engines.py --instruct runs/ip2p/model --classifier runs/classifier
    python benchmarks/counterfactual_engines.py --engines none --classifier runs/classifier --merge
    python benchmarks/counterfactual_engines.py --quick                               # tiny models, CI smoke

Four reference rows come first for each finding. Three ceilings: the true counterpart itself (|x − x_healthy|: no
map of the change scores higher), and the VAE round trip of the true pair, what an engine landing exactly on the
true healthy latent E(x_healthy) gives, decoded (x − D(E(x_healthy)): the decoded engines' ceiling, whose null edit
is the VAE's reconstruction error) and as a residual (D(E(x)) − D(E(x_healthy)): the residual engines' ceiling).
One floor: no edit at all, x − D(E(x)), the VAE's reconstruction error as a map, which a decoded engine's map
contains whatever it edits.

`--residual` scores each engine's residual edit instead, x + D(ẑ_healthy) − D(ẑ_source) (rows "<engine> residual").
`--per-finding` asks each engine for the counterpart without the scored finding only (`medcf attribute --finding`;
rows "<engine>, per finding"), which is what the truth is: the healthy counterpart removes every finding, so on a
patient with two its map also holds the other one.
`--merge` keeps the rows of the engines not run from the existing results file (same cases and options), so one
engine, or the baselines, can be added without rerunning the others.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from results_table import write_results

from medcf.attribution.difference import counterpart_attribution
from medcf.attribution.gradients import at_classifier_size, grad_cam, gradient_saliency
from medcf.attribution.scoring import finding_cases, score_maps
from medcf.attribution.to_folder import counterpart_prompts
from medcf.classifier import ImageClassifier, load_classifier
from medcf.evaluation.attribution import binary_findings
from medcf.models import load_components, tiny_components
from medcf.models.latents import decode_latents, encode_images
from medcf.pretrained import pretrained_path
from medcf.prompts import PromptTemplate
from medcf.prompts.instructions import NO_CHANGE

OPTIONS = {"strength": 0.6, "num_inference_steps": 25, "guidance_scale": 3.0, "precision": "fp32"}
SEEDS = {"inversion": (0,), "pix2pix-zero": (0,), "sdedit": (0, 1, 2), "instruct": (0, 1, 2)}
BASELINES = {"gradient saliency": gradient_saliency, "Grad-CAM": grad_cam}
NOT_AN_EDIT = {"error": "-", "outside": "-", "null edit": "-"}  # a classifier map has no counterpart to score
REFERENCES = ("true counterpart", "VAE round trip", "VAE round trip residual", "no edit (VAE error)")


def engine_inputs(
    engine: str, template: PromptTemplate, rows: list[dict], *, null: bool, finding: str | None = None
) -> dict[str, object]:
    """The prompts (and pix2pix-zero's paraphrase sets) that ask `engine` for the healthy counterpart, or with
    `finding` for the counterpart without that finding only (`medcf attribute --finding`), or for the unchanged
    image when `null`."""
    prompts = [counterpart_prompts(template, row, engine, finding) for row in rows]
    source, target, directions = zip(*prompts, strict=True)
    inputs: dict[str, object] = {"source_prompts": list(source), "healthy_prompts": list(target)}
    if null:
        inputs["healthy_prompts"] = [NO_CHANGE] * len(rows) if engine == "instruct" else list(source)
    if engine == "pix2pix-zero":
        sets = [row_sets[0][0] for row_sets in directions], [row_sets[1][0] for row_sets in directions]
        inputs["direction_prompts"] = (sets[0], sets[0]) if null else sets  # Δc = 0 for the null edit
    return inputs


def score(
    engine: str, components, template, cases, drift: float, residual: bool, per_finding: bool
) -> dict[str, float]:
    options = {**OPTIONS, "seeds": SEEDS[engine], "engine": engine, "latent_drift": drift, "residual": residual}
    finding = cases.finding if per_finding else None
    result = counterpart_attribution(
        components, cases.images, **engine_inputs(engine, template, cases.rows, null=False, finding=finding),
        **options,
    )
    null = counterpart_attribution(
        components, cases.images, **engine_inputs(engine, template, cases.rows, null=True), **options
    ).counterparts
    return edit_scores(result.maps, result.counterparts, null, cases)  # the first seed's counterparts


def edit_scores(maps: torch.Tensor, counterpart: torch.Tensor, null: torch.Tensor, cases) -> dict[str, float]:
    """`maps` against the true masks; the counterpart's error against the true one and its change outside the
    mask, and the change of the image given back on a null edit (display units [0, 1])."""
    outside = cases.masks == 0
    return {
        **score_maps(maps, cases.masks),
        "error": float((counterpart - cases.healthy).abs().mean() / 2),
        "outside": float(((counterpart - cases.images).abs() / 2)[outside].mean()),
        "null edit": float((null - cases.images).abs().mean() / 2),
    }


def reference_rows(components, finding: str, cases) -> list[dict[str, object]]:
    """The true counterpart, the VAE round trip of the true pair (decoded and residual) and the unedited round
    trip, each scored as an engine's counterpart (with the image it gives back on a null edit)."""
    x, healthy = cases.images, cases.healthy
    with torch.no_grad():
        decoded_x, decoded_healthy = (round_trip(components, images) for images in (x, healthy))
    counterparts = {
        "true counterpart": (healthy, x),
        "VAE round trip": (decoded_healthy, decoded_x),
        "VAE round trip residual": (x + decoded_healthy - decoded_x, x),
        "no edit (VAE error)": (decoded_x, decoded_x),
    }
    return [
        {"finding": finding, "engine": name, "δ": "-", **edit_scores((x - counterpart) / 2, counterpart, null, cases)}
        for name, (counterpart, null) in counterparts.items()
    ]


def round_trip(components, images: torch.Tensor) -> torch.Tensor:
    """D(E(x)) at the posterior mean, grey."""
    latents = encode_images(components, images, sample=False)
    return decode_latents(components, latents, channels=images.shape[1])


def baseline_maps(classifier, finding: str, cases) -> dict[str, torch.Tensor]:
    """Gradient saliency and Grad-CAM of `classifier` for `finding` on the cases, at their size."""
    label = classifier.label_names.index(finding)
    return {name: at_classifier_size(method, classifier, cases.images, label) for name, method in BASELINES.items()}


def baseline_rows(classifier, finding: str, cases) -> list[dict[str, object]]:
    """The baselines' maps scored as the engines' are."""
    return [
        {"finding": finding, "engine": name, "δ": "-", **score_maps(maps, cases.masks), **NOT_AN_EDIT}
        for name, maps in baseline_maps(classifier, finding, cases).items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruct", type=Path, help="an InstructPix2Pix model folder (medcf train output)")
    parser.add_argument("--classifier", type=Path, help="a classifier folder (medcf train-classifier output)")
    parser.add_argument("--engines", default="inversion,sdedit,pix2pix-zero,instruct", help="comma list, or none")
    parser.add_argument("--residual", action="store_true", help="score the engines' residual edits")
    parser.add_argument("--per-finding", action="store_true", help="counterparts without the scored finding only")
    parser.add_argument("--merge", action="store_true", help="keep the other rows of the existing results file")
    parser.add_argument("--cases", type=int, default=8, help="unseen subjects per finding")
    parser.add_argument("--drift", type=float, default=0.05, help="Latent Drift δ of the '+ LD' rows")
    parser.add_argument("--quick", action="store_true", help="tiny untrained models, 1 case: the CI smoke test")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.quick:
        text_to_image, instruct, size, cases = tiny_components(), tiny_components(source_image=True), 32, 1
        OPTIONS["num_inference_steps"] = 2
    else:
        text_to_image, size, cases = load_components(pretrained_path()), 64, args.cases
        instruct = load_components(args.instruct) if args.instruct else None
    template = PromptTemplate.from_pretrained(pretrained_path())
    classifier = load_classifier(args.classifier) if args.classifier else None
    if args.quick and classifier is None:  # untrained, so the baseline rows run too
        classifier = ImageClassifier(binary_findings("cxr"), image_size=size)
    models = {"inversion": text_to_image, "sdedit": text_to_image, "pix2pix-zero": text_to_image}
    models |= {"instruct": instruct} if instruct is not None else {}
    models = {name: model for name, model in models.items() if name in args.engines.split(",")}
    rows = []
    for finding in binary_findings("cxr"):
        found = finding_cases(finding, n=cases, size=size, seed=0)
        rows += reference_rows(text_to_image, finding, found)
        for engine, components in models.items():
            for drift in (0.0, args.drift):
                scores = score(engine, components, template, found, drift, args.residual, args.per_finding)
                label = engine + " residual" * args.residual + ", per finding" * args.per_finding
                rows.append({"finding": finding, "engine": label, "δ": drift, **scores})
                print(rows[-1], flush=True)
        rows += baseline_rows(classifier, finding, found) if classifier is not None else []
    summary = {"cases per finding": cases, "image size": size, "Latent Drift δ": args.drift}
    summary |= {key: value for key, value in OPTIONS.items() if key != "precision"}
    summary["instruct model"] = str(args.instruct or "none")
    summary["classifier"] = str(args.classifier or "none")
    name = "counterfactual_engines-quick" if args.quick else "counterfactual_engines"
    if args.merge:
        summary, rows = merged(args.out / f"{name}.json", summary, rows)
    write_results(summary, args.out, name, "Counterfactual engines against the truth", __doc__.split("\n\n")[0], rows)


def merged(path: Path, summary: dict, rows: list[dict]) -> tuple[dict, list[dict]]:
    """The earlier file's rows for the engines not rerun, then the new rows, in finding order; the earlier
    summary with the new values of what was given (`none` keeps the earlier value). Refuses other cases/options."""
    earlier = json.loads(path.read_text())
    for key in ("cases per finding", "image size", "Latent Drift δ", *OPTIONS):
        if key in earlier and key in summary and earlier[key] != summary[key]:
            raise SystemExit(f"{path}: {key} = {earlier[key]} there, {summary[key]} now; rerun every engine")
    rerun = {row["engine"] for row in rows}  # the reference rows are always recomputed
    kept = [row for row in earlier["rows"] if row["engine"] not in rerun]
    findings = list(dict.fromkeys(row["finding"] for row in earlier["rows"] + rows))
    engines = list(dict.fromkeys([*REFERENCES, *(row["engine"] for row in earlier["rows"] + rows)]))
    combined = sorted(kept + rows, key=lambda row: (findings.index(row["finding"]), engines.index(row["engine"])))
    new = {key: value for key, value in summary.items() if value != "none"}
    return {**{k: v for k, v in earlier.items() if k not in ("rows", "environment")}, **new}, combined


if __name__ == "__main__":
    main()
