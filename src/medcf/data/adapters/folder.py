"""The generic layout: a folder of images plus one CSV row per image (also what `medcf synth` writes).

    root/metadata.csv    id, patient_id, path, [mask_path], [split], clinical columns (canonical or any other)
    root/images/...      paths in the CSV are relative to root (or absolute)

Canonical columns are parsed here, so a bad value is reported with its line: age (years), sex (M/F),
smoking, view and finding columns (1 / 0 / empty). Other columns are carried as text and rendered as
"<field> is <value>" by the prompts. Image and mask sizes are checked when the images are read: a mask
of another size than its image is an error here (it usually means the wrong mask).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from medcf.data.cohort import Cohort, check_files
from medcf.data.table import load_table, parse_column
from medcf.prompts import DEFAULT_VOCABULARY
from medcf.prompts.fields import parse_age, parse_finding, parse_sex, parse_smoking, parse_view

PARSERS: dict[str, Callable[[object], object]] = {
    "age": parse_age,
    "sex": parse_sex,
    "smoking": parse_smoking,
    "view": parse_view,
}


def image_folder(
    root: str | Path,
    csv: str | Path = "metadata.csv",
    *,
    id_column: str = "id",
    path_column: str = "path",
    patient_column: str | None = None,
    mask_column: str | None = None,
    fields: Sequence[str] | None = None,
    modality: str = "chest X-ray",
) -> Cohort:
    """Read `csv` (relative to `root` unless absolute) listing images under `root` into a Cohort.

    `patient_column` / `mask_column` None: the canonical column (patient_id / mask_path) when the table
    has it, else each image is its own patient / there are no masks. `fields` None: every column that
    is not an id, path, patient or mask column.
    """
    root = Path(root)
    csv = root / csv  # an absolute csv stays as it is
    required = [path_column] + [column for column in (patient_column, mask_column) if column]
    table = load_table(csv, required=required, id_column=id_column)
    patient_column = patient_column or ("patient_id" if "patient_id" in table else None)
    mask_column = mask_column or ("mask_path" if "mask_path" in table else None)
    identity = {id_column, path_column, patient_column, mask_column} | DEFAULT_VOCABULARY.identity_fields
    if fields is None:
        fields = [column for column in table.columns if column not in identity]
    elif missing := [field for field in fields if field not in table.columns]:
        raise ValueError(f"{csv}: fields {missing} are not columns (has {list(table.columns)}); fix fields")
    records = pd.DataFrame(
        {
            "id": table[id_column],
            "patient_id": table[patient_column] if patient_column else table[id_column],
            "path": table[path_column],  # Cohort resolves relative paths against root
        }
    )
    if mask_column:
        records["mask_path"] = table[mask_column]
    if "split" in table:  # a split of the user's own (train / validate / test), honoured by training
        records["split"] = table["split"].str.strip().str.lower()
    for field in fields:
        records[field] = _canonical(table, field, csv)
    cohort = Cohort(records, modality=modality, root=root)
    check_files(cohort.records["path"], source=csv)
    if mask_column:
        check_files(cohort.records["mask_path"], source=csv, what="mask")
    return cohort


def _canonical(table: pd.DataFrame, field: str, csv: Path) -> pd.Series:
    """A canonical field parsed to its canonical values (findings as Int64); other fields as text."""
    if field in PARSERS:
        values = parse_column(table, field, PARSERS[field], source=csv)
        return values.astype("Float64") if field == "age" else values
    if field in DEFAULT_VOCABULARY.findings:
        return parse_column(table, field, lambda value: parse_finding(field, value), source=csv).astype("Int64")
    return table[field]
