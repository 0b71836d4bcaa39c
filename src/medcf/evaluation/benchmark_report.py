"""The benchmark's table: `<name>.md` (what a reader opens), `<name>.json` (every number), `<name>_fid.png`."""

from __future__ import annotations

import json
from pathlib import Path

from medcf.atomic import atomic_path
from medcf.evaluation.brain_report import brain_sections
from medcf.report import Section, render_markdown

COLUMNS = (
    "run",
    "model",
    "latent drift",
    "sampling drift",
    "fid_effnet",
    "kid_effnet",
    "fid_domain",
    "effectiveness",
    "train seconds",
    "score seconds",
)


def write_benchmark(results: dict, out: Path, name: str) -> Path:
    """Write the three files into `out` (created if needed), each atomically; returns the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{name}.json") as temporary:
        temporary.write_text(json.dumps(results, indent=2, default=str) + "\n")
    fid_chart(results["runs"], out / f"{name}_fid.png")
    with atomic_path(out / f"{name}.md") as temporary:
        temporary.write_text(render_markdown(f"medcf benchmark: {results['suite']} ({results['size']})",
                                             _sections(results, f"{name}_fid.png")), encoding="utf-8")  # fmt: skip
    return out / f"{name}.md"


def fid_chart(runs: list[dict], path: Path) -> Path:
    """fid_effnet of every method without Latent Drift, with it, and with it in fine-tuning only, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    methods = [row for row in runs if row["group"] == "methods"]
    names = list(dict.fromkeys(row["run"].split(", δ=")[0] for row in methods))
    bars = {  # (training δ > 0, sampling δ > 0) → legend
        (False, False): "δ = 0",
        (True, True): "Latent Drift in training and sampling",
        (True, False): "in training only",
    }
    figure, axes = pyplot.subplots(figsize=(7.2, 3.6), dpi=110)
    positions, width = range(len(names)), 0.8 / len(bars)
    for offset, (kind, label) in enumerate(bars.items()):
        values = [_fid(methods, name, kind) for name in names]
        axes.bar([p + (offset - 1) * width for p in positions], values, width=width, label=label)
    axes.set_xticks(list(positions), names)
    axes.set(ylabel="FID (EfficientNet-Lite0)", title="fine-tuning methods, lower is better")
    axes.set_ylim(top=axes.get_ylim()[1] * 1.2)  # headroom: the one-row legend sits above the tallest bar
    axes.legend(frameon=False, fontsize=8, ncols=len(bars), loc="upper center")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    pyplot.close(figure)
    return path


def _fid(rows: list[dict], name: str, kind: tuple[bool, bool]) -> float:
    """fid_effnet of method `name` trained / sampled with or without drift; NaN (no bar) when not run."""
    found = [r["fid_effnet"] for r in rows if r["run"].split(", δ=")[0] == name
             and (r["latent drift"] > 0, r.get("sampling drift", r["latent drift"]) > 0) == kind]  # fmt: skip
    return found[0] if found else float("nan")


def _sections(results: dict, chart: str) -> list[Section]:
    environment, settings = results["environment"], results["settings"]
    table = [{column: row[column] for column in COLUMNS} for row in results["runs"]]
    return [
        Section("Setup", paragraphs=[
            f"Sizes: {json.dumps(settings)}; seed {results['seed']}; {results['seconds'] / 60:.1f} min in this "
            "invocation (stages finished by earlier ones are reused: the table's train and score seconds are "
            "each row's own, measured when it ran).",
            f"Machine: {environment['platform']}, {environment['cpu_count']} CPUs, GPU {environment['cuda']}; "
            f"Python {environment['python']}; " + ", ".join(f"{k} {v}" for k, v in environment["versions"].items()),
            "FID/KID: held-out patients vs one sample per held-out clinical row; EfficientNet-Lite0 features "
            "(224 bilinear) and the real-data classifier's features (fid_domain). Effectiveness: mean accuracy "
            "of that classifier on the samples against the findings their prompts asked for. `model` is the "
            "run folder: a row whose config equals an earlier row's reuses that model.",
            *_merged(results),
        ]),
        Section("Generation: fine-tuning methods and prompt styles", figures=[(chart, "FID by method")],
                table=table),
        Section("Attribution against the true effect masks", table=[
            {key: row[key] for key in ("finding", "method", "auroc", "ncc", "dice")} for row in results["attribution"]
        ]),
        *(brain_sections(results) if "brain_edits" in results else [_smoking_section(results["smoking_effect"])]),
    ]  # fmt: skip


def _merged(results: dict) -> list[str]:
    """The sentence saying which rows this invocation ran, when it added them to earlier results (--only)."""
    if "rerun" not in results:
        return []
    return [f"Rows run in this invocation (`medcf benchmark --only`): {'; '.join(results['rerun'])}. The other "
            "rows, the attribution and the effect sections come from the earlier results file; the machine and "
            "versions above are this invocation's."]  # fmt: skip


def _smoking_section(effect: dict) -> Section:
    truth = effect["truth"]
    return Section("Smoking effect map", paragraphs=[
        f"{effect['n']} matched pairs ({effect['low']} → {effect['high']}): mean shift inside the lungs "
        f"{effect['mean_shift']:+.4f} (95% CI {effect['ci_low']:+.4f} to {effect['ci_high']:+.4f}), "
        f"outside {effect['outside_shift']:+.4f} display units. The renderer's true effect on the same "
        f"subjects: inside {truth['mean_shift']:+.4f} (95% CI {truth['ci_low']:+.4f} to "
        f"{truth['ci_high']:+.4f}), outside {truth['outside_shift']:+.4f}.",
    ])  # fmt: skip
