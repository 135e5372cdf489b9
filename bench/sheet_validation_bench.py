"""Sample-sheet validation throughput: a 10,000-row CSV, one process run.

    python bench/sheet_validation_bench.py [--rows 10000] [--rounds 3]

Compares the kit's ``read_sheet`` + ``validate_sheet`` (every rule of an 11-column
submission template, every problem collected) with the usual hand-written approach: a
pydantic model built from the same fields, validated row by row from ``csv.DictReader``
(which stops at the first error of a row and knows no uniqueness or cross-field rules).
Prints rows/s and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import sys
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from tracseq_kit.sheets import read_sheet, validate_sheet

# The template of the sheet tests (every field type and rule), with room for 10^6 ids.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sheets"))
_t = importlib.import_module("test_sheets")
FIELDS = [_t.FIELDS[0].model_copy(update={"barcode_pattern": r"S-\d{6}"}), *_t.FIELDS[1:]]
GOOD, HEADER, RULES = _t.GOOD, _t.HEADER, _t.RULES


class NaiveRow(BaseModel):
    sample_id: str = Field(pattern=r"^S-\d+$")
    sample_type: Literal["DNA", "RNA", "Protein"]
    concentration: Decimal | None = Field(default=None, ge=0, le=1000)
    volume_ul: int = 50
    collected_on: date | None = None
    received_at: datetime | None = None
    urgent: bool = False
    tags: str | None = None
    contact: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    protocol_url: str | None = None
    notes: str | None = Field(default=None, max_length=20)


def sheet(rows: int) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER)
    for i in range(rows):
        row = list(GOOD)
        row[0] = f"S-{i:06d}"
        w.writerow(row)
    return out.getvalue().encode()


def kit(data: bytes) -> int:
    report = validate_sheet(FIELDS, read_sheet(data), cross_field_rules=RULES)
    assert report.valid, report.problems[:3]
    return report.rows_checked


def naive(data: bytes) -> int:
    n = 0
    for record in csv.DictReader(io.StringIO(data.decode("utf-8-sig"))):
        try:
            NaiveRow.model_validate({k: (v or None) for k, v in record.items() if v != ""})
        except ValidationError:
            pass
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = sheet(args.rows)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fn in (("tracseq-kit validate_sheet", kit), ("naive pydantic per row", naive)):
            start = time.perf_counter()
            n = fn(data)
            best[name] = max(best.get(name, 0.0), n / (time.perf_counter() - start))
    print(f"{args.rows:,}-row CSV ({len(data):,} bytes), best of {args.rounds}")
    base = best["naive pydantic per row"]
    for name, rate in best.items():
        print(
            f"  {name:30} {rate:12,.0f} rows/s  {args.rows / rate:6.3f} s/sheet  "
            f"{rate / base:5.2f}x naive"
        )


if __name__ == "__main__":
    main()
