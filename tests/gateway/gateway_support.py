"""Helpers of the gateway tests: real upstream processes and an in-process gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import uvicorn

from tracseq_kit.gateway import Gateway, GatewayConfig, parse_config

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Upstream:
    """A real upstream process (tests/gateway/upstream_app.py)."""

    def __init__(self, name: str, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Upstream:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "upstream_app.py"),
                "--port",
                str(self.port),
                "--name",
                self.name,
            ],
        )
        wait_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)


@contextlib.contextmanager
def upstreams(*names: str) -> Iterator[list[Upstream]]:
    ups = [Upstream(n) for n in names]
    try:
        for u in ups:
            u.start()
        yield ups
    finally:
        for u in ups:
            u.kill()


def config(
    pools: dict[str, list[str]], routes: list[dict[str, object]], **extra: object
) -> GatewayConfig:
    return parse_config(
        {"pools": {n: {"instances": i} for n, i in pools.items()}, "routes": routes, **extra}
    )


@contextlib.asynccontextmanager
async def serve(gateway: Gateway) -> AsyncIterator[str]:
    """Serve ``gateway`` with uvicorn in this event loop; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            gateway,
            host="127.0.0.1",
            port=port,
            log_level="error",
            lifespan="on",
            loop="none",
            http="httptools",
            proxy_headers=False,
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


__all__ = ["Upstream", "config", "free_port", "rss_kib", "serve", "upstreams", "wait_port"]
os.environ.setdefault("PYTHONUNBUFFERED", "1")
