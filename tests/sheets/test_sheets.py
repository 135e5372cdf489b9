"""Reading and validating sample sheets: every type and rule, CSV and XLSX."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from tracseq_kit import SheetError, SheetTooLargeError
from tracseq_kit.schemas import CrossFieldRule, FieldDefinition
from tracseq_kit.sheets import read_sheet, validate_sheet

FIELDS = [
    FieldDefinition(
        name="sample_id",
        type="barcode",
        barcode_pattern=r"S-\d{4}",
        required=True,
        order=0,
        rules={"unique": True},
    ),
    FieldDefinition(
        name="sample_type", type="enum", options=["DNA", "RNA", "Protein"], required=True, order=1
    ),
    FieldDefinition(
        name="concentration",
        type="decimal",
        unit="ng/ul",
        order=2,
        rules={"min_value": 0, "max_value": 1000},
    ),
    FieldDefinition(name="volume_ul", type="integer", order=3, default=50),
    FieldDefinition(name="collected_on", type="date", order=4),
    FieldDefinition(name="received_at", type="datetime", order=5),
    FieldDefinition(name="urgent", type="boolean", order=6, default=False),
    FieldDefinition(name="tags", type="multi_enum", options=["wgs", "rna-seq", "qc"], order=7),
    FieldDefinition(name="contact", type="email", order=8),
    FieldDefinition(name="protocol_url", type="url", order=9),
    FieldDefinition(
        name="notes",
        label="Notes",
        type="text",
        order=10,
        rules={"max_length": 20, "pattern": r"[^<>]*"},
    ),
]
RULES = [CrossFieldRule(when_field="sample_type", equals=["DNA"], then_required=["concentration"])]
HEADER = [f.name for f in FIELDS]
GOOD = [
    "S-0001",
    "DNA",
    "12.5",
    "40",
    "2024-05-31",
    "2024-06-01T09:30:00",
    "yes",
    "wgs;qc",
    "lab@example.org",
    "https://protocols.example.org/p/1",
    "fragile",
]


def csv_bytes(rows: list[list[str]], header: list[str] = HEADER, delimiter: str = ",") -> bytes:
    out = io.StringIO()
    w = csv.writer(out, delimiter=delimiter)
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode()


def check(data: bytes) -> Any:
    return validate_sheet(FIELDS, read_sheet(data), cross_field_rules=RULES)


def test_a_good_sheet_gives_typed_rows() -> None:
    report = check(csv_bytes([GOOD]))
    assert report.valid, report.problems
    (row,) = report.rows
    assert row["sample_id"] == "S-0001"
    assert row["concentration"] == Decimal("12.5")
    assert row["volume_ul"] == 40
    assert row["collected_on"] == date(2024, 5, 31)
    assert row["received_at"] == datetime(2024, 6, 1, 9, 30)
    assert row["urgent"] is True
    assert row["tags"] == ["wgs", "qc"]


def test_defaults_fill_empty_optional_cells_and_semicolons_are_sniffed() -> None:
    row = list(GOOD)
    row[3] = ""
    row[6] = ""
    report = check(csv_bytes([row], delimiter=";"))
    assert report.valid
    assert report.rows[0]["volume_ul"] == 50 and report.rows[0]["urgent"] is False


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("sample_id", "X-1", "barcode_pattern"),
        ("sample_type", "Plasma", "options"),
        ("concentration", "lots", "type"),
        ("concentration", "-1", "min_value"),
        ("concentration", "5000", "max_value"),
        ("volume_ul", "1.5", "type"),
        ("collected_on", "31/05/2024", "type"),
        ("received_at", "yesterday", "type"),
        ("urgent", "maybe", "type"),
        ("tags", "wgs;dance", "options"),
        ("contact", "not-an-email", "type"),
        ("protocol_url", "ftp://x", "type"),
        ("notes", "x" * 21, "max_length"),
        ("notes", "<script>", "pattern"),
        ("sample_type", "", "required"),
    ],
)
def test_every_rule_reports_row_column_and_rule(column: str, value: str, rule: str) -> None:
    row = list(GOOD)
    row[0] = "S-0002"  # unique ids, so only the rule under test fails
    row[HEADER.index(column)] = value
    report = check(csv_bytes([GOOD, row]))
    assert not report.valid and report.rows is None
    assert [(p.row, p.column, p.rule) for p in report.problems] == [(2, column, rule)]


def test_unique_and_cross_field_rules() -> None:
    dup = list(GOOD)
    no_conc = list(GOOD)
    no_conc[0], no_conc[2] = "S-0002", ""
    rna = list(no_conc)
    rna[0], rna[1] = "S-0003", "RNA"  # concentration only required for DNA
    report = check(csv_bytes([GOOD, dup, no_conc, rna]))
    assert [(p.row, p.rule) for p in report.problems] == [(2, "unique"), (3, "cross_field")]


def test_header_problems() -> None:
    header = [*HEADER[1:], "mystery", "sample_type"]
    report = check(csv_bytes([[*GOOD[1:], "x", "DNA"]], header=header))
    rules = sorted(p.rule for p in report.header_problems)
    assert rules == ["duplicated_column", "missing_column", "unknown_column"]
    assert not report.valid


def test_labels_are_accepted_as_headers() -> None:
    header = [f.label for f in FIELDS]
    assert check(csv_bytes([GOOD], header=header)).valid


def test_every_problem_is_listed() -> None:
    bad = ["X", "Plasma", "lots", "1.5", "x", "x", "maybe", "dance", "x", "x", "<" * 30]
    report = check(csv_bytes([bad, bad]))
    assert len(report.problems) == 2 * 11


def test_unreadable_files_get_clear_errors() -> None:
    with pytest.raises(SheetError, match="empty"):
        read_sheet(b"  \n")
    with pytest.raises(SheetError, match="not UTF-8"):
        read_sheet("sample_id\nS-0001 é".encode("latin-1"))
    with pytest.raises(SheetTooLargeError, match="limit"):
        read_sheet(b"x" * 100, max_bytes=10)
    with pytest.raises(SheetTooLargeError, match="more than 2 rows"):
        read_sheet(csv_bytes([GOOD] * 3), max_rows=2)
    with pytest.raises(SheetError, match="not a valid XLSX"):
        read_sheet(b"hello", filename="sheet.xlsx")
    with pytest.raises(SheetError, match="not a readable XLSX"):
        read_sheet(b"PK\x03\x04garbage")
    assert read_sheet("\ufeffsample_id\nS-0001\n".encode()).header == ["sample_id"]


def xlsx_bytes(rows: list[list[Any]], header: list[str] = HEADER) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(header)
    for r in rows:
        ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_xlsx_with_native_types() -> None:
    row: list[Any] = [
        "S-0001",
        "DNA",
        12.5,
        40,
        date(2024, 5, 31),
        datetime(2024, 6, 1, 9, 30),
        True,
        "wgs",
        "lab@example.org",
        "https://x.org",
        "ok",
    ]
    report = check(xlsx_bytes([row]))
    assert report.valid, report.problems
    assert report.rows[0]["collected_on"] == date(2024, 5, 31)
    assert report.rows[0]["concentration"] == Decimal("12.5")


def test_xlsx_formula_cells_are_refused() -> None:
    row: list[Any] = list(GOOD)
    row[2] = "=1+2"
    report = check(xlsx_bytes([row]))
    assert [(p.row, p.column, p.rule) for p in report.problems] == [(1, "concentration", "formula")]
    with pytest.raises(SheetError, match="empty"):
        read_sheet(xlsx_bytes([], header=[]))


samples = st.fixed_dictionaries(
    {
        "sample_type": st.sampled_from(["DNA", "RNA", "Protein"]),
        "concentration": st.decimals(0, 1000, places=2, allow_nan=False),
        "volume_ul": st.integers(0, 10_000),
        "collected_on": st.dates(date(2000, 1, 1), date(2030, 1, 1)),
        "urgent": st.booleans(),
        "tags": st.lists(st.sampled_from(["wgs", "rna-seq", "qc"]), min_size=1, max_size=3),
    }
)


@settings(max_examples=100)
@given(st.lists(samples, min_size=1, max_size=20))
def test_any_valid_typed_rows_round_trip_through_csv(rows: list[dict[str, Any]]) -> None:
    header = ["sample_id", *samples_keys()]
    lines = []
    for i, r in enumerate(rows):
        lines.append(
            [
                f"S-{i:04d}",
                r["sample_type"],
                str(r["concentration"]),
                str(r["volume_ul"]),
                r["collected_on"].isoformat(),
                "yes" if r["urgent"] else "no",
                ";".join(r["tags"]),
            ]
        )
    report = check(csv_bytes(lines, header=header))
    assert report.valid, report.problems
    for got, want in zip(report.rows, rows, strict=True):
        for key, value in want.items():
            assert got[key] == value


def samples_keys() -> list[str]:
    return ["sample_type", "concentration", "volume_ul", "collected_on", "urgent", "tags"]


@settings(max_examples=100)
@given(
    st.lists(
        st.lists(st.text(max_size=12), min_size=len(HEADER), max_size=len(HEADER)),
        min_size=1,
        max_size=10,
    )
)
def test_any_cell_content_is_reported_never_raised(rows: list[list[str]]) -> None:
    from tracseq_kit.sheets import Sheet

    report = validate_sheet(
        FIELDS, Sheet(list(HEADER), [list(r) for r in rows]), cross_field_rules=RULES
    )
    assert report.rows_checked == len(rows)
    assert report.valid == (not report.problems)
    for p in report.problems:
        assert 1 <= (p.row or 0) <= len(rows) and p.column in HEADER


def test_bad_xlsx_cells_are_reported_like_csv_ones() -> None:
    row: list[Any] = [
        "S-1",
        "Plasma",
        "lots",
        1.5,
        "31/05/2024",
        "x",
        "maybe",
        "dance",
        "nope",
        "ftp://x",
        "<b>",
    ]
    report = check(xlsx_bytes([row]))
    assert sorted(p.column for p in report.problems) == sorted(HEADER)
