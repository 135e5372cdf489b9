"""run_service in its own process: JSON logs on stdout and a graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

SERVICE = """
import os
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from tracseq_kit.service import Resource, create_service, run_service
from tracseq_kit.settings import ServiceSettings

release = Path(os.environ["RELEASE_FILE"])


def tracked(name):
    @asynccontextmanager
    async def open_():
        import logging
        logging.getLogger("svc").info("open %s", name)
        try:
            yield name
        finally:
            logging.getLogger("svc").info("close %s", name)
    return Resource(name, open_)


app = create_service(
    ServiceSettings(access_log=True), resources=[tracked("postgres"), tracked("redis")]
)


@app.get("/slow")
async def slow():
    import logging
    logging.getLogger("svc").info("slow entered")
    for _ in range(1000):  # bounded: at most 10 s
        if release.exists():
            break
        await anyio.sleep(0.01)
    logging.getLogger("svc").info("slow finished")
    return {"done": True}


run_service(app)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_drains_in_flight_request_then_closes_resources(tmp_path: Path) -> None:
    port = _free_port()
    script = tmp_path / "svc.py"
    script.write_text(SERVICE)
    release = tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACSEQ_"))}
    env.update(
        TRACSEQ_PORT=str(port),
        TRACSEQ_SERVICE_NAME="svc",
        TRACSEQ_LOG_FORMAT="json",
        TRACSEQ_SHUTDOWN_TIMEOUT="10",
        RELEASE_FILE=str(release),
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    lines: list[dict[str, Any]] = []
    entered = threading.Event()

    def read_stdout() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            record = json.loads(raw)
            lines.append(record)
            if record["message"] == "slow entered":
                entered.set()

    reader = threading.Thread(target=read_stdout)
    reader.start()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}/startupz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.05)

        result: dict[str, httpx.Response] = {}
        caller = threading.Thread(
            target=lambda: result.update(r=httpx.get(f"{url}/slow", timeout=15))
        )
        caller.start()
        assert entered.wait(10)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not any("Shutting down" in r["message"] for r in lines):
            assert time.monotonic() < deadline, "no shutdown started"
            time.sleep(0.01)
        release.touch()
        caller.join(15)
        # uvicorn re-raises the captured signal once shutdown completed.
        assert proc.wait(15) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(5)

    assert result["r"].status_code == 200 and result["r"].json() == {"done": True}
    messages = [r["message"] for r in lines if r["logger"] == "svc"]
    assert messages == [
        "open postgres",
        "open redis",
        "slow entered",
        "slow finished",
        "close redis",
        "close postgres",
    ]
    assert all(r["service"] == "svc" for r in lines)
    assert any(r["logger"].startswith("uvicorn") for r in lines)  # uvicorn's lines are JSON too
    access = [r for r in lines if r["logger"] == "tracseq_kit.access"]
    assert [a["url.path"] for a in access] == ["/slow"]
    assert access[0]["trace_id"] and access[0]["request_id"]
