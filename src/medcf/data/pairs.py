"""Image pairs for image-to-image training (InstructPix2Pix, Brooks et al., CVPR 2023): a source image, the target
image it should become, and the instruction between them, written from the two clinical rows.

A pair cohort is a Cohort whose rows are the *targets* (id, patient_id, path, slice_index and the target's clinical
fields), plus source_path, source_slice_index and instruction, so patient splits, filters and `medcf data check` work
on pairs as on images. Three sources:
- `counterfactual_pairs(root)`: a `medcf synth` folder — each subject with each of its true single-factor
  counterfactuals, in both directions (remove and add, younger and older), and with itself ("keep the image as it
  is"), one patient per subject;
- `longitudinal_image_pairs(cohort)`: repeat visits of one patient (OASIS-2/3, ADNI), earlier → later, the
  ageing pairs of Latent Drifting; the same slice index of two unregistered visits (medcf.data.longitudinal);
- `pairs_table(root, csv)`: any CSV with source_path, target_path, instruction (and patient_id).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from medcf.data.adapters.folder import image_folder
from medcf.data.cohort import Cohort, check_files
from medcf.data.longitudinal import slice_pairs
from medcf.data.table import load_table
from medcf.prompts.edits import apply_edit
from medcf.prompts.instructions import edit_instruction


def counterfactual_pairs(root: str | Path, *, both_directions: bool = True, identity: bool = True) -> Cohort:
    """Every (subject, true counterfactual) of a `medcf synth` folder as a pair; `both_directions` adds each
    reversed (counterfactual → subject), so a model learns to add a finding as well as to remove it. `identity`
    adds each subject once as its own target (NO_CHANGE): the instruct engine's residual edit subtracts that
    reconstruction (`editing.counterfactual`), which a model never shown the instruction would only guess."""
    root = Path(root).absolute()
    subjects = image_folder(root, modality=_modality(root))
    listed = root / "counterfactuals.csv"
    if not listed.is_file() or len(listed.read_text().splitlines()) < 2:
        raise ValueError(f"{listed}: no counterfactuals; write the cohort with them (`medcf synth` without "
                         "--no-counterfactuals)")  # fmt: skip
    table = load_table(listed, required=["id", "factor", "value", "path"])
    rows = {row["id"]: row for row in subjects.records.to_dict("records")}
    if unknown := sorted(set(table["id"]) - set(rows))[:5]:
        raise ValueError(f"{listed}: subject(s) {unknown} not in metadata.csv; write both again")
    pairs = []
    for item in table.to_dict("records"):
        subject = rows[item["id"]]
        edited = apply_edit(subject, f"{item['factor']}={item['value']}") | {"path": str(root / item["path"])}
        name = f"{item['id']}_{item['factor']}={item['value']}"
        pairs.append(_pair(subject, edited, name))
        if both_directions:
            pairs.append(_pair(edited, subject, f"{name}_reversed"))
    if identity:
        pairs += [_pair(rows[name], rows[name], f"{name}_unchanged") for name in dict.fromkeys(table["id"])]
    records = pd.DataFrame(pairs)
    check_files(records["path"], source=root / "counterfactuals.csv")
    return replace(subjects, records=records)


def longitudinal_image_pairs(cohort: Cohort) -> Cohort:
    """The slice pairs of each patient's consecutive visits (medcf.data.longitudinal.slice_pairs) as a pair cohort:
    target = the later slice, source = the earlier one, instruction from the two rows (age gap, diagnosis)."""
    rows = {row["id"]: row for row in cohort.records.to_dict("records")}
    pairs = [
        _pair(rows[item["earlier_id"]], rows[item["later_id"]], item["id"])
        for item in slice_pairs(cohort).to_dict("records")
    ]
    if not pairs:
        raise ValueError(f"{cohort.root}: no patient has two visits of known age; pairs need repeat scans")
    return replace(cohort, records=pd.DataFrame(pairs))


def pairs_table(root: str | Path, csv: str | Path = "pairs.csv", *, modality: str = "chest X-ray") -> Cohort:
    """A CSV of pairs under `root`: source_path, target_path, instruction, optional patient_id and clinical columns
    of the target (paths relative to root)."""
    root = Path(root).absolute()
    table = load_table(root / csv, required=["source_path", "target_path", "instruction"])
    records = table.rename(columns={"target_path": "path"}).assign(
        id=[f"pair{index:06d}" for index in range(len(table))],
        source_path=[os.path.normpath(root / path) for path in table["source_path"]],
        source_slice_index=pd.NA,
    )
    if "patient_id" not in records:
        records["patient_id"] = records["id"]
    cohort = Cohort(records, modality=modality, root=root)
    for column, what in (("path", "target image"), ("source_path", "source image")):
        check_files(cohort.records[column], source=root / csv, what=what)
    return cohort


def _pair(source: dict[str, object], target: dict[str, object], name: str) -> dict[str, object]:
    """A pair row: the target's row and id `name`, with the source's file and the instruction between them."""
    return target | {
        "id": name,
        "source_path": source["path"],
        "source_slice_index": source.get("slice_index"),
        "instruction": edit_instruction(source, target),
    }


def _modality(root: Path) -> str:
    """The synthetic cohort's modality from dataset.json (what `medcf synth` wrote), chest X-ray otherwise."""
    card = root / "dataset.json"
    return json.loads(card.read_text()).get("modality", "chest X-ray") if card.is_file() else "chest X-ray"
