"""kafka_producer against a Kafka-protocol broker (librdkafka's mock cluster, real TCP)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from tracseq_kit.service import create_service, kafka_producer
from tracseq_kit.settings import ServiceSettings

# A child process keeps a mock cluster alive and prints its bootstrap address; swap for
# the plugin's kafka_bootstrap fixture once it starts a broker itself.
MOCK_BROKER = r"""
import logging, re, time
from confluent_kafka import Producer
found = []
class Grab(logging.Handler):
    def emit(self, record):
        match = re.search(r"bootstrap.servers=(\S+)", record.getMessage())
        if match and not found:
            found.append(match.group(1))
log = logging.getLogger("mock")
log.addHandler(Grab())
log.setLevel(logging.DEBUG)
producer = Producer(
    {"bootstrap.servers": "unused:1", "test.mock.num.brokers": 1, "debug": "mock"}, logger=log
)
start = time.monotonic()
while not found and time.monotonic() - start < 10:
    producer.poll(0.05)
print(found[0] if found else "", flush=True)
for _ in range(1200):  # at most two minutes
    producer.poll(0.1)
"""


@pytest.fixture(scope="module")
def kafka_broker() -> Iterator[str]:
    if bootstrap := os.environ.get("TRACSEQ_TEST_KAFKA_BOOTSTRAP"):
        yield bootstrap
        return
    proc = subprocess.Popen([sys.executable, "-c", MOCK_BROKER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        bootstrap = proc.stdout.readline().strip()
        assert bootstrap, "mock broker did not report its address"
        yield bootstrap
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.anyio
async def test_producer_is_started_checked_and_stopped(kafka_broker: str) -> None:
    checks: dict[str, Any] = {}

    class Health:
        def add_check(self, name: str, check: Any) -> None:
            checks[name] = check

        def mark_started(self) -> None:
            pass

        def asgi_app(self) -> Any:
            return None

    app = create_service(
        ServiceSettings(),
        resources=[kafka_producer(kafka_broker, acks="all", enable_idempotence=True)],
        health=Health(),
        tracer_provider=TracerProvider(),
        configure_logs=False,
    )
    async with app.router.lifespan_context(app):
        producer = app.state.resources["kafka"]
        metadata = await producer.send_and_wait("tracseq.chassis-test", b"hello", key=b"k")
        assert metadata.topic == "tracseq.chassis-test"
        await checks["kafka"]()
    assert producer._closed
