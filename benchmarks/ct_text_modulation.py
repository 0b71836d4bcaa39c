"""DGM-VLC's text-visual modulation on ct-synth's 3-D diffusion model (issue 23): with the prompt scaling and
shifting every ResNet block's features (γ·h + β, `model.text_modulation=true`), does the model learn the smoking
shift that the plain recipe misses? And with a zero-terminal-SNR schedule besides (Lin et al., WACV 2024:
`train.zero_terminal_snr=true`, plain v-prediction loss), which stops the model from reading an image-wide intensity,
such as a lung's mean HU, off the noise at t = T instead of from the prompt? Or is it training length: the modulated
recipe at twice ct-synth's steps?

ct-synth's full stages (800 volumes, its 3-D VAE; pass `medcf benchmark --suite ct-synth`'s work folder as --work to
reuse them) and its diffusion recipe plus each recipe's overrides, scored as ct-synth scores a model
(medcf.evaluation.ct_benchmark.scored_run; scores cached beside each run), beside the plain diffusion row of the
committed benchmarks/results/ct-synth.json (same sizes and seed; --quick trains the plain tiny model too), and
ct-synth's montage of each model trained here (`<name>_montage.png`).

    python benchmarks/ct_text_modulation.py --work runs/ct-synth      # ~40 min per recipe on 2 CPUs
    python benchmarks/ct_text_modulation.py --quick                    # tiny models: the CI smoke test
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from results_table import write_results

from medcf.evaluation.ct_benchmark import SEED, real_volumes, scored_run, stage_data, stage_vae
from medcf.evaluation.ct_report import montage
from medcf.evaluation.ct_suite import CT_SIZES, CtSize, model_overrides
from medcf.evaluation.stages import trained
from medcf.figures import save_figure

RESULTS = Path(__file__).parent / "results"
MODULATION = ("model.text_modulation=true",)
# Min-SNR-γ weighs t ≈ T by SNR/(SNR + 1) ≈ 0 under v-prediction: off, so the steps that need the prompt most train
ZERO_SNR = (*MODULATION, "train.zero_terminal_snr=true", "train.snr_gamma=0")
PLAIN = "diffusion (ct-synth)"
SHORT = {PLAIN: "plain", "diffusion + text modulation": "modulated", "diffusion + text modulation + zero terminal "
         "SNR": "+ zero SNR", "diffusion + text modulation, twice the steps": "2x steps"}  # the montage's row titles


def recipes(size: CtSize) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Table row → (run folder, overrides added to ct-synth's diffusion recipe of `size`)."""
    longer = f"train.max_steps={2 * size.diffusion_steps}"
    return {
        "diffusion + text modulation": ("diffusion-text-modulation", MODULATION),
        "diffusion + text modulation + zero terminal SNR": ("diffusion-zero-snr", ZERO_SNR),
        "diffusion + text modulation, twice the steps": ("diffusion-text-modulation-2x", (*MODULATION, longer)),
    }


def staged(size: CtSize, work: Path) -> tuple[Path, Path, dict]:
    """ct-synth's data and VAE stages in `work` (reused when there) and its held-out volumes, for every run."""
    data = stage_data(size, work / "data")
    return data, stage_vae(size, data, work / "vae"), real_volumes(data, size.eval_samples)[0]


def trained_run(size: CtSize, work: Path, stages: tuple, name: str, extra: tuple[str, ...]) -> Path:
    """ct-synth's diffusion recipe plus `extra`, trained in work/runs/<name> (or reused): its model folder."""
    data, vae, _ = stages
    return trained((*model_overrides(size, "diffusion", str(data), str(vae), SEED), *extra), work / "runs" / name)


def scored(size: CtSize, work: Path, held_out: dict, model: Path) -> dict[str, object]:
    """ct-synth's scores of `model` on the CPU in fp32 (cached beside its run) and its training time."""
    figures = work / "figures" / model.parent.name
    figures.mkdir(parents=True, exist_ok=True)
    return scored_run(model, "diffusion", held_out, size, figures, {"device": "cpu", "precision": "fp32"}, "cpu")


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
        committed = {} if args.quick else {PLAIN: committed_row(args.baseline, size)}  # checked before any work
        stages = staged(size, work)
        runs = ({} if committed else {PLAIN: ("diffusion", ())}) | recipes(size)
        models = {row: trained_run(size, work, stages, *recipe) for row, recipe in runs.items()}  # train first
        scores = committed | {row: scored(size, work, stages[2], model) for row, model in models.items()}
        name = "ct_text_modulation-quick" if args.quick else "ct_text_modulation"
        figures = [(work / "figures" / model.parent.name, "diffusion", SHORT[row]) for row, model in models.items()]
        save_figure(montage(figures), args.out / f"{name}_montage.png")
    rows = [table_row(row, score) for row, score in scores.items()]
    summary = {"suite sizes": json.dumps(asdict(size)), "seed": SEED,
               **{f"overrides: {row}": " ".join(extra) for row, (_, extra) in recipes(size).items()},
               "baseline": "trained here" if args.quick else str(args.baseline.name)}  # fmt: skip
    title = "Text modulation and zero terminal SNR on ct-synth's diffusion model"
    write_results(summary, args.out, name, title, __doc__.split("\n\n")[0], rows)


if __name__ == "__main__":
    main()
