"""The ``tracseq`` command.

- ``tracseq dev``: the local development stack on embedded servers, until Ctrl-C.
- ``tracseq health``: the gateway's (or a service's) health report.
- ``tracseq templates list|show|create|publish|validate``: sample-sheet templates.
- ``tracseq events query|tail|publish|replay``: the event store;
  ``tracseq events schemas|check-compat``: event contracts of a registry (no server).

The API commands use :class:`~tracseq_kit.client.TracSeqClient` and take ``--base-url``
(``$TRACSEQ_BASE_URL``, default the local gateway), ``--token`` (``$TRACSEQ_API_TOKEN``),
``--timeout``, ``--json`` (machine-readable output on stdout) and ``--debug`` (a
traceback with errors), before or after the subcommand. Errors are one line on stderr.
Exit statuses are the :class:`ExitCode` values, stable for scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from enum import IntEnum

from tracseq_kit._exceptions import (
    APIConnectionError,
    APIStatusError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    TracSeqError,
)
from tracseq_kit._version import __version__

__all__ = ["ExitCode", "main"]

Handler = Callable[[argparse.Namespace], int]


class ExitCode(IntEnum):
    """What ``tracseq`` exits with; scripts may rely on these values.

    - ``OK`` (0): done; a sheet is valid; the stack is healthy
    - ``FAILED`` (1): the answer is negative: an invalid sheet, an unhealthy stack, a
      failed replay, or an error of the command itself
    - ``USAGE`` (2): bad arguments or input files (nothing was sent)
    - ``UNREACHABLE`` (3): no answer: connection refused, timeout, deadline, open breaker
    - ``CLIENT_ERROR`` (4): the server refused the request (4xx: not found, conflict,
      invalid, unauthorised, rate-limited)
    - ``SERVER_ERROR`` (5): the server failed (5xx) after the client's retries
    - ``INTERRUPTED`` (130): stopped with Ctrl-C
    """

    OK = 0
    FAILED = 1
    USAGE = 2
    UNREACHABLE = 3
    CLIENT_ERROR = 4
    SERVER_ERROR = 5
    INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tracseq`` command line; return the process exit status (see :class:`ExitCode`)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("tracseq: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `tracseq events query | head`: the reader left, not an error
        with contextlib.suppress(OSError, ValueError):  # no failing flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except TracSeqError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"tracseq: error: {exc}", file=sys.stderr)
        return _exit_code(exc)


def _exit_code(exc: TracSeqError) -> ExitCode:
    if isinstance(exc, ConfigurationError):
        return ExitCode.USAGE
    if isinstance(exc, APIConnectionError | DeadlineExceededError | CircuitOpenError):
        return ExitCode.UNREACHABLE
    if isinstance(exc, APIStatusError):
        return ExitCode.SERVER_ERROR if exc.status >= 500 else ExitCode.CLIENT_ERROR
    return ExitCode.FAILED


def _build_parser() -> argparse.ArgumentParser:
    from tracseq_kit.cli._api import add_api_commands, client_options
    from tracseq_kit.cli._dev import add_dev

    parser = argparse.ArgumentParser(
        prog="tracseq",
        description="Tools for TracSeq services built with tracseq-kit.",
        epilog="exit statuses: 0 ok, 1 negative answer (invalid sheet, unhealthy), 2 usage, "
        "3 unreachable or timed out, 4 refused by the server (4xx), 5 server error (5xx), "
        "130 interrupted",
        parents=[client_options()],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_dev(subparsers)
    add_api_commands(subparsers)
    return parser


if __name__ == "__main__":
    sys.exit(main())
