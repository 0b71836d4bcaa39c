"""`medcf benchmark --only METHOD`: run some of a suite's rows and keep the rest of a published results file.

A suite's full table takes hours on a CPU; adding one method (or rerunning one after a fix) should not retrain
the other runs. The chosen runs are trained and scored as usual (the shared stages — cohort, VAE, base,
classifier — are rebuilt the same way and, on a CPU, identically); every other row, the attribution table and the
smoking effect or brain edits come from the earlier `<out>/<suite>.json`, which must hold the same suite, size,
settings and seed. The merged file lists the rows this invocation ran (`rerun`), so a reader knows which
timings and versions each row carries.
"""

from __future__ import annotations

import json
from pathlib import Path

from medcf.evaluation.suite import SuiteRun

KEPT = ("attribution", "smoking_effect", "brain_edits", "edit_settings")  # the sections --only does not recompute


def selected_runs(runs: list[SuiteRun], only: tuple[str, ...], suite: str) -> list[SuiteRun]:
    """The runs named by `only`: a method ('Custom Diffusion' → its three rows) or one row's full name."""
    if unknown := [name for name in only if not any(_names(run, name) for run in runs)]:
        methods = ", ".join(map(repr, dict.fromkeys(run.name.split(", δ=")[0] for run in runs)))
        raise ValueError(f"--only {unknown[0]!r} names no run of {suite}; name a method or a row: {methods}")
    return [run for run in runs if any(_names(run, name) for name in only)]


def earlier_results(path: Path, header: dict, runs: list[SuiteRun], chosen: list[SuiteRun]) -> dict:
    """The published results `path` that --only adds to, checked before any work starts: the same suite, size,
    settings and seed as this invocation's `header`, and a row for every run not `chosen`."""
    if not path.is_file():
        raise ValueError(f"{path}: no earlier results to add rows to; run the whole suite first (without --only) "
                         "or point --out at the folder that holds them")  # fmt: skip
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        kept = {row["run"] for row in earlier["runs"]}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a benchmark results file ({error!r}); rerun the whole suite") from None
    for key in ("suite", "size", "settings", "seed"):
        if earlier.get(key) != header[key]:
            raise ValueError(f"{path}: its {key} is {earlier.get(key)!r}, this run's {header[key]!r}; rows of "
                             "different benchmarks cannot share a table: rerun the whole suite")  # fmt: skip
    if missing := [run.name for run in runs if run not in chosen and run.name not in kept]:
        raise ValueError(f"{path} lacks the row {missing[0]!r}; add it too: --only {missing[0].split(', δ=')[0]!r}")
    return earlier


def merged_results(results: dict, earlier: dict, runs: list[SuiteRun]) -> dict:
    """This invocation's rows (`results['runs']`, the chosen runs) in the suite's order among the earlier file's
    other rows, with the earlier file's attribution and effect sections."""
    fresh, kept = {row["run"]: row for row in results["runs"]}, {row["run"]: row for row in earlier["runs"]}
    rows = [fresh.get(run.name) or kept[run.name] for run in runs]
    return {**results, "runs": rows, **{key: earlier[key] for key in KEPT if key in earlier}, "rerun": list(fresh)}


def _names(run: SuiteRun, name: str) -> bool:
    return run.name == name or run.name.startswith(f"{name}, ")
