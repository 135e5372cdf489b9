"""The test suite's own layout rules."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_test_module_names_are_unique() -> None:
    # pytest's default import mode imports test modules by basename (tests/ has no
    # packages): two test_x.py files in different folders stop the whole collection.
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
