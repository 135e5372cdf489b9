"""Serving the auth service for tests: a fresh schema per test, a clock the test moves,
the development identities, and helpers for tokens, the JWKS and the outbox."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import jwt
from cryptography.fernet import Fernet
from examples.auth_service.app import AuthServiceSettings, create_app
from examples.auth_service.bootstrap import DevIdentities, ensure_dev_identities
from examples.auth_service.credentials import Passwords
from pydantic import SecretStr
from services_support import serve

from tracseq_kit.testing import unique_name

KEK = Fernet.generate_key().decode()
ISSUER = "http://127.0.0.1:8089"
AUDIENCE = "tracseq"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLI = "tracseq-cli"

# Argon2id at its cheapest: the tests check behaviour, not the cost of guessing.
CHEAP = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}


class Clock:
    """The service's time: starts at the wall clock, moves only when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cheap_passwords() -> Passwords:
    return Passwords(time_cost=1, memory_kib=8, parallelism=1)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_schema(postgres_dsn: str) -> Iterator[str]:
    """A DSN whose tables land in a new schema, dropped afterwards."""
    name = unique_name("auth")
    run(_execute(postgres_dsn, f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in postgres_dsn else "?"
    try:
        yield f"{postgres_dsn}{sep}search_path={name}"
    finally:
        run(_execute(postgres_dsn, f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def settings(dsn: str, **overrides: Any) -> AuthServiceSettings:
    values: dict[str, Any] = {
        "postgres_dsn": SecretStr(dsn),
        "key_encryption_key": SecretStr(KEK),
        "log_format": "json",
        **CHEAP,
        **overrides,
    }
    return AuthServiceSettings(**values)


@dataclass
class Auth:
    """A running auth service and what a test needs around it."""

    url: str
    http: httpx.Client
    clock: Clock
    dsn: str
    dev: DevIdentities

    def token(self, client_id: str, secret: str, **form: str) -> httpx.Response:
        """A client-credentials request authenticated with HTTP Basic."""
        data = {"grant_type": "client_credentials", **form}
        return self.http.post("/oauth/token", data=data, auth=(client_id, secret))

    def robot_token(self, **form: str) -> str:
        robot = self.dev.robot
        answer = self.token(robot.client_id, robot.client_secret, **form)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def admin(self) -> dict[str, str]:
        """Headers of an admin (the development robot)."""
        return {"Authorization": f"Bearer {self.robot_token()}"}

    def jwks(self) -> jwt.PyJWKSet:
        return jwt.PyJWKSet.from_dict(self.http.get("/.well-known/jwks.json").json())

    def start_device(self, scope: str | None = None) -> dict[str, Any]:
        form = {"client_id": CLI, **({"scope": scope} if scope else {})}
        answer = self.http.post("/oauth/device_authorization", data=form)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def poll(self, device_code: str) -> httpx.Response:
        form = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": CLI}
        return self.http.post("/oauth/token", data=form)

    def device_page(
        self, user_code: str, *, action: str = "approve", password: str | None = None
    ) -> httpx.Response:
        user = self.dev.user
        form = {
            "user_code": user_code,
            "username": user.username,
            "password": user.password if password is None else password,
            "action": action,
        }
        return self.http.post("/device", data=form)

    def device_login(self, scope: str | None = None) -> dict[str, Any]:
        """A whole device login of the development user; the token answer."""
        started = self.start_device(scope)
        assert self.device_page(started["user_code"]).status_code == 200
        answer = self.poll(started["device_code"])
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@contextlib.contextmanager
def serve_auth(dsn: str, **overrides: Any) -> Iterator[Auth]:
    """The auth service on ``dsn`` with the development identities, on a free port."""
    dev = ensure_dev_identities(dsn, issuer=ISSUER, passwords=cheap_passwords())
    clock = Clock()
    app = create_app(settings(dsn, **overrides), clock=clock)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Auth(url, http, clock, dsn, dev)


def verify_with_jwks(
    token: str, jwks: jwt.PyJWKSet, *, leeway: float = 0, **options: Any
) -> dict[str, Any]:
    """What a gateway does: PyJWT, EdDSA only, the key named by ``kid`` in the JWKS
    (``leeway`` for tests whose service clock ran ahead of the wall clock)."""
    kid = jwt.get_unverified_header(token).get("kid")
    try:
        key = jwks[str(kid)]
    except KeyError:
        raise jwt.InvalidKeyError(f"no key {kid!r} in the JWKS") from None
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=leeway,
        options={"require": ["exp", "iat", "sub", "scope", "jti"], **options},
    )
    return claims


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def outbox(dsn: str) -> list[dict[str, Any]]:
    """Every event in the outbox, oldest first: type, subject, data, extensions and the
    raw row text (to search for anything that must not be there)."""

    async def fetch() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(
                await conn.fetch("SELECT key, value, headers FROM tracseq_outbox ORDER BY id")
            )
        finally:
            await conn.close()

    events = []
    for r in run(fetch()):
        headers = dict(json.loads(r["headers"]))
        raw = (r["value"] or b"").decode() + r["headers"] + (r["key"] or "")
        events.append(
            {
                "type": headers["ce_type"],
                "subject": headers.get("ce_subject"),
                "actor": headers.get("ce_actor"),
                "data": json.loads(r["value"]) if r["value"] else None,
                "raw": raw,
            }
        )
    return events


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
