"""DGM-VLC's text-visual modulation on ct-synth's 3-D diffusion model (issue 23): with the prompt scaling and
shifting every ResNet block's features (γ·h + β, `model.text_modulation=true`), does the model learn the smoking
shift that the plain recipe misses?

ct-synth's full stages (800 volumes, its 3-D VAE; pass `medcf benchmark --suite ct-synth`'s work folder as --work to
reuse them) and its diffusion recipe plus `model.text_modulation=true`, scored as ct-synth scores a model
(medcf.evaluation.ct_benchmark.score_model), beside the plain diffusion row of the committed
benchmarks/results/ct-synth.json (same sizes and seed; --quick trains the plain tiny model too).

    python benchmarks/ct_text_modulation.py --work runs/ct-synth      # ~40 min on 2 CPUs
    python benchmarks/ct_text_modulation.py --quick                    # tiny models: the CI smoke test
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from results_table import write_results

from medcf.evaluation.ct_benchmark import SEED, real_volumes, score_model, stage_data, stage_vae
from medcf.evaluation.ct_suite import CT_SIZES, CtSize, model_overrides
from medcf.evaluation.stages import trained, training_seconds

RESULTS = Path(__file__).parent / "results"
MODULATION = ("model.text_modulation=true",)


def staged(size: CtSize, work: Path) -> tuple[Path, Path, dict]:
    """ct-synth's data and VAE stages in `work` (reused when there) and its held-out volumes, for every run."""
    data = stage_data(size, work / "data")
    return data, stage_vae(size, data, work / "vae"), real_volumes(data, size.eval_samples)[0]


def scored_run(size: CtSize, work: Path, stages: tuple, name: str, extra: tuple[str, ...]) -> dict[str, object]:
    """ct-synth's diffusion recipe plus `extra`, trained in work/runs/<name> (or reused) and scored."""
    data, vae, held_out = stages
    model = trained((*model_overrides(size, "diffusion", str(data), str(vae), SEED), *extra), work / "runs" / name)
    figures = work / "figures" / name
    figures.mkdir(parents=True, exist_ok=True)
    row = score_model(model, "diffusion", held_out, size, figures, precision="fp32", device="cpu")
    return {**row, "train seconds": training_seconds(model.parent)}


def committed_row(path: Path, size: CtSize) -> dict[str, object]:
    """The plain diffusion row of a ct-synth results file of the same sizes and seed."""
    results = json.loads(path.read_text())
    if results.get("settings") != asdict(size) or results.get("seed") != SEED:
        raise SystemExit(f"{path}: another size or seed than ct-synth full, seed {SEED}; rerun the suite")
    return next(row for row in results["runs"] if row["model"] == "diffusion")


def table_row(model: str, row: dict) -> dict[str, object]:
    """The measures the question turns on, flat: sample quality, the smoking effect and the smoking-removal edit."""
    effect, edit = row["smoking effect"], next(e for e in row["edits"] if e["edit"].startswith("smoking"))
    return {
        "model": model, "volume FID": row["volume FID (CT features)"],
        "slice FID": row["slice FID (EfficientNet-Lite0)"], "mean lung HU": row["mean lung HU"],
        "smoking shift (HU)": effect["mean_shift"], "95% CI": f"{effect['ci_low']:.3g} to {effect['ci_high']:.3g}",
        "true shift (HU)": effect["truth"]["mean_shift"], "model / truth": effect["shift_ratio"],
        "map r": effect["map_correlation"], "edit: lung change (HU)": edit["lung change (HU)"],
        "edit: true lung change (HU)": edit["true lung change (HU)"],
        "edit: r with true change": edit["correlation with true change"], "edit: AUROC": edit["AUROC of |change|"],
        "train seconds": row["train seconds"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="work folder: ct-synth's reuses its stages")
    parser.add_argument("--baseline", type=Path, default=RESULTS / "ct-synth.json", help="ct-synth results file")
    parser.add_argument("--quick", action="store_true", help="tiny models, a few steps: the CI smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.work is None and not args.quick:
        parser.error("--work is required: ct-synth's work folder to reuse its stages, or a new folder")
    size = CT_SIZES["quick" if args.quick else "full"]
    with tempfile.TemporaryDirectory(prefix="ct-modulation-") as scratch:
        work = args.work or Path(scratch)
        plain = None if args.quick else committed_row(args.baseline, size)  # checked before any work
        stages = staged(size, work)
        if plain is None:
            plain = scored_run(size, work, stages, "diffusion", ())
        modulated = scored_run(size, work, stages, "diffusion-text-modulation", MODULATION)
    rows = [table_row("diffusion (ct-synth)", plain), table_row("diffusion + text modulation", modulated)]
    summary = {"suite sizes": json.dumps(asdict(size)), "seed": SEED, "extra override": " ".join(MODULATION),
               "baseline": "trained here" if args.quick else str(args.baseline.name)}  # fmt: skip
    name = "ct_text_modulation-quick" if args.quick else "ct_text_modulation"
    write_results(summary, args.out, name, "Text modulation on ct-synth's diffusion model", __doc__.split("\n\n")[0],
                  rows)  # fmt: skip


if __name__ == "__main__":
    main()
