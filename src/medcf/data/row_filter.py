"""`data.filter`: keep the table rows a filter selects, without eval (grammar: filter_syntax.py).

Example: `smoking == "current" and age >= 40 and sex in ["F", "M"] and not (nodule == 1 or view is missing)`.

Typing rules, checked against the table before any row is selected (numbers compare as 64-bit floats):
- a number column compares with numbers; a text column with quoted text (ordering is alphabetical);
  a true/false column with true/false (== / != / in only). Any other pairing is an error, never a guess.
- a missing cell (NaN, None, NA or "") makes its comparison unknown, as SQL's NULL does: the row is dropped
  whatever `not`s surround it; select such rows with `field is missing`.
"""

from __future__ import annotations

import operator

import numpy as np
import pandas as pd

from .filter_syntax import (
    COMPARISONS,
    And,
    Comparison,
    Membership,
    MissingTest,
    Node,
    Not,
    Or,
    Value,
    parse_row_filter,
)

__all__ = ["parse_row_filter", "select_rows"]


def select_rows(table: pd.DataFrame, row_filter: str) -> pd.Series:
    """Boolean mask (indexed like `table`) of the rows `row_filter` keeps; rows whose test is unknown are dropped."""
    kept = _evaluate(parse_row_filter(row_filter), table, row_filter)
    return pd.Series(kept.fillna(False).to_numpy(dtype=bool), index=table.index)


def _evaluate(node: Node, table: pd.DataFrame, text: str) -> pd.api.extensions.ExtensionArray:
    """Kleene three-valued result (pandas "boolean": True, False or NA for unknown) of one node, row by row."""
    if isinstance(node, Not):
        return ~_evaluate(node.operand, table, text)
    if isinstance(node, And | Or):
        results = [_evaluate(operand, table, text) for operand in node.operands]
        combine = operator.and_ if isinstance(node, And) else operator.or_
        for result in results[1:]:
            results[0] = combine(results[0], result)
        return results[0]
    column = _column(table, node.field, text)
    kind = _kind(column, node.field, text)
    missing = column.isna().to_numpy(dtype=bool, copy=True)
    if kind == "text":
        missing |= (column.astype(object) == "").to_numpy(dtype=bool)
    if isinstance(node, MissingTest):
        return pd.array(missing != node.negated, dtype="boolean")
    return _compare(node, column[~missing], kind, missing, text)


def _compare(
    node: Comparison | Membership, present: pd.Series, kind: str, missing: np.ndarray, text: str
) -> pd.api.extensions.ExtensionArray:
    """The test on the present cells; NA on the missing ones."""
    values = (node.value,) if isinstance(node, Comparison) else node.values
    for value in values:
        _check_type(node, kind, value, text)
    present = present.astype("float64" if kind == "number" else object)  # object: ordered text, any categorical
    if isinstance(node, Comparison):
        hits = COMPARISONS[node.operator](present, node.value)
    else:
        hits = present.isin(values) != node.negated
    result = pd.array(np.zeros(len(missing), dtype=bool), dtype="boolean")
    result[missing] = pd.NA
    result[~missing] = hits.to_numpy(dtype=bool)
    return result


def _column(table: pd.DataFrame, field: str, text: str) -> pd.Series:
    if field not in table.columns:
        columns = ", ".join(str(name) for name in table.columns)
        raise ValueError(f"data.filter={text!r}: unknown field {field!r}; the table's columns are: {columns}")
    column = table[field]
    if isinstance(column, pd.DataFrame):
        raise ValueError(f"data.filter={text!r}: the table has {column.shape[1]} columns named {field!r}; rename them")
    return column


def _kind(column: pd.Series, field: str, text: str) -> str:
    """Which values the column may be compared with: "number", "text" or "boolean"."""
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    present = column[column.notna()].astype(object)
    if all(isinstance(value, str) for value in present):
        return "text"
    if all(isinstance(value, bool | np.bool_) for value in present):
        return "boolean"
    if all(isinstance(value, int | float | np.number) for value in present):
        return "number"
    types = sorted({type(value).__name__ for value in present})
    raise ValueError(f"data.filter={text!r}: column {field!r} mixes {', '.join(types)} values; clean it in the table")


def _check_type(node: Comparison | Membership, kind: str, value: Value, text: str) -> None:
    """The typing rules of the module docstring: a value of the column's kind, ordering only numbers and text."""
    prefix = f"data.filter={text!r}: column {node.field!r}"
    if value == "":
        raise ValueError(f"{prefix}: an empty cell counts as missing; write '{node.field} is missing'")
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{prefix} holds true/false; compare it with true or false, not {_literal(value)}")
        if isinstance(node, Comparison) and node.operator not in ("==", "!="):
            raise ValueError(f"{prefix} holds true/false; compare it with == or !=, not {node.operator}")
    elif kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"{prefix} holds numbers; compare it with a number, not {_literal(value)}")
    elif kind == "text" and not isinstance(value, str):
        raise ValueError(f'{prefix} holds text; quote the value: "{_literal(value)}"')


def _literal(value: Value) -> str:
    """How the value is written in a filter."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)
