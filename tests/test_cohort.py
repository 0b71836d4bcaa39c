"""Cohort validation, patient-level splits, and table reading with one-line errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from medcf.data import Cohort, split_by_patient
from medcf.data.table import load_table, parse_column
from medcf.prompts.fields import parse_age


def make_cohort(root: Path, patients: list[str]) -> Cohort:
    records = pd.DataFrame(
        {
            "id": [f"img{i}" for i in range(len(patients))],
            "patient_id": patients,
            "path": [f"images/img{i}.png" for i in range(len(patients))],
            "age": [float(50 + i) for i in range(len(patients))],
        }
    )
    return Cohort(records, modality="chest X-ray", root=root)


# --- Cohort ---------------------------------------------------------------------------------------


def test_cohort_normalises_paths_ids_and_slice_index(tmp_path):
    records = pd.DataFrame({"id": [1, 2], "patient_id": [7, 7], "path": ["a.png", str(tmp_path / "b.png")]})
    cohort = Cohort(records, modality="chest X-ray", root=str(tmp_path))
    assert list(cohort.records["path"]) == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert list(cohort.records["id"]) == ["1", "2"] and list(cohort.records["patient_id"]) == ["7", "7"]
    assert str(cohort.records["slice_index"].dtype) == "Int64" and cohort.records["slice_index"].isna().all()
    assert len(cohort) == 2 and not cohort.has_masks and cohort.root == tmp_path
    assert "2 images of 1 patients" in repr(cohort)
    assert list(records["path"]) == ["a.png", str(tmp_path / "b.png")]  # the caller's frame is untouched


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (pd.DataFrame({"id": ["a"], "path": ["a.png"]}), r"lacks column\(s\) \['patient_id'\]"),
        (pd.DataFrame({"id": [], "patient_id": [], "path": []}), "has no images"),
        (
            pd.DataFrame({"id": ["a", "a"], "patient_id": ["p", "q"], "path": ["a", "b"]}),
            "duplicate image id.*'a'",
        ),
        (
            pd.DataFrame({"id": ["a", "b"], "patient_id": ["p", None], "path": ["a", "b"]}),
            "lack a patient_id.*b",
        ),
        (
            pd.DataFrame({"id": ["a"], "patient_id": ["p"], "path": ["a"], "mask_path": [None]}),
            "lack a mask_path.*drop the mask column",
        ),
        (
            pd.DataFrame({"id": ["a"], "patient_id": ["p"], "path": ["a"], "slice_index": ["x"]}),
            "whole numbers",
        ),
    ],
)
def test_cohort_rejects_bad_tables_naming_the_root(tmp_path, records, message):
    with pytest.raises(ValueError, match=message) as error:
        Cohort(records, modality="chest X-ray", root=tmp_path)
    assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)


# --- split_by_patient -------------------------------------------------------------------------------


def test_split_keeps_each_patient_in_one_split_and_covers_the_cohort(tmp_path):
    patients = [f"p{i // 3}" for i in range(60)]  # 20 patients, 3 images each
    parts = split_by_patient(make_cohort(tmp_path, patients), seed=3)
    assert list(parts) == ["train", "val", "test"]
    seen = [set(part.records["patient_id"]) for part in parts.values()]
    assert sum(len(s) for s in seen) == 20 and set.union(*seen) == set(patients)
    assert [len(s) for s in seen] == [16, 2, 2]
    assert sum(len(part) for part in parts.values()) == 60
    assert all((part.records["split"] == name).all() for name, part in parts.items())
    assert all(list(part.records.index) == list(range(len(part))) for part in parts.values())


def test_a_relative_root_keeps_image_paths_through_select_and_split(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cohort = make_cohort(Path("data/cxr"), [f"p{i}" for i in range(10)])
    expected = {str(tmp_path / "data" / "cxr" / "images" / f"img{i}.png") for i in range(10)}
    assert set(cohort.records["path"]) == expected
    parts = split_by_patient(cohort.select([True] * 10), {"train": 0.8, "holdout": 0.2}, seed=0)
    assert set().union(*(set(part.records["path"]) for part in parts.values())) == expected


def test_split_is_deterministic_in_the_seed_and_independent_of_row_order(tmp_path):
    patients = [f"p{i}" for i in range(30)]
    cohort = make_cohort(tmp_path, patients)
    shuffled = Cohort(cohort.records.sample(frac=1, random_state=1), modality="chest X-ray", root=tmp_path)

    def ids(result: dict[str, Cohort]) -> dict[str, set[str]]:
        return {name: set(part.records["id"]) for name, part in result.items()}

    assert ids(split_by_patient(cohort, seed=5)) == ids(split_by_patient(shuffled, seed=5))
    assert ids(split_by_patient(cohort, seed=5)) != ids(split_by_patient(cohort, seed=6))


def test_split_gives_every_part_a_patient_when_there_are_enough(tmp_path):
    parts = split_by_patient(make_cohort(tmp_path, ["a", "b", "c"]), {"train": 0.9, "val": 0.05, "test": 0.05})
    assert [len(part) for part in parts.values()] == [1, 1, 1]
    with pytest.raises(ValueError, match="2 patient.*3 non-empty splits"):
        split_by_patient(make_cohort(tmp_path, ["a", "b", "a"]))


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({}, "empty"),
        ({"train": 0.8, "val": 0.1}, "sum to 0.9"),
        ({"train": 1.0, "val": 0.0}, "'val' has fraction 0"),
        ({"train": 1.2, "val": -0.2}, "'train' has fraction 1.2"),
    ],
)
def test_split_rejects_bad_fractions(tmp_path, fractions, message):
    with pytest.raises(ValueError, match=message):
        split_by_patient(make_cohort(tmp_path, [f"p{i}" for i in range(10)]), fractions)


# --- load_table ---------------------------------------------------------------------------------------


def test_load_table_reads_text_cells_from_csv_gzip_and_xlsx(tmp_path):
    frame = pd.DataFrame({"id": ["007", "008"], "age": ["63", ""]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress((tmp_path / "t.csv").read_bytes()))
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    for name in ("t.csv", "t.csv.gz", "t.xlsx"):
        table = load_table(tmp_path / name, required=["age"], id_column="id")
        assert list(table["id"]) == ["007", "008"], name  # text: leading zeros kept
        assert table.loc[0, "age"] == "63" and pd.isna(table.loc[1, "age"])


def test_load_table_accepts_a_utf8_byte_order_mark(tmp_path):
    (tmp_path / "t.csv").write_bytes("\ufeffid,sex\nä,F\n".encode())
    assert list(load_table(tmp_path / "t.csv", id_column="id").columns) == ["id", "sex"]


def test_load_table_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv: table not found"):
        load_table(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv: file is empty"):
        load_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("id,path\n")
    with pytest.raises(ValueError, match="header.csv: table has a header but no rows"):
        load_table(tmp_path / "header.csv")
    (tmp_path / "t.csv").write_text("id,pth\na,x.png\n")
    with pytest.raises(ValueError, match=r"t.csv: missing column\(s\) \['path'\]; the table has \['id', 'pth'\]"):
        load_table(tmp_path / "t.csv", required=["path"], id_column="id")
    (tmp_path / "bad.xlsx").write_text("not a workbook")
    with pytest.raises(ValueError, match="bad.xlsx: not a readable .xlsx workbook"):
        load_table(tmp_path / "bad.xlsx")


def test_load_table_lists_duplicate_and_blank_ids(tmp_path):
    (tmp_path / "t.csv").write_text("id,age\na,1\nb,2\na,3\nb,4\nc,5\n")
    with pytest.raises(ValueError, match=r"t.csv: 2 duplicate value\(s\) in id column 'id' \(e.g. 'a', 'b'\)"):
        load_table(tmp_path / "t.csv", id_column="id")
    (tmp_path / "u.csv").write_text("id,age\na,1\n,2\n")
    with pytest.raises(ValueError, match="u.csv: line 3: column 'id' is empty"):
        load_table(tmp_path / "u.csv", id_column="id")


def test_load_table_rejects_non_utf8_with_line_and_byte(tmp_path):
    (tmp_path / "latin.csv").write_bytes("id,name\na,Jose\nb,Jos\xe9\n".encode("latin-1"))
    with pytest.raises(
        ValueError, match=r"latin.csv: not UTF-8 text \(line 3, byte 0xE9\); re-save the file as UTF-8"
    ):
        load_table(tmp_path / "latin.csv")


def test_parse_column_names_the_line_of_a_non_numeric_age(tmp_path):
    (tmp_path / "t.csv").write_text("id,age\na,63\nb,sixty\n")
    table = load_table(tmp_path / "t.csv", id_column="id")
    with pytest.raises(ValueError, match=r"t.csv: line 3, column 'age': age value 'sixty' is not a number"):
        parse_column(table, "age", parse_age, source=tmp_path / "t.csv")
    assert list(parse_column(table.iloc[:1], "age", parse_age, source=tmp_path / "t.csv")) == [63.0]
