"""Where the test fixtures' servers come from: environment, Docker, or embedded."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tracseq_kit._exceptions import ConfigurationError, TracSeqError
from tracseq_kit.local import EmbeddedKafka, EmbeddedPostgres, EmbeddedRedis, EmbeddedServer

Service = Literal["postgres", "redis", "kafka"]
Source = Literal["env", "docker", "embedded"]

SERVICES: tuple[Service, ...] = ("postgres", "redis", "kafka")

ENV_VARS: Mapping[Service, str] = {
    "postgres": "TRACSEQ_TEST_POSTGRES_DSN",
    "redis": "TRACSEQ_TEST_REDIS_URL",
    "kafka": "TRACSEQ_TEST_KAFKA_BOOTSTRAP",
}

EMBEDDED: Mapping[Service, Callable[[], EmbeddedServer]] = {
    "postgres": EmbeddedPostgres,
    "redis": EmbeddedRedis,
    "kafka": EmbeddedKafka,
}

#: The Kafka host port fixed in the compose file (the broker advertises it).
DEFAULT_DOCKER_KAFKA_PORT = 39092


@dataclass(frozen=True)
class Resolved:
    """A server's URL and where it came from."""

    url: str
    source: Source


class ServerResolver:
    """Resolves each service once, lazily, in the documented order.

    1. the service's environment variable, when set and non-empty;
    2. Docker (``use_docker``): fails if ``docker_problem()`` names a problem, else the
       URLs that ``docker_urls()`` computes (it starts the compose project once);
    3. an embedded server, started on first use and stopped by :meth:`close`.

    A failure is remembered, so later tests fail fast with the same message.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        use_docker: bool,
        docker_problem: Callable[[], str | None],
        docker_urls: Callable[[], Mapping[Service, str]],
        embedded: Mapping[Service, Callable[[], EmbeddedServer]] = EMBEDDED,
    ) -> None:
        self._environ = environ
        self._use_docker = use_docker
        self._docker_problem = docker_problem
        self._docker_urls_factory = docker_urls
        self._docker_urls: Mapping[Service, str] | None = None
        self._embedded_factories = embedded
        self._embedded: dict[Service, EmbeddedServer] = {}
        self._resolved: dict[Service, Resolved | TracSeqError] = {}

    def resolve(self, service: Service) -> Resolved:
        """Return the service's URL, starting what is needed; raise a :class:`TracSeqError`."""
        if service not in self._resolved:
            try:
                self._resolved[service] = self._resolve(service)
            except TracSeqError as exc:
                self._resolved[service] = exc
        outcome = self._resolved[service]
        if isinstance(outcome, TracSeqError):
            raise outcome
        return outcome

    def _resolve(self, service: Service) -> Resolved:
        from_env = self._environ.get(ENV_VARS[service], "").strip()
        if from_env:
            return Resolved(from_env, "env")
        if self._use_docker:
            return Resolved(self._from_docker(service), "docker")
        server = self._embedded_factories[service]()
        server.start()
        self._embedded[service] = server
        return Resolved(server.url, "embedded")

    def _from_docker(self, service: Service) -> str:
        if self._docker_urls is None:
            problem = self._docker_problem()
            if problem is not None:
                raise ConfigurationError(
                    f"--tracseq-docker was given but Docker cannot be used: {problem}. "
                    "Start a Docker engine, or drop --tracseq-docker to use embedded "
                    f"servers, or set {ENV_VARS[service]} to a running server."
                )
            self._docker_urls = self._docker_urls_factory()
        return self._docker_urls[service]

    def close(self) -> None:
        """Stop the embedded servers this resolver started."""
        while self._embedded:
            _, server = self._embedded.popitem()
            server.stop()


def docker_problem(*, timeout: float = 20.0) -> str | None:
    """Why Docker Compose cannot be used here, or ``None`` when an engine answers."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    for args in (
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        ["docker", "compose", "version"],
    ):
        try:
            result = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return f"`{' '.join(args)}` did not answer within {timeout} s"
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            return f"`{' '.join(args)}` failed: {detail[-1] if detail else result.returncode}"
    return None


def docker_urls(services: Any, ip: str, *, kafka_port: int) -> dict[Service, str]:
    """URLs of the compose project's servers, from pytest-docker's ``Services``."""
    pg_port = services.port_for("postgres", 5432)
    redis_port = services.port_for("redis", 6379)
    return {
        "postgres": f"postgresql://postgres@{ip}:{pg_port}/test",
        "redis": f"redis://{ip}:{redis_port}/0",
        "kafka": f"{ip}:{kafka_port}",
    }
