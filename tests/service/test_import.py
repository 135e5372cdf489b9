from __future__ import annotations

import subprocess
import sys


def test_missing_server_extra_names_it() -> None:
    code = (
        "import sys\n"
        "sys.modules['fastapi'] = None\n"
        "try:\n"
        "    import tracseq_kit.service\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.startswith("MissingDependencyError")
    assert "pip install 'tracseq-kit[server]'" in out
