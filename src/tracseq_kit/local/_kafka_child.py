"""Child process that runs librdkafka's mock Kafka cluster (``python -m`` this module).

Protocol with the parent (:class:`tracseq_kit.local.EmbeddedKafka`):

- the child prints one line ``BOOTSTRAP <host:port,...>`` on stdout once the mock
  brokers listen, then keeps the cluster alive by polling its producer;
- it exits, deleting ``--workdir``, when its stdin reaches EOF: the parent closes the
  pipe to stop it, and the kernel closes it when the parent dies for any reason (even
  SIGKILL), so the broker never outlives its parent. It also exits on SIGTERM (sent by
  Linux when the parent dies, see ``_parent_death_signal``) and when it finds itself
  reparented.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
import time

_MARKER = "bootstrap.servers="


class _BootstrapCatcher(logging.Handler):
    """Picks the mock cluster's addresses out of librdkafka's ``debug=mock`` log."""

    def __init__(self) -> None:
        super().__init__()
        self.bootstrap: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.bootstrap is not None:
            return
        message = record.getMessage()
        if _MARKER in message:
            self.bootstrap = message.split(_MARKER, 1)[1].split()[0]


def _watch_stdin(stop: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        stop.set()


def main(argv: list[str] | None = None) -> int:
    """Run the mock cluster until stdin closes; return the exit status."""
    parser = argparse.ArgumentParser(prog="tracseq-embedded-kafka")
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--ready-timeout", type=float, default=10.0)
    parser.add_argument("--workdir", help="directory to delete on exit once running")
    args = parser.parse_args(argv)

    import confluent_kafka

    parent = os.getppid()
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    # SIGTERM comes from the parent-death signal (Linux) or from an explicit stop.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    catcher = _BootstrapCatcher()
    rdkafka_log = logging.getLogger("tracseq_kit.local.kafka_child")
    rdkafka_log.addHandler(catcher)
    rdkafka_log.setLevel(logging.DEBUG)
    rdkafka_log.propagate = False
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": "unused:1",
            "test.mock.num.brokers": args.brokers,
            "debug": "mock",
            "logger": rdkafka_log,
        }
    )
    deadline = time.monotonic() + args.ready_timeout
    while catcher.bootstrap is None:
        if time.monotonic() > deadline or stop.is_set():
            print("mock cluster did not report its bootstrap servers", file=sys.stderr)
            return 1
        producer.poll(0.01)
    sys.stdout.write(f"BOOTSTRAP {catcher.bootstrap}\n")
    sys.stdout.flush()

    # The mock brokers run on librdkafka threads; polling keeps the client (and its
    # log queue) serviced. Checking the parent pid covers a parent that dies while
    # something else still holds our stdin open.
    while not stop.is_set() and os.getppid() == parent:
        producer.poll(0.1)
    if args.workdir:
        # The parent deletes it too, but cannot when it was killed.
        shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
