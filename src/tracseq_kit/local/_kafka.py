"""A Kafka-protocol broker: librdkafka's mock cluster, run in a child process."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
from pathlib import Path

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.local._base import EmbeddedServer, _popen, _remaining, _terminate


class EmbeddedKafka(EmbeddedServer):
    """A Kafka-protocol broker on real TCP ports; ``url`` is ``127.0.0.1:PORT[,…]``.

    The brokers are librdkafka's mock cluster (from the ``confluent-kafka`` wheel) kept
    alive in a child process, which prints its bootstrap addresses and exits when this
    process stops it or dies (it watches a pipe that the kernel closes on exit). aiokafka
    works against it unchanged: auto-created topics, idempotent producers with
    ``acks="all"``, consumer groups with commits, transactions. It is a test broker:
    state lives in memory, ports are random, and creating topics through the admin API
    is not supported (rely on auto-creation).

    ``brokers`` is the number of mock brokers in the cluster.
    """

    kind = "Kafka"
    _requires = ("confluent_kafka", "confluent-kafka")

    def __init__(self, *, brokers: int = 1, start_timeout: float = 20.0) -> None:
        super().__init__(start_timeout=start_timeout)
        if brokers < 1:
            raise ConfigurationError(f"brokers must be at least 1, got {brokers!r}")
        self.brokers = brokers
        self._process: subprocess.Popen[bytes] | None = None
        self._reported = False

    @property
    def pid(self) -> int | None:
        """Process id of the child that hosts the brokers, or ``None`` when stopped."""
        return None if self._process is None else self._process.pid

    def _spawn_server(self, workdir: Path) -> None:
        self._reported = False
        self._log = workdir / "kafka.log"
        self._process = _popen(
            [
                sys.executable,
                "-m", "tracseq_kit.local._kafka_child",
                "--brokers", str(self.brokers),
                "--ready-timeout", str(self.start_timeout),
                "--workdir", str(workdir),
            ],
            log=self._log,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # fmt: skip

    def _wait_until_ready(self, workdir: Path, deadline: float) -> str:
        process = self._process
        assert process is not None and process.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([process.stdout], [], [], _remaining(deadline))
            if not ready:
                raise self._startup_error(
                    f"broker did not report its address within {self.start_timeout} s",
                    self._log,
                )
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                process.wait()
                raise self._startup_error(
                    f"broker process exited with status {process.returncode} while starting",
                    self._log,
                )
            line += chunk
        kind, _, bootstrap = line.decode().strip().partition(" ")
        if kind != "BOOTSTRAP" or not bootstrap:
            raise self._startup_error(f"broker process printed {line!r}", self._log)
        self._reported = True
        return bootstrap

    def _stop_server(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if not self._reported:
            _terminate(process)  # never became a broker: nothing to shut down gracefully
        elif process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # EOF tells the child to exit
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            _terminate(process)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
