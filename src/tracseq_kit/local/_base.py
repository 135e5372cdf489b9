"""What every embedded server shares: lifecycle, temporary directory, timing, errors."""

from __future__ import annotations

import abc
import contextlib
import importlib.util
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

import anyio
import anyio.lowlevel
import anyio.to_thread

from tracseq_kit._exceptions import (
    ConfigurationError,
    EmbeddedServerError,
    MissingDependencyError,
)

logger = logging.getLogger("tracseq_kit.local")

_STOP_GRACE_SECONDS = 10.0


class EmbeddedServer(abc.ABC):
    """A real server run on this machine for local runs and tests; no Docker needed.

    Use it as a context manager, sync (``with``) or async (``async with``; the slow
    parts run in a worker thread so the event loop never blocks)::

        async with EmbeddedPostgres() as pg:
            conn = await asyncpg.connect(pg.url)

    :meth:`start` raises :class:`~tracseq_kit.MissingDependencyError` when the extra
    ``tracseq-kit[local]`` is not installed and :class:`~tracseq_kit.EmbeddedServerError`
    (with the tail of the server's log) when the server does not come up within
    ``start_timeout`` seconds. :meth:`stop` stops the server and deletes its temporary
    directory; it is idempotent.
    """

    #: Human-readable server name used in logs and errors.
    kind: ClassVar[str]
    #: Module that must be importable, and the distribution that provides it.
    _requires: ClassVar[tuple[str, str]]

    def __init__(self, *, start_timeout: float = 30.0) -> None:
        if start_timeout <= 0:
            raise ConfigurationError(f"start_timeout must be positive, got {start_timeout!r}")
        self.start_timeout = start_timeout
        self._url: str | None = None
        self._workdir: Path | None = None
        self._spawned = False

    @property
    def url(self) -> str:
        """The connection URL; raises :class:`EmbeddedServerError` before :meth:`start`."""
        if self._url is None:
            raise EmbeddedServerError(f"the embedded {self.kind} server is not running")
        return self._url

    @property
    def running(self) -> bool:
        """Whether :meth:`start` succeeded and :meth:`stop` has not been called since."""
        return self._url is not None

    def start(self) -> str:
        """Start the server, block until it accepts connections, return its URL."""
        self._spawn()
        return self._finish_start()

    def stop(self) -> None:
        """Stop the server and delete its temporary directory (idempotent)."""
        if not self._spawned:
            return
        self._spawned = False
        self._url = None
        began = time.monotonic()
        try:
            self._stop_server()
        finally:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
        logger.info("stopped embedded %s in %.3f s", self.kind, time.monotonic() - began)

    # -- the two halves of start(): spawning is fast and happens in the caller's
    # thread (so a child process's parent-death signal is tied to a long-lived
    # thread); waiting for readiness is slow and may run in a worker thread.

    def _spawn(self) -> None:
        if self._spawned:
            raise EmbeddedServerError(f"the embedded {self.kind} server is already started")
        module, distribution = self._requires
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                distribution, extra="local", purpose=f"The embedded {self.kind} server"
            )
        self._began = time.monotonic()
        self._workdir = Path(tempfile.mkdtemp(prefix=f"tracseq-{self.kind.lower()}-"))
        self._spawned = True
        try:
            self._spawn_server(self._workdir)
        except BaseException:
            self.stop()
            raise

    def _finish_start(self) -> str:
        assert self._workdir is not None
        deadline = self._began + self.start_timeout
        try:
            url = self._wait_until_ready(self._workdir, deadline)
        except BaseException:
            self.stop()
            raise
        self._url = url
        logger.info(
            "started embedded %s in %.3f s at %s", self.kind, time.monotonic() - self._began, url
        )
        return url

    @abc.abstractmethod
    def _spawn_server(self, workdir: Path) -> None:
        """Launch the server process (must not wait for it)."""

    @abc.abstractmethod
    def _wait_until_ready(self, workdir: Path, deadline: float) -> str:
        """Block until the server accepts connections or ``deadline`` passes; return the URL."""

    @abc.abstractmethod
    def _stop_server(self) -> None:
        """Stop the server; must tolerate a server that never fully started."""

    def _startup_error(self, what: str, log: Path | None) -> EmbeddedServerError:
        tail = _tail(log) if log is not None else ""
        message = f"embedded {self.kind} {what}"
        if tail:
            message += f"; last lines of its log:\n{tail}"
        return EmbeddedServerError(message)

    # -- context managers

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        self._spawn()
        try:
            await anyio.to_thread.run_sync(self._finish_start, abandon_on_cancel=False)
            # A cancellation that arrived while the thread ran is delivered here, so a
            # cancelled start stops the server instead of entering the block.
            await anyio.lowlevel.checkpoint()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.stop)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGTERM when this thread's process dies.

    SIGTERM rather than SIGKILL, so the child can shut down cleanly (redis-server
    removes its socket, the Kafka child deletes its directory).

    Linux ties the signal to the *thread* that forked the child, so it is only used
    from the main thread (worker threads come and go; the child would die with them).
    Elsewhere the children rely on other means (a pipe reaching EOF, an explicit stop).
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def set_pdeathsig() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return set_pdeathsig


def _popen(
    args: list[str],
    *,
    log: Path,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    with log.open("ab") as log_file:
        return subprocess.Popen(
            args,
            stdin=stdin,
            stdout=stdout,
            stderr=log_file,
            preexec_fn=_parent_death_signal(),
            start_new_session=True,  # a Ctrl-C in a terminal goes to us, not to the server
        )


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, a grace period, then SIGKILL; always reaps the process."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        logger.warning("pid %d did not stop on SIGTERM; killing it", process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
