"""Serving the example services (and the gateway in front of them) on free loopback ports,
for tests.

The stack runs with authentication on, as deployed: the gateway checks bearer tokens
(EdDSA JWTs signed by this module's stand-in for the auth service: :func:`token`) and
route scopes, and asserts the caller's identity to the services, which verify it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import uvicorn

from tracseq_kit.identity import generate_keypair

ISSUER = "https://auth.test"
"""The issuer of the test tokens (what the gateway expects)."""
_IDP_PRIVATE, _IDP_PUBLIC = generate_keypair()
_GATEWAY_PRIVATE, _GATEWAY_PUBLIC = generate_keypair()
SERVICE_KEYS = f"kid=test-gateway\n{_GATEWAY_PUBLIC}"
"""The gateway's public key as the services' ``identity_keys`` setting takes it."""


def token(
    subject: str = "tester", *, scopes: tuple[str, ...] = ("admin",), ttl: float = 3600
) -> str:
    """A bearer token for the test stack's gateway: ``subject`` holding ``scopes``."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "tracseq",
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + int(ttl),
    }
    return jwt.encode(claims, _IDP_PRIVATE, algorithm="EdDSA", headers={"kid": "test-idp"})


ADMIN_TOKEN = token()
"""A token holding ``admin`` (every scope), valid for an hour."""


def gateway_auth() -> dict[str, Any]:
    """The ``auth`` and ``identity`` sections of the test stack's gateway configuration."""
    return {
        "auth": {
            "jwt": {
                "algorithms": ["EdDSA"],
                "keys": [{"alg": "EdDSA", "kid": "test-idp", "public_key": _IDP_PUBLIC}],
                "issuer": ISSUER,
                "audience": "tracseq",
            }
        },
        "identity": {"signing_key": _GATEWAY_PRIVATE, "key_id": "test-gateway"},
    }


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
        postgres_dsn=SecretStr(template_dsn),
        kafka_bootstrap=kafka_bootstrap,
        identity_keys=SERVICE_KEYS,
    )
    events = EventServiceSettings(
        postgres_dsn=SecretStr(event_dsn),
        identity_keys=SERVICE_KEYS,
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
                    "templates": {
                        "instances": [template_url.removeprefix("http://")],
                        "audience": templates.service_name,
                    },
                    "events": {
                        "instances": [event_url.removeprefix("http://")],
                        "audience": events.service_name,
                    },
                },
                "routes": [
                    {
                        "prefix": "/api/templates",
                        "upstream": "templates",
                        "scopes": ["templates:read"],
                    },
                    {
                        "prefix": "/api/events",
                        "upstream": "events",
                        "timeout": 60,
                        "scopes": {"read": ["events:read"], "write": ["events:write"]},
                    },
                ],
                **gateway_auth(),
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
