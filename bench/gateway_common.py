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
    cpu: int | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
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
    cmd = [binary, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd)
    try:
        wait_port(body_port)
        if proxy_port is not None:
            wait_port(proxy_port)
        yield proc
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def python_server(
    args: list[str], port: int, *, cpu: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a Python server process (pinned to ``cpu`` when given) and wait for ``port``."""
    cmd = [sys.executable, *args]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
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
    requests: int
    seconds: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def _percentile(out: str, pct: str) -> float:
    m = re.search(rf"^\s*{pct}%\s+(\S+)\s*$", out, re.MULTILINE)
    return _ms(m.group(1)) if m else float("nan")


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    cpu: int | None = None,
) -> WrkResult:
    """Run wrk (pinned to ``cpu`` when given) and parse its report.

    Parsing is tolerant: on a busy machine wrk may omit a line (no latency histogram
    when nothing completed); missing numbers become NaN and the caller reports them.
    """
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    requests = int(m.group(1)) if m else 0
    elapsed = _ms(m.group(2) + m.group(3)) / 1000 if m else float(seconds)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = 0
    if m2 := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m2.group(1))
    socket_errors = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    if m3 := re.search(socket_errors, out):
        errors += sum(int(g) for g in m3.groups())
    return WrkResult(
        float(rate.group(1)) if rate else requests / max(elapsed, 1e-9),
        _percentile(out, "50"),
        _percentile(out, "99"),
        errors,
        requests,
        elapsed,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants, in seconds."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total
