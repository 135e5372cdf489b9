"""Shared helpers of the gateway benchmarks: a temporary nginx, wrk runs, free ports."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "install them with: apt-get install -y nginx-light wrk"


def require_tools(*names: str) -> None:
    """Exit with an install hint when a needed program is missing."""
    missing = [n for n in names if _which(n) is None]
    if missing:
        sys.exit(f"missing programs: {', '.join(missing)}; {INSTALL_HINT}")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


@contextmanager
def nginx(
    body_port: int,
    proxy_port: int | None = None,
    *,
    body: str = "hello world",
    content_type: str = "text/plain",
) -> Iterator[None]:
    """Run nginx (one worker) answering ``body`` (default 'hello world') on ``body_port``.

    With ``proxy_port`` it also proxies that port to ``body_port`` with keep-alive,
    as a reference reverse proxy.
    """
    tmp = Path(tempfile.mkdtemp(prefix="gwbench-nginx-"))
    proxy = ""
    if proxy_port is not None:
        proxy = f"""
    upstream backend {{ server 127.0.0.1:{body_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}"""
    conf = f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp};
    proxy_temp_path {tmp};
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{body_port};
        location / {{ default_type {content_type}; return 200 '{body}'; }}
    }}{proxy}
}}
"""
    (tmp / "nginx.conf").write_text(conf)
    binary = _which("nginx")
    assert binary is not None
    proc = subprocess.Popen([binary, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
    try:
        wait_port(body_port)
        if proxy_port is not None:
            wait_port(proxy_port)
        yield
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def python_server(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run a Python server process and wait until ``port`` accepts connections."""
    proc = subprocess.Popen([sys.executable, *args], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_port(port, timeout=20)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, *, seconds: int, connections: int, threads: int = 1) -> WrkResult:
    """Run wrk with latency percentiles and parse its report."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    return WrkResult(rps, p50, p99, errors)
