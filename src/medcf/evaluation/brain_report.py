"""brain-synth's own report sections: every brain edit against the truth, the ageing edit as a measurement, and
Latent Drifting's directions (its brain results, as reported) beside what this benchmark measured."""

from __future__ import annotations

from medcf.report import Section

# Latent Drifting (Yeganeh et al., CVPR 2025) on brain MRI, as MISSION.md records them (secondary sources)
PAPER_FID, PAPER_KID = (92.1, 49.7), (0.071, 0.035)
EDIT_COLUMNS = ("edit", "engine", "model", "inside", "outside", "correlation with true change", "error",
                "error of the unedited image", "ventricles", "ventricles true", "effectiveness")  # fmt: skip
ATROPHY_COLUMNS = ("measure", "model", "model 95% CI", "truth", "truth 95% CI", "model / truth",
                   "correlation across patients")  # fmt: skip


def brain_sections(results: dict) -> list[Section]:
    edits, settings = results["brain_edits"], results["edit_settings"]
    ageing = [row for row in edits if row["edit"] == "20 years older"]
    return [
        Section("Latent Drifting's directions, here", paragraphs=[
            "The paper's brain MRI results next to this benchmark's. A direction holds when it points the same way "
            "here; the sizes differ (64 px from scratch vs Stable Diffusion at 256 px on ADNI/OASIS).",
        ], table=directions(results["runs"], edits)),
        Section("Brain edits against the truth", paragraphs=[
            f"{settings['patients']} unseen patients per edit (no lesion; cognitively normal, or with AD for its "
            f"removal; ≤ 70 years for ageing), strength {settings['strength']}, guidance {settings['guidance_scale']}"
            f", DDIM {settings['num_inference_steps']} steps; InstructPix2Pix fine-tuned "
            f"{settings['instruct_steps']} steps on the training patients' true age pairs. Display units [0, 1]: "
            "`inside`/`outside` the mean |change| in and out of the true effect region, `error` the mean "
            "|edit − true counterfactual|, beside the unedited image's; `ventricles` the change of the ventricle "
            "area fraction (per decade for ageing); `effectiveness` the real-data classifier's agreement.",
        ], table=[{column: row.get(column) for column in EDIT_COLUMNS} for row in edits]),
        Section("Ageing as a measurement: change per decade, model vs truth", table=[
            {"engine": row["engine"], **{column: measure[column] for column in ATROPHY_COLUMNS}}
            for row in ageing for measure in row["atrophy"]
        ]),
    ]  # fmt: skip


def directions(runs: list[dict], edits: list[dict]) -> list[dict[str, object]]:
    """One row per claim of the paper: what it reported, what was measured here, and whether it holds."""
    by_name = {row["run"]: row for row in runs}
    rows = []
    for method in dict.fromkeys(row["run"].split(", δ=")[0] for row in runs if row["group"] == "methods"):
        plain, drifted = by_name[f"{method}, δ=0"], _drifted(runs, method)
        paper = f"FID {PAPER_FID[0]} → {PAPER_FID[1]}" if method == "basic fine-tune" else "lower with LD"
        for label, name in (("LD lowers FID", drifted),
                            ("LD in training only lowers FID", f"{drifted} in training only")):  # fmt: skip
            rows.append(_claim(f"{label}: {method}", paper, plain["fid_effnet"], by_name[name]["fid_effnet"]))
    plain, drifted = by_name["basic fine-tune, δ=0"], by_name[_drifted(runs, "basic fine-tune")]
    rows.append(_claim("LD lowers KID: basic fine-tune", f"KID {PAPER_KID[0]} → {PAPER_KID[1]}",
                       plain["kid_effnet"], drifted["kid_effnet"]))  # fmt: skip
    prompts = {row["run"]: row["fid_effnet"] for row in runs if row["group"] == "prompts"}
    best = min(prompts, key=prompts.get)
    rows.append({"claim": "diverse prompts with patient info give the best FID", "paper": "best of the four",
                 "here": f"best: {best} ({prompts[best]:.4g})",
                 "holds here": best == "diverse prompts, with patient info"})  # fmt: skip
    return rows + _edit_claims(edits)


def _drifted(runs: list[dict], method: str) -> str:
    """The run of `method` with Latent Drift in training and sampling."""
    return next(row["run"] for row in runs if row["run"].startswith(f"{method}, δ=")
                and row["latent drift"] > 0 and row["sampling drift"] > 0)  # fmt: skip


def _edit_claims(edits: list[dict]) -> list[dict[str, object]]:
    """LD's effect on each edit engine: the correlation of the edit's change with the true change (higher)."""
    score = {(row["edit"], row["engine"]): row["correlation with true change"] for row in edits}
    claims = []
    for edit, engine in (("Alzheimer's disease added", "Pix2Pix-Zero"), ("Alzheimer's disease removed",
                         "Pix2Pix-Zero"), ("20 years older", "InstructPix2Pix")):  # fmt: skip
        claims.append(_claim(f"LD improves {engine}: {edit} (r with the true change)", "shown by eye",
                             score[edit, engine], score[edit, f"{engine} + LD"], lower=False))  # fmt: skip
    return claims


def _claim(claim: str, paper: str, without: float, with_drift: float, *, lower: bool = True) -> dict[str, object]:
    holds = with_drift < without if lower else with_drift > without
    return {"claim": claim, "paper": paper, "here": f"{without:.4g} → {with_drift:.4g}", "holds here": holds}
