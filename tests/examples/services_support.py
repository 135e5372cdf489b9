"""Serving the example services (and the gateway in front of them) on free loopback ports,
for tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import uvicorn


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` (lifespan included) in a thread; yield its base URL; stop it after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the service did not start (see its log)"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextlib.contextmanager
def serve_stack(*, template_dsn: str, event_dsn: str, kafka_bootstrap: str) -> Iterator[str]:
    """The template and event services behind a gateway; yield the gateway's base URL.

    The event service consumes in a consumer group of its own (the broker outlives tests).
    """
    with serve_stack_urls(
        template_dsn=template_dsn, event_dsn=event_dsn, kafka_bootstrap=kafka_bootstrap
    ) as urls:
        yield urls["gateway"]


@contextlib.contextmanager
def serve_stack_urls(
    *, template_dsn: str, event_dsn: str, kafka_bootstrap: str
) -> Iterator[dict[str, str]]:
    """:func:`serve_stack`, yielding the base URLs of ``gateway``, ``templates`` and
    ``events``."""
    from examples.event_service.app import EventServiceSettings
    from examples.event_service.app import create_app as create_event_service
    from examples.template_service.app import TemplateServiceSettings
    from examples.template_service.app import create_app as create_template_service
    from pydantic import SecretStr

    from tracseq_kit.gateway import Gateway, parse_config

    templates = TemplateServiceSettings(
        postgres_dsn=SecretStr(template_dsn), kafka_bootstrap=kafka_bootstrap
    )
    events = EventServiceSettings(
        postgres_dsn=SecretStr(event_dsn),
        kafka_bootstrap=kafka_bootstrap,
        group_id=f"test-{uuid.uuid4().hex}",
        poll_interval=0.1,
    )
    with (
        serve(create_template_service(templates)) as template_url,
        serve(create_event_service(events)) as event_url,
    ):
        config = parse_config(
            {
                "pools": {
                    "templates": {"instances": [template_url.removeprefix("http://")]},
                    "events": {"instances": [event_url.removeprefix("http://")]},
                },
                "routes": [
                    {"prefix": "/api/templates", "upstream": "templates"},
                    {"prefix": "/api/events", "upstream": "events", "timeout": 60},
                ],
            }
        )
        with serve(Gateway(config)) as gateway:
            yield {"gateway": gateway, "templates": template_url, "events": event_url}


def wait_for(predicate: Any, seconds: float = 40) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that, or fail."""
    import pytest

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    pytest.fail(f"condition not met within {seconds} s")


class ThreadedProxy:
    """A :class:`~tracseq_kit.testing.TcpProxy` on an event loop of its own thread, for
    sync tests whose servers run in threads too (``serve``)."""

    def __init__(self, target: tuple[str, int]) -> None:
        import asyncio

        from tracseq_kit.testing import TcpProxy

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy = TcpProxy(target)
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)
        self.port = self.proxy.port

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self._loop.call_soon_threadsafe(self.proxy.cut)

    def restore(self) -> None:
        """Forward connections again."""
        self._loop.call_soon_threadsafe(self.proxy.restore)

    def close(self) -> None:
        """Stop the proxy and its loop."""
        import asyncio

        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
