"""Sample sheets: read CSV or XLSX and validate them against a template's fields.

``report = validate_sheet(fields, read_sheet(data), cross_field_rules=rules)`` lists
every problem by row, column and rule, and returns typed rows when the sheet is valid.
The template service uses it on uploads; scripts can use it to check a sheet before
uploading it.
"""

from tracseq_kit.sheets._read import Sheet, read_csv, read_sheet, read_xlsx
from tracseq_kit.sheets._validate import validate_sheet

__all__ = ["Sheet", "read_csv", "read_sheet", "read_xlsx", "validate_sheet"]
