"""data.filter: our own grammar selects rows like plain pandas indexing and runs nothing from the config."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcf.data.filter_syntax import And, Comparison, Membership, MissingTest, Not, Or
from medcf.data.row_filter import parse_row_filter, select_rows

EXPLOIT = (
    "smoking.str.replace('^.*$', \"__import__('os').system('touch X')\", regex=True)"
    ".apply(age.__class__.__init__.__globals__.get('__builtins__').get('exec')).isna()"
)


@pytest.fixture
def table() -> pd.DataFrame:
    """Cohort-like columns: nullable numbers, text with a NaN and an empty cell, flags, a spaced name, booleans."""
    return pd.DataFrame(
        {
            "age": pd.array([60, None, 30, 45, 71, 18], dtype="Float64"),
            "smoking": ["current", None, "", "never", "former", "current"],
            "sex": ["F", "M", "F", "M", "F", "M"],
            "nodule": pd.array([1, 0, None, 1, 0, 0], dtype="Int64"),
            "weight": [70.5, np.nan, 80.0, 55.0, 90.0, 62.5],
            "Patient Age": [60, 40, 30, 45, 71, 18],
            "consent": [True, False, True, False, True, True],
        }
    )


def test_the_issue_exploit_is_refused_and_runs_nothing(
    table: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"unexpected '\.' at character 8") as error:
        select_rows(table, EXPLOIT)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "X").exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "row_filter",
    [
        "smoking.str.len() > 0",  # string methods
        "age.__class__ == 1",  # attribute access
        "len(smoking) > 0",  # calls
        "__class__ == 1",  # dunder names
        "`__globals__` == 1",
        "smoking[0] == 'c'",  # subscripts
        "age == @limit",  # pandas' local variables
        "(lambda: 1)() == 1",
        "lambda x: x",
        "age + 1 > 40",  # arithmetic
        "age * 2 > 40",
        "age > 40 - 1",
        "age ** 2 > 40",
        "age > 40 & sex == 'F'",  # pandas' bitwise operators
        "~(age > 40)",
        "age = 40",
        "smoking == 'current' if age > 40 else True",
        "[age][0] > 40",
        "1 < age < 50",
        "age > 40 sex == 'F'",
        "age in []",
        "age is None",
        "age == True",  # Python's spelling of true
        "",
        "()",
        "not",
        "(age > 40",
        "age > 40)",
        "'x' == smoking",
    ],
)
def test_anything_outside_the_grammar_is_a_syntax_error(row_filter: str) -> None:
    with pytest.raises(ValueError, match=r"^data\.filter=.*at character \d+.*; e\.g\. 'smoking == ") as error:
        parse_row_filter(row_filter)
    assert "\n" not in str(error.value)


def test_a_syntax_error_names_the_position_and_an_example() -> None:
    with pytest.raises(ValueError) as error:
        parse_row_filter("smoking == ")
    assert str(error.value) == (
        "data.filter='smoking == ': expected a value (number, 'text', true or false) after '==', "
        "found the end of the filter at character 12; e.g. 'smoking == \"current\" and age >= 40'"
    )


def _present(column: pd.Series) -> pd.Series:
    """Plain pandas: a cell that is neither NA nor empty text."""
    return column.notna() & (column.astype(object) != "")


EXPECTED = {  # filter -> the same selection written as plain boolean indexing (missing cells never match)
    "age > 40": lambda t: _present(t.age) & (t.age > 40),
    "age >= 45 and age <= 60": lambda t: _present(t.age) & (t.age >= 45) & (t.age <= 60),
    "age != 60": lambda t: _present(t.age) & (t.age != 60),
    "age < -1e3 or age > 7.05e1": lambda t: _present(t.age) & ((t.age < -1000) | (t.age > 70.5)),
    "weight == 70.5": lambda t: t.weight == 70.5,
    "nodule == 1": lambda t: _present(t.nodule) & (t.nodule == 1),
    "smoking == 'current'": lambda t: t.smoking == "current",
    'smoking != "never"': lambda t: _present(t.smoking) & (t.smoking != "never"),
    "smoking < 'd'": lambda t: _present(t.smoking) & (t.smoking.astype(object).fillna("zz") < "d"),
    "sex == 'F' and age > 40": lambda t: (t.sex == "F") & _present(t.age) & (t.age > 40),
    "`Patient Age` >= 45": lambda t: t["Patient Age"] >= 45,
    "consent == true": lambda t: t.consent,
    "consent != true": lambda t: ~t.consent,
    "consent in [false]": lambda t: ~t.consent,
    "smoking in ['current', 'former']": lambda t: t.smoking.isin(["current", "former"]),
    "smoking not in ['current', 'former']": lambda t: _present(t.smoking) & ~t.smoking.isin(["current", "former"]),
    "age in [60, 18.0]": lambda t: t.age.isin([60, 18]).fillna(False),
    "age not in [60]": lambda t: _present(t.age) & (t.age != 60),
    "smoking is missing": lambda t: ~_present(t.smoking),
    "smoking is not missing": lambda t: _present(t.smoking),
    "age is missing or nodule is missing": lambda t: t.age.isna() | t.nodule.isna(),
    "not smoking == 'current'": lambda t: _present(t.smoking) & (t.smoking != "current"),
    "not not sex == 'M'": lambda t: t.sex == "M",
    "not (age > 40 or sex == 'M')": lambda t: _present(t.age) & ~(t.age > 40) & (t.sex != "M"),
    # not > and > or: `not a or b and c` is `(not a) or (b and c)`
    "not sex == 'M' or age > 40 and nodule == 1": lambda t: (
        (t.sex == "F") | (_present(t.age) & (t.age > 40) & _present(t.nodule) & (t.nodule == 1))
    ),
    "(not sex == 'M' or age > 40) and nodule == 1": lambda t: (
        ((t.sex == "F") | (_present(t.age) & (t.age > 40))) & _present(t.nodule) & (t.nodule == 1)
    ),
    "sex=='F'and(age>40)": lambda t: (t.sex == "F") & _present(t.age) & (t.age > 40),
}


@pytest.mark.parametrize("row_filter", list(EXPECTED))
def test_valid_filters_select_what_plain_pandas_indexing_selects(table: pd.DataFrame, row_filter: str) -> None:
    expected = EXPECTED[row_filter](table).fillna(False).astype(bool)
    kept = select_rows(table, row_filter)
    assert kept.dtype == bool and kept.index.equals(table.index)
    assert kept.tolist() == expected.tolist()


def test_a_missing_cell_is_unknown_whatever_the_nots(table: pd.DataFrame) -> None:
    unknown = [1, 2]  # smoking is None in row 1 and "" in row 2; age is NA in row 1
    for row_filter in (
        "smoking == 'never'",
        "not smoking == 'never'",
        "smoking != 'never'",
        "smoking not in ['never']",
        "not (smoking != 'never' and age > 0)",
    ):
        assert not select_rows(table, row_filter)[unknown].any(), row_filter
    assert select_rows(table, "smoking is missing")[unknown].all()
    assert select_rows(table, "age is missing or age > 1000").tolist() == [False, True, False, False, False, False]


def test_precedence_builds_the_expected_tree() -> None:
    tree = parse_row_filter("not a == 1 or b in [2, 'x'] and c is not missing")
    assert tree == Or((Not(Comparison("a", "==", 1)), And((Membership("b", (2, "x"), False), MissingTest("c", True)))))
    assert parse_row_filter("not (a == 1 or b == true)") == Not(
        Or((Comparison("a", "==", 1), Comparison("b", "==", True)))
    )
    assert parse_row_filter("`Patient Age` not in [-1.5]") == Membership("Patient Age", (-1.5,), True)


def test_an_unknown_field_lists_the_columns(table: pd.DataFrame) -> None:
    with pytest.raises(ValueError) as error:
        select_rows(table, "smoker == 'current'")
    assert str(error.value) == (
        "data.filter=\"smoker == 'current'\": unknown field 'smoker'; "
        "the table's columns are: age, smoking, sex, nodule, weight, Patient Age, consent"
    )


@pytest.mark.parametrize(
    ("row_filter", "message"),
    [
        ("age > '40'", "column 'age' holds numbers; compare it with a number, not '40'"),
        ("age == true", "column 'age' holds numbers; compare it with a number, not true"),
        ("smoking > 3", "column 'smoking' holds text; quote the value: \"3\""),
        ("smoking in ['never', 1]", "column 'smoking' holds text; quote the value: \"1\""),
        ("consent == 1", "column 'consent' holds true/false; compare it with true or false, not 1"),
        ("consent < true", "column 'consent' holds true/false; compare it with == or !=, not <"),
        ("smoking == ''", "column 'smoking': an empty cell counts as missing; write 'smoking is missing'"),
    ],
)
def test_values_must_match_the_column_kind(table: pd.DataFrame, row_filter: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^data\.filter=.*: {re.escape(message)}$"):
        select_rows(table, row_filter)


def test_hostile_sizes_are_syntax_errors_not_crashes(table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="nested deeper than 50 levels"):
        parse_row_filter("(" * 10_000 + "age > 1" + ")" * 10_000)
    with pytest.raises(ValueError, match="nested deeper than 50 levels"):
        parse_row_filter("not " * 10_000 + "age > 1")
    long_chain = " or ".join(["age > 1"] * 2_000)  # past the recursion limit if it were a nested tree
    assert select_rows(table, long_chain).tolist() == select_rows(table, "age > 1").tolist()
    assert select_rows(table, "age < " + "9" * 5000).sum() == 5  # read as a float (inf), not a 5000-digit int


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
def test_any_printable_string_parses_or_raises_value_error(text: str) -> None:
    try:
        parse_row_filter(text)
    except ValueError as error:
        assert "\n" not in str(error)


WORDS = ["age", "smoking", "consent", "`Patient Age`", "x", "==", "<", ">=", "!=", "in", "not", "is", "missing",
         "and", "or", "(", ")", "[", "]", ",", "1", "-2.5", "'current'", '"F"', "true", "false", "''"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=12))
def test_any_token_soup_selects_rows_or_raises_value_error(words: list[str]) -> None:
    table = pd.DataFrame({"age": [60.0, np.nan], "smoking": ["current", ""], "consent": [True, False]})
    table["Patient Age"] = [1, 2]
    try:
        kept = select_rows(table, " ".join(words))
    except ValueError as error:
        assert "\n" not in str(error)
    else:
        assert kept.dtype == bool and len(kept) == 2
