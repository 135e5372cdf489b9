"""Run a module as ``__main__`` in a child of ``tracseq dev`` that dies with its parent.

``python -m tracseq_kit.cli._launch PARENT_PID MODULE [ARGS...]``. On Linux the child
asks the kernel for SIGTERM when its parent dies (even by SIGKILL), so a killed
``tracseq dev`` leaves no service behind; elsewhere it checks the parent once at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import runpy
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        sys.exit(0)


def main() -> None:
    """Launch ``sys.argv[2]`` as ``__main__`` with the remaining arguments."""
    parent, module, *args = sys.argv[1:]
    _die_with_parent(int(parent))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
