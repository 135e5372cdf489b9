from __future__ import annotations

import sys
from pathlib import Path

# Pages that use the typed client run against the example services: make `examples.*`
# and the example tests' serving helper importable.
ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "tests" / "examples"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
