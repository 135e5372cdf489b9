"""Reading sample sheets: CSV (UTF-8, delimiter sniffed) and XLSX (openpyxl)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from tracseq_kit._exceptions import MissingDependencyError, SheetError, SheetTooLargeError

__all__ = ["Sheet", "read_csv", "read_sheet", "read_xlsx"]

XLSX_MAGIC = b"PK\x03\x04"


@dataclass(slots=True)
class Sheet:
    """A header and data rows. Cells are strings (CSV) or typed values (XLSX); a
    formula cell is listed in ``formulas`` as (row, column index) and left empty."""

    header: list[str]
    rows: list[list[Any]]
    formulas: list[tuple[int, int]] = field(default_factory=list)


def read_sheet(
    data: bytes,
    *,
    filename: str | None = None,
    max_bytes: int = 10_485_760,
    max_rows: int = 50_000,
) -> Sheet:
    """Read CSV or XLSX (told apart by content, not by name).

    Raises :class:`~tracseq_kit.SheetTooLargeError` above ``max_bytes`` or
    ``max_rows`` and :class:`~tracseq_kit.SheetError` for an empty or unreadable file.
    """
    if len(data) > max_bytes:
        raise SheetTooLargeError(
            f"the file is {len(data):,} bytes; the limit is {max_bytes:,} bytes"
        )
    if data.startswith(XLSX_MAGIC):
        return read_xlsx(data, max_rows=max_rows)
    if filename and filename.lower().endswith((".xlsx", ".xlsm")):
        raise SheetError(f"{filename} is not a valid XLSX file")
    return read_csv(data, max_rows=max_rows)


def read_csv(data: bytes, *, max_rows: int = 50_000) -> Sheet:
    """Read UTF-8 CSV (a BOM is fine); comma, semicolon or tab delimited."""
    if not data.strip():
        raise SheetError("the file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SheetError(
            f"the file is not UTF-8 (byte 0x{data[exc.start]:02x} at position {exc.start}); "
            "save it as 'CSV UTF-8'"
        ) from None
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise SheetError(f"the file has no header row ({exc})") from None
    rows: list[list[Any]] = []
    try:
        for line in reader:
            if not any(cell.strip() for cell in line):
                continue  # blank lines are not rows
            rows.append(line)
            if len(rows) > max_rows:
                raise SheetTooLargeError(f"the sheet has more than {max_rows:,} rows")
    except csv.Error as exc:
        raise SheetError(f"the CSV is malformed near line {reader.line_num}: {exc}") from None
    return Sheet([h.strip() for h in header], rows)


def read_xlsx(data: bytes, *, sheet_name: str | None = None, max_rows: int = 50_000) -> Sheet:
    """Read the first (or the named) worksheet of an XLSX file with openpyxl."""
    try:
        from openpyxl import load_workbook
    except ImportError as exc:
        raise MissingDependencyError("openpyxl", extra="sheets", purpose="Reading XLSX") from exc
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:
        raise SheetError(f"the file is not a readable XLSX workbook: {exc}") from None
    try:
        if sheet_name is not None and sheet_name not in wb.sheetnames:
            raise SheetError(f"no worksheet named {sheet_name!r}; found {wb.sheetnames}")
        ws = wb[sheet_name] if sheet_name is not None else wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header_row = next(it, None)
        if header_row is None or not any(v is not None for v in header_row):
            raise SheetError("the worksheet is empty")
        header = ["" if v is None else str(v).strip() for v in header_row]
        rows: list[list[Any]] = []
        formulas: list[tuple[int, int]] = []
        for values in it:
            if not any(v is not None and str(v).strip() for v in values):
                continue
            row = list(values)
            for j, v in enumerate(row):
                if isinstance(v, str) and v.startswith("="):
                    formulas.append((len(rows) + 1, j))
                    row[j] = None
            rows.append(row)
            if len(rows) > max_rows:
                raise SheetTooLargeError(f"the sheet has more than {max_rows:,} rows")
        return Sheet(header, rows, formulas)
    finally:
        wb.close()
