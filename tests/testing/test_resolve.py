"""Resolution order of the fixtures' servers: environment, Docker, embedded."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tracseq_kit import ConfigurationError, EmbeddedServerError
from tracseq_kit.local import EmbeddedServer
from tracseq_kit.testing._resolve import (
    DEFAULT_DOCKER_KAFKA_PORT,
    ENV_VARS,
    SERVICES,
    ServerResolver,
    Service,
    docker_problem,
    docker_urls,
)


class FakeServer(EmbeddedServer):
    """Records starts and stops instead of running a process."""

    kind = "Fake"
    _requires = ("pytest", "pytest")
    started: list[str] = []
    stopped: list[str] = []

    def __init__(self, name: str, *, fail: bool = False) -> None:
        super().__init__()
        self.name = name
        self.fail = fail

    def _spawn_server(self, workdir: Path) -> None:
        if self.fail:
            raise EmbeddedServerError(f"{self.name} would not start")
        FakeServer.started.append(self.name)

    def _wait_until_ready(self, workdir: Path, deadline: float) -> str:
        return f"fake://{self.name}"

    def _stop_server(self) -> None:
        FakeServer.stopped.append(self.name)


_RESOLVERS: list[ServerResolver] = []


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    FakeServer.started.clear()
    FakeServer.stopped.clear()
    yield
    while _RESOLVERS:
        _RESOLVERS.pop().close()  # removes the fakes' temporary directories


def _fakes(**fail: bool) -> Mapping[Service, Any]:
    return {s: (lambda s=s: FakeServer(s, fail=fail.get(s, False))) for s in SERVICES}


def _never(*_: Any) -> Any:
    raise AssertionError("must not be called")


def _resolver(
    *,
    environ: Mapping[str, str] | None = None,
    use_docker: bool = False,
    problem: str | None = None,
    urls: Mapping[Service, str] | None = None,
    **fail: bool,
) -> ServerResolver:
    calls = {"problem": 0, "urls": 0}

    def docker_problem_() -> str | None:
        calls["problem"] += 1
        return problem

    def docker_urls_() -> Mapping[Service, str]:
        calls["urls"] += 1
        assert urls is not None
        return urls

    resolver = ServerResolver(
        environ=environ or {},
        use_docker=use_docker,
        docker_problem=docker_problem_,
        docker_urls=docker_urls_,
        embedded=_fakes(**fail),
    )
    resolver.calls = calls  # type: ignore[attr-defined]
    _RESOLVERS.append(resolver)
    return resolver


def test_environment_variable_wins_over_everything() -> None:
    resolver = _resolver(
        environ={ENV_VARS["postgres"]: "postgresql://db.example/test"},
        use_docker=True,
        problem="no engine",
    )
    resolved = resolver.resolve("postgres")
    assert (resolved.url, resolved.source) == ("postgresql://db.example/test", "env")
    assert resolver.calls == {"problem": 0, "urls": 0}  # type: ignore[attr-defined]
    assert FakeServer.started == []


def test_blank_environment_variable_counts_as_unset() -> None:
    resolver = _resolver(environ={ENV_VARS["redis"]: "  "})
    assert resolver.resolve("redis").source == "embedded"


def test_embedded_servers_start_lazily_once_and_stop_on_close() -> None:
    resolver = _resolver()
    assert FakeServer.started == []
    first = resolver.resolve("kafka")
    again = resolver.resolve("kafka")
    assert first == again
    assert (first.url, first.source) == ("fake://kafka", "embedded")
    assert FakeServer.started == ["kafka"]  # only what was asked for, only once
    resolver.close()
    assert FakeServer.stopped == ["kafka"]
    resolver.close()
    assert FakeServer.stopped == ["kafka"]


def test_docker_without_an_engine_fails_clearly_and_does_not_fall_back() -> None:
    resolver = _resolver(use_docker=True, problem="`docker info` failed: cannot connect")
    with pytest.raises(ConfigurationError) as info:
        resolver.resolve("redis")
    message = str(info.value)
    assert "--tracseq-docker was given but Docker cannot be used" in message
    assert "cannot connect" in message
    assert "TRACSEQ_TEST_REDIS_URL" in message
    assert FakeServer.started == []


def test_docker_with_an_engine_starts_compose_once_for_all_services() -> None:
    urls: Mapping[Service, str] = {
        "postgres": "postgresql://postgres@127.0.0.1:1/test",
        "redis": "redis://127.0.0.1:2/0",
        "kafka": "127.0.0.1:39092",
    }
    resolver = _resolver(use_docker=True, urls=urls)
    assert {s: resolver.resolve(s).url for s in SERVICES} == urls
    assert {resolver.resolve(s).source for s in SERVICES} == {"docker"}
    assert resolver.calls == {"problem": 1, "urls": 1}  # type: ignore[attr-defined]
    assert FakeServer.started == []


def test_a_failure_is_remembered_and_raised_again_without_retrying() -> None:
    resolver = _resolver(postgres=True)
    with pytest.raises(EmbeddedServerError, match="postgres would not start"):
        resolver.resolve("postgres")
    with pytest.raises(EmbeddedServerError, match="postgres would not start"):
        resolver.resolve("postgres")
    assert resolver.resolve("redis").url == "fake://redis"


class FakeServices:
    def port_for(self, service: str, container_port: int) -> int:
        return {"postgres": 49153, "redis": 49154}[service] if container_port else 0


def test_docker_urls_use_the_published_ports() -> None:
    urls = docker_urls(FakeServices(), "10.0.0.5", kafka_port=39092)
    assert urls == {
        "postgres": "postgresql://postgres@10.0.0.5:49153/test",
        "redis": "redis://10.0.0.5:49154/0",
        "kafka": "10.0.0.5:39092",
    }


def test_docker_problem_without_the_docker_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert docker_problem() == "the docker command is not installed"


def test_docker_problem_with_an_unreachable_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    problem = docker_problem()
    assert problem is not None
    assert "docker info" in problem and "Cannot connect to the Docker daemon" in problem


def test_docker_problem_is_none_when_engine_and_compose_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 27.0.1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert docker_problem() is None


def test_compose_file_in_tests_is_the_packaged_one() -> None:
    from tracseq_kit.testing import COMPOSE_FILE

    in_tests = Path(__file__).parents[1] / "docker-compose.yml"
    assert in_tests.read_text() == COMPOSE_FILE.read_text()


def test_compose_file_is_a_consistent_kraft_stack() -> None:
    import yaml

    from tracseq_kit.testing import COMPOSE_FILE

    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert set(services) == {"postgres", "redis", "kafka"}
    for name, service in services.items():
        assert "test" in service["healthcheck"], name  # `up --wait` waits for health
    assert services["postgres"]["ports"] == ["5432"]  # random host ports, looked up
    assert services["redis"]["ports"] == ["6379"]
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "test"

    kafka = services["kafka"]
    env = kafka["environment"]
    port = f"${{TRACSEQ_TEST_KAFKA_PORT:-{DEFAULT_DOCKER_KAFKA_PORT}}}"
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) == set(protocols)
    assert set(advertised) == set(listeners) - {env["KAFKA_CONTROLLER_LISTENER_NAMES"]}
    controller_port = listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]].rsplit(":", 1)[1]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@localhost:{controller_port}"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    # Clients dial the published port, and the broker must advertise that same port.
    container_port = listeners["HOST"].rsplit(":", 1)[1]
    assert kafka["ports"] == [f"{port}:{container_port}"]
    assert advertised["HOST"].endswith(f":{port}")
    assert int(container_port) == DEFAULT_DOCKER_KAFKA_PORT
