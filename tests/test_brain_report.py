"""brain-synth's report: Latent Drifting's claims judged from the measured rows, and the edit engines compared."""

from __future__ import annotations

from medcf.evaluation.brain_edits import engine_runs
from medcf.evaluation.brain_report import directions


def _run(name: str, group: str, fid: float, kid: float, drift: float = 0.0, sampling: float | None = None) -> dict:
    sampled = drift if sampling is None else sampling
    return {"run": name, "group": group, "fid_effnet": fid, "kid_effnet": kid, "latent drift": drift,
            "sampling drift": sampled}  # fmt: skip


def _edit(edit: str, engine: str, r: float) -> dict:
    return {"edit": edit, "engine": engine, "correlation with true change": r}


def test_each_claim_holds_only_where_the_measured_numbers_point_the_papers_way() -> None:
    runs = [
        _run("basic fine-tune, δ=0", "methods", 90.0, 0.07),
        _run("basic fine-tune, δ=0.1", "methods", 300.0, 0.8, 0.1),  # LD in sampling: worse
        _run("basic fine-tune, δ=0.1 in training only", "methods", 60.0, 0.05, 0.1, 0.0),  # in training: better
        _run("simple prompts, without patient info", "prompts", 80.0, 0.06),
        _run("diverse prompts, with patient info", "prompts", 90.0, 0.07),
    ]
    edits = [_edit("Alzheimer's disease added", "Pix2Pix-Zero", 0.2), _edit("Alzheimer's disease added",
             "Pix2Pix-Zero + LD", 0.3), _edit("Alzheimer's disease removed", "Pix2Pix-Zero", 0.2),
             _edit("Alzheimer's disease removed", "Pix2Pix-Zero + LD", 0.1), _edit("20 years older",
             "InstructPix2Pix", 0.5), _edit("20 years older", "InstructPix2Pix + LD", 0.5)]  # fmt: skip
    claims = {row["claim"]: row for row in directions(runs, edits)}
    assert claims["LD lowers FID: basic fine-tune"] == {
        "claim": "LD lowers FID: basic fine-tune", "paper": "FID 92.1 → 49.7", "here": "90 → 300", "holds here": False
    }  # fmt: skip
    assert claims["LD in training only lowers FID: basic fine-tune"]["holds here"] is True
    assert claims["LD lowers KID: basic fine-tune"]["here"] == "0.07 → 0.8"
    assert claims["diverse prompts with patient info give the best FID"]["holds here"] is False
    verdicts = [row["holds here"] for name, row in claims.items() if name.startswith("LD improves")]
    assert verdicts == [True, False, False]  # a tie is not an improvement


def test_ageing_is_edited_by_instruct_pix2pix_as_well_and_each_engine_with_and_without_drift() -> None:
    disease = [run.label for run in engine_runs("Alzheimer's disease added")]
    assert disease == ["inversion", "Pix2Pix-Zero", "inversion + LD", "Pix2Pix-Zero + LD"]
    ageing = engine_runs("20 years older")
    assert [run.label for run in ageing if run.engine == "instruct"] == ["InstructPix2Pix", "InstructPix2Pix + LD"]
    assert all(run.drifted == run.label.endswith("+ LD") for run in ageing)
