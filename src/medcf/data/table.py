"""Reading clinical tables (CSV, gzipped CSV, Excel) with one-line errors that name the file and the fix.

Every cell is read as text (`dtype=str`) so that nothing is converted behind the caller's back: ids keep
their leading zeros and each adapter parses numbers, labels and codes explicitly, naming the line of a
bad value. Line numbers count the header as line 1, as a text editor or spreadsheet shows them.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from medcf.prompts import is_missing

EXCEL_SUFFIXES = (".xlsx",)
EXAMPLES_SHOWN = 5  # bad values quoted in an error message; the rest are counted


def load_table(path: str | Path, *, required: Iterable[str] = (), id_column: str | None = None) -> pd.DataFrame:
    """Read a CSV (.csv, .csv.gz) or Excel (.xlsx) table as text; check columns and unique, present ids."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table not found; check the path (or the dataset root it came from)")
    table = _read_excel(path) if path.suffix.lower() in EXCEL_SUFFIXES else _read_csv(path)
    if table.empty:
        raise ValueError(f"{path}: table has a header but no rows; add one row per image or subject")
    required = list(required) + ([id_column] if id_column is not None else [])
    if missing := [column for column in dict.fromkeys(required) if column not in table.columns]:
        raise ValueError(
            f"{path}: missing column(s) {missing}; the table has {list(table.columns)}; "
            "rename the columns or tell the adapter which ones to use"
        )
    if id_column is not None:
        check_ids(table, id_column, source=path)
    return table


def check_ids(table: pd.DataFrame, column: str, *, source: Path) -> None:
    """Ids must be present and unique: every image must be addressable by its id alone."""
    blank = [index for index, value in table[column].items() if is_missing(value)]
    if blank:
        raise ValueError(f"{where(source, blank[0])}: column '{column}' is empty; give every row an id")
    duplicated = table[column][table[column].duplicated()].unique()
    if len(duplicated):
        shown = ", ".join(repr(str(value)) for value in duplicated[:EXAMPLES_SHOWN])
        raise ValueError(
            f"{source}: {len(duplicated)} duplicate value(s) in id column '{column}' (e.g. {shown}); "
            "ids must be unique, one row per image"
        )


def where(source: Path, index: object) -> str:
    """'<file>: line N' for the row with the original (0-based, header-less) index `index`."""
    unit = "row" if source.suffix.lower() in EXCEL_SUFFIXES else "line"
    return f"{source}: {unit} {int(index) + 2}"  # type: ignore[call-overload]


def parse_column(table: pd.DataFrame, column: str, parse: Callable[[object], object], *, source: Path) -> pd.Series:
    """Apply `parse` to every cell of `column`; a ValueError is re-raised naming the file, line and column."""
    values = []
    for index, value in table[column].items():
        try:
            values.append(parse(value))
        except ValueError as error:
            raise ValueError(f"{where(source, index)}, column '{column}': {error}") from None
    return pd.Series(values, index=table.index, dtype=object)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(_read_text(path)), dtype=str)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: file is empty; write a header line and one row per image") from None
    except pd.errors.ParserError as error:
        raise ValueError(f"{path}: not a readable CSV ({error}); check quoting and delimiters") from None


def _read_text(path: Path) -> str:
    """The file's text, strictly UTF-8 (a byte-order mark is allowed, as Excel writes one)."""
    data = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: corrupt gzip file ({error}); download or compress it again") from None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        # No fallback to Latin-1: it would decode anything and silently garble names and labels.
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}: not UTF-8 text (line {line}, byte 0x{data[error.start]:02X}); "
            "re-save the file as UTF-8 (e.g. Excel: Save As → CSV UTF-8)"
        ) from None


def _read_excel(path: Path) -> pd.DataFrame:
    try:
        return pd.read_excel(path, dtype=str, engine="openpyxl")
    except (ValueError, zipfile.BadZipFile) as error:  # an .xlsx workbook is a zip archive of XML parts
        raise ValueError(f"{path}: not a readable .xlsx workbook ({error}); re-save it from Excel") from None
