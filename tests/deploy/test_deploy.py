"""Static checks of ``deploy/``: every file parses, and what it configures exists in the code.

Ports, environment variables, probe paths, metric names and the gateway configuration are
read from the kit and the example services (settings classes, built apps, the live
Prometheus registry, the gateway's own config loader and CLI), not restated here.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tracseq_kit.asgi import HEALTH_JSON
from tracseq_kit.gateway import Gateway, GatewayConfig, load_config, parse_config
from tracseq_kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
GATEWAY_MODULE = "tracseq_kit.gateway"

if str(ROOT) not in sys.path:  # the example services are imported as ``examples.*``
    sys.path.insert(0, str(ROOT))


# -- reading the deployment files -----------------------------------------------------------


def _yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _k8s_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend(_yaml_docs(path))
    return objects


def _k8s(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _k8s_objects() if o["kind"] == kind}


_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def _interpolate(value: Any) -> str:
    """Compose's ``${VAR:-default}`` with nothing set in the environment."""
    text = str(value).replace("$$", "\x00")
    return _INTERPOLATION.sub(lambda m: m["default"] or "", text).replace("\x00", "$")


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(v) for k, v in env.items()}


def _module_of(command: list[str]) -> str | None:
    """``python -m <module> ...`` -> module."""
    if len(command) >= 3 and Path(command[0]).name.startswith("python") and command[1] == "-m":
        return command[2]
    return None


@dataclass
class Workload:
    """One TracSeq process as a deployment file runs it."""

    source: str
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    secret_env: set[str] = field(default_factory=set)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> str:
        module = _module_of(self.command)
        assert module is not None, f"{self}: command is not `python -m <module>`"
        return module


def _compose_workloads() -> list[Workload]:
    out = []
    for name, svc in _compose()["services"].items():
        command = svc.get("command")
        if not isinstance(command, list) or _module_of(command) is None:
            continue
        ports = {int(str(p).split(":")[-1].split("/")[0]) for p in svc.get("ports", [])}
        assert len(ports) == 1, f"compose {name}: expected one published port, got {ports}"
        out.append(Workload("compose", name, command, _compose_env(svc), ports.pop(), raw=svc))
    return out


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per TracSeq pod"
    return containers[0]


def _k8s_workloads() -> list[Workload]:
    config_maps, secrets = _k8s("ConfigMap"), _k8s("Secret")
    out = []
    for name, dep in _k8s("Deployment").items():
        c = _container(dep)
        env: dict[str, str] = {}
        secret_env: set[str] = set()
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                ref = source["configMapRef"]["name"]
                assert ref in config_maps, f"{name}: envFrom ConfigMap {ref!r} does not exist"
                env.update(config_maps[ref]["data"])
            else:
                ref = source["secretRef"]["name"]
                assert ref in secrets, f"{name}: envFrom Secret {ref!r} does not exist"
                data = secrets[ref].get("stringData") or {}
                env.update(data)
                secret_env.update(data)
        for item in c.get("env", []):
            env[item["name"]] = str(item.get("value", ""))
        ports = [p["containerPort"] for p in c["ports"]]
        assert len(ports) == 1, f"k8s {name}: expected one container port"
        out.append(Workload("k8s", name, c["command"], env, ports[0], secret_env, raw=dep))
    return out


WORKLOADS = _compose_workloads() + _k8s_workloads()


def _ids(workloads: list[Workload]) -> list[str]:
    return [f"{w.source}:{w.name}" for w in workloads]


def _service_workloads() -> list[Workload]:
    return [w for w in WORKLOADS if w.module != GATEWAY_MODULE]


def _gateway_workloads() -> list[Workload]:
    return [w for w in WORKLOADS if w.module == GATEWAY_MODULE]


# -- reading the code -----------------------------------------------------------------------


def _settings_class(module_name: str) -> type[ServiceSettings]:
    """The one ServiceSettings subclass a service's app module uses.

    It is defined in the app module itself or in the ``settings`` module next to it.
    """
    module = importlib.import_module(module_name)
    homes = {module.__name__, module_name.rpartition(".")[0] + ".settings"}
    found = {
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, ServiceSettings)
        and obj is not ServiceSettings
        and obj.__module__ in homes
    }
    assert len(found) == 1, f"{module_name}: expected one ServiceSettings subclass, got {found}"
    return found.pop()


def _env_names(cls: type[ServiceSettings]) -> dict[str, str]:
    """Environment variable -> field, for every field the settings class reads."""
    return {cls.env_name(name): name for name in cls.model_fields}


def _otel_variables() -> set[str]:
    """Every OTEL_* variable the OpenTelemetry API and SDK define."""
    import opentelemetry.environment_variables as api_vars
    import opentelemetry.sdk.environment_variables as sdk_vars

    return {
        v
        for mod in (api_vars, sdk_vars)
        for k, v in vars(mod).items()
        if k.startswith("OTEL_") and isinstance(v, str)
    }


def _settings_from(cls: type[ServiceSettings], env: dict[str, str], mp: pytest.MonkeyPatch):
    prefix = cls.model_config.get("env_prefix") or ""
    for key in list(os.environ):
        if key.startswith(prefix):
            mp.delenv(key)
    for key, value in env.items():
        if key.startswith(prefix):
            mp.setenv(key, value)
    return cls()


def _get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(call())


def _build_service_app(module_name: str) -> Any:
    module = importlib.import_module(module_name)
    return module.create_app(_settings_class(module_name)())


@pytest.fixture(scope="module")
def apps() -> dict[str, Any]:
    """The three apps as built from the code: the example services and the gateway."""
    modules = {w.module for w in WORKLOADS}
    built: dict[str, Any] = {
        m: _build_service_app(m) for m in sorted(modules) if m != GATEWAY_MODULE
    }
    built[GATEWAY_MODULE] = Gateway.from_file(DEPLOY / "gateway.toml")
    return built


@pytest.fixture(scope="module")
def exported_metrics(apps: dict[str, Any]) -> set[str]:
    """Sample names of every metric family the built apps serve on /metrics."""
    from tracseq_kit.events import EventConsumer, EventPublisher

    async def relay_publisher() -> None:
        # The publisher each service's outbox relay runs (running_relay) and the event
        # service's consumer register the event-flow counters; constructing them does
        # not connect.
        publisher = EventPublisher("kafka:9092")
        await publisher.stop()
        EventConsumer(
            topics=["tracseq.templates"], group_id="g", handler=print, bootstrap_servers="k:9092"
        )

    asyncio.run(relay_publisher())
    names: set[str] = set()
    for app in apps.values():
        _get(app, "/livez")  # one request, so the HTTP server instruments exist
        response = _get(app, "/metrics")
        assert response.status_code == 200
        for family in text_string_to_metric_families(response.text):
            names.add(family.name)
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created"),
            }.get(family.type, ())
            names.update(family.name + s for s in suffixes)
            names.update(s.name for s in family.samples)
    return names


# -- PromQL -----------------------------------------------------------------------------------

_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_PROMQL_WORDS |= {"and", "or", "unless", "offset", "inf", "nan"}
_PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def _promql_metrics(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (or a Grafana label_values query)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    text = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,[^)]*\)", r"(\1)", text)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        if m.group(2) is None and m.group(1).lower() not in _PROMQL_WORDS:
            names.add(m.group(1))
    return names


def test_promql_metric_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, job) (rate(a_seconds_bucket{job=~"$x"}'
        "[$__rate_interval]))) / on (job) sum without (instance) (b_total) > bool 0"
    )
    assert _promql_metrics(expr) == {"a_seconds_bucket", "b_total"}
    assert _promql_metrics("label_values(c_count, job)") == {"c_count"}
    assert _promql_metrics("max by (breaker) (d_state) == 1") == {"d_state"}


def _dashboard_exprs() -> list[str]:
    exprs = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())

        def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for p in panels:
                yield p
                yield from walk(p.get("panels", []))

        for p in walk(dashboard["panels"]):
            exprs.extend(t["expr"] for t in p.get("targets", []))
        for var in dashboard.get("templating", {}).get("list", []):
            query = var.get("query")
            exprs.append(query["query"] if isinstance(query, dict) else str(query or ""))
    return exprs


def _alert_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


# -- every file parses ------------------------------------------------------------------------


def test_every_deploy_file_parses() -> None:
    parsed = {}
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in (".yml", ".yaml"):
            parsed[path] = _yaml_docs(path)
        elif path.suffix == ".json":
            parsed[path] = json.loads(path.read_text())
        elif path.suffix == ".toml":
            parsed[path] = tomllib.loads(path.read_text())
    assert all(parsed.values()), [str(p) for p, v in parsed.items() if not v]
    names = {p.relative_to(DEPLOY).as_posix() for p in parsed}
    for required in (
        "docker-compose.yml",
        "gateway.toml",
        "prometheus/prometheus.yml",
        "grafana/dashboards/tracseq.json",
        "k8s/kustomization.yaml",
    ):
        assert required in names
    for obj in _k8s_objects():
        assert {"apiVersion", "kind", "metadata"} <= obj.keys(), obj


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_both_deployments_run_the_same_three_processes() -> None:
    compose = {w.module for w in WORKLOADS if w.source == "compose"}
    k8s = {w.module for w in WORKLOADS if w.source == "k8s"}
    assert compose == k8s
    assert GATEWAY_MODULE in compose
    services = compose - {GATEWAY_MODULE}
    assert len(services) == 2
    for module in services:  # each is a kit service with its own settings class
        assert issubclass(_settings_class(module), ServiceSettings)


# -- ports -------------------------------------------------------------------------------------


@pytest.mark.parametrize("w", _service_workloads(), ids=_ids(_service_workloads()))
def test_service_port_is_the_settings_port(w: Workload, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = _settings_class(w.module)
    settings = _settings_from(cls, w.env, monkeypatch)
    assert w.port == cls.model_fields["port"].default
    assert settings.port == w.port, "the service would listen on another port"
    assert settings.host == "0.0.0.0", "the service must listen beyond the loopback"


def _gateway_args(w: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the gateway CLI with the workload's arguments; return what it would serve."""
    from tracseq_kit.gateway import _cli

    argv = list(w.command[3:])
    config = argv[argv.index("--config") + 1]
    argv[argv.index("--config") + 1] = str(_local_gateway_config(w, config, tmp_path))
    captured: dict[str, Any] = {}
    monkeypatch.setattr(_cli, "_serve_granian", lambda args: captured.setdefault("args", args))
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.setdefault("uvicorn", kw))
    _cli.main(argv)
    if "args" in captured:
        return captured["args"].host, captured["args"].port
    return captured["uvicorn"]["host"], captured["uvicorn"]["port"]


def _local_gateway_config(w: Workload, target: str, tmp_path: Path) -> Path:
    """The file the container sees at ``target``."""
    if w.source == "compose":
        for volume in w.raw.get("volumes", []):
            source, mount = str(volume).split(":")[:2]
            if mount == target:
                return (DEPLOY / source).resolve()
        pytest.fail(f"compose {w.name}: nothing is mounted at {target}")
    pod = w.raw["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in _container(w.raw).get("volumeMounts", []):
        directory = mount["mountPath"].rstrip("/")
        if target.startswith(directory + "/"):
            key = mount.get("subPath") or target[len(directory) + 1 :]
            cm = _k8s("ConfigMap")[volumes[mount["name"]]["configMap"]["name"]]
            path = tmp_path / key
            path.write_text(cm["data"][key])
            return path
    pytest.fail(f"k8s {w.name}: nothing is mounted at {target}")


@pytest.mark.parametrize("w", _gateway_workloads(), ids=_ids(_gateway_workloads()))
def test_gateway_command_serves_on_the_exposed_port(
    w: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = _gateway_args(w, tmp_path, monkeypatch)
    assert port == w.port
    assert host == "0.0.0.0"


def test_k8s_services_and_annotations_match_container_ports() -> None:
    deployments, services = _k8s("Deployment"), _k8s("Service")
    assert set(services) == set(deployments)
    for name, dep in deployments.items():
        c = _container(dep)
        by_name = {p["name"]: p["containerPort"] for p in c["ports"]}
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        svc = services[name]["spec"]
        assert svc["selector"].items() <= pod_labels.items()
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        for port in svc["ports"]:
            target = port.get("targetPort", port["port"])
            target = by_name.get(target, target)
            assert target == port["port"] == c["ports"][0]["containerPort"]
        annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
        assert int(annotations["prometheus.io/port"]) == c["ports"][0]["containerPort"]


# -- environment -------------------------------------------------------------------------------


@pytest.mark.parametrize("w", WORKLOADS, ids=_ids(WORKLOADS))
def test_every_env_var_is_read_by_the_code(w: Workload, monkeypatch: pytest.MonkeyPatch) -> None:
    otel = _otel_variables()
    if w.module == GATEWAY_MODULE:
        # the gateway reads no settings class (all is in its file), only the tracing setup
        unknown = sorted(set(w.env) - otel)
        assert not unknown, f"{w.source} {w.name}: the gateway reads none of {unknown}"
        return
    cls = _settings_class(w.module)
    known = _env_names(cls)
    unknown = [k for k in w.env if k not in known and k not in otel]
    assert not unknown, f"{w.source} {w.name}: no code reads {unknown}"
    settings = _settings_from(cls, w.env, monkeypatch)  # and every value validates
    for key, value in w.env.items():
        if key in known:
            current = getattr(settings, known[key])
            if isinstance(current, SecretStr):
                current = current.get_secret_value()
            assert str(current) in (value, str(type(current)(value))), key


@pytest.mark.parametrize("w", _service_workloads(), ids=_ids(_service_workloads()))
def test_services_get_their_dependencies_and_secrets(w: Workload) -> None:
    cls = _settings_class(w.module)
    known = _env_names(cls)
    secret_fields = {
        env for env, f in known.items() if cls.model_fields[f].annotation in (SecretStr,)
    }
    assert secret_fields, "the settings class declares its DSN as a secret"
    assert secret_fields <= w.env.keys(), f"{w.name}: set {sorted(secret_fields - w.env.keys())}"
    kafka = cls.env_name("kafka_bootstrap")
    assert w.env.get(kafka), f"{w.name}: without {kafka} no event leaves the outbox"
    if w.source == "k8s":
        assert secret_fields <= w.secret_env, "DSNs come from a Secret"
        assert not (w.secret_env - secret_fields), "only secrets live in the Secret"


def test_compose_dependencies_are_healthy_before_services_start() -> None:
    services = _compose()["services"]
    for w in _compose_workloads():
        deps = w.raw.get("depends_on", {})
        assert isinstance(deps, dict) and deps, f"{w.name}: depends_on with conditions"
        for dep, spec in deps.items():
            assert dep in services
            assert spec["condition"] == "service_healthy", f"{w.name} -> {dep}"
            assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
        hosts = set()
        for key, value in w.env.items():
            if key.endswith("_POSTGRES_DSN"):
                hosts.add(httpx.URL(value).host)
            elif key.endswith("_KAFKA_BOOTSTRAP"):
                hosts.update(part.split(":")[0] for part in value.split(","))
        if w.module == GATEWAY_MODULE:
            config = load_config(DEPLOY / "gateway.toml")
            hosts.update(i.split(":")[0] for p in config.pools.values() for i in p.instances)
            if config.rate_limits and config.rate_limits.redis_url:
                hosts.add(httpx.URL(config.rate_limits.redis_url).host)
        assert hosts, w.name
        assert hosts <= deps.keys(), f"{w.name} uses {sorted(hosts - deps.keys())} unawaited"


@pytest.mark.parametrize("w", WORKLOADS, ids=_ids(WORKLOADS))
def test_tracing_exporter_resolves(w: Workload, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracseq_kit.telemetry import _tracing

    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)
    for key, value in w.env.items():
        if key.startswith("OTEL_"):
            monkeypatch.setenv(key, value)
    names = _tracing._exporter_names("OTEL_TRACES_EXPORTER")
    assert names, f"{w.name}: spans are exported nowhere"
    for name in names:  # what configure_telemetry does at start: fails if not installed
        assert callable(_tracing._load_exporter("opentelemetry_traces_exporter", name))
    if "otlp" in names:
        assert "otlp" in _dockerfile_extras(), "the image lacks the otlp extra"
    if w.module == GATEWAY_MODULE:
        from tracseq_kit.gateway._cli import traced

        monkeypatch.setattr("tracseq_kit.telemetry.configure_telemetry", lambda **_: None)
        assert traced(object()).__class__.__name__ == "TracingMiddleware"
        assert "server" in _dockerfile_extras(), "the gateway's tracing needs the server extra"
    endpoint = httpx.URL(w.env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    protocol = w.env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert endpoint.port == {"http/protobuf": 4318, "grpc": 4317}[protocol]
    if w.source == "compose":
        collector = _compose()["services"][endpoint.host]
        assert "jaeger" in collector["image"]
        assert str(collector["environment"]["COLLECTOR_OTLP_ENABLED"]).lower() == "true"


# -- health ------------------------------------------------------------------------------------


def _health_semantics(module: str, path: str) -> dict[str, int]:
    """Status of ``path`` on a fresh app: before startup, started, started + failing check."""
    app = _build_service_app(module)
    out = {"before": _get(app, path).status_code}
    app.state.health.mark_started()
    out["started"] = _get(app, path).status_code
    fresh = _build_service_app(module)
    fresh.state.health.mark_started()

    async def failing() -> None:
        raise ConnectionError("database down")

    fresh.state.health.add_check("postgres", failing)
    out["failing"] = _get(fresh, path).status_code
    out["media"] = _get(fresh, path).headers["content-type"] == HEALTH_JSON
    return out


def _probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
    return by_name.get(port, port)


@pytest.mark.parametrize(
    "w",
    [w for w in _service_workloads() if w.source == "k8s"],
    ids=_ids([w for w in _service_workloads() if w.source == "k8s"]),
)
def test_service_probes_use_the_health_endpoints(w: Workload) -> None:
    c = _container(w.raw)
    paths = {}
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c[kind]
        assert _probe_port(c, probe) == w.port, f"{kind} on another port"
        paths[kind] = probe["httpGet"]["path"]
    live = _health_semantics(w.module, paths["livenessProbe"])
    ready = _health_semantics(w.module, paths["readinessProbe"])
    startup = _health_semantics(w.module, paths["startupProbe"])
    assert all(r["media"] for r in (live, ready, startup)), "served by the health endpoints"
    # liveness never depends on startup or on dependencies (no restart loops)
    assert (live["before"], live["started"], live["failing"]) == (200, 200, 200)
    # readiness waits for startup and runs the dependency checks
    assert (ready["before"], ready["started"], ready["failing"]) == (503, 200, 503)
    # startup turns 200 once started, whatever the dependencies do later
    assert (startup["before"], startup["started"], startup["failing"]) == (503, 200, 200)


@pytest.mark.parametrize("w", [w for w in _compose_workloads()], ids=_ids(_compose_workloads()))
def test_compose_healthchecks(w: Workload, apps: dict[str, Any]) -> None:
    test = w.raw["healthcheck"]["test"]
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(test))
    assert len(urls) == 1, test
    url = httpx.URL(urls[0])
    assert url.host in ("127.0.0.1", "localhost")
    assert url.port == w.port
    if w.module == GATEWAY_MODULE:
        assert _gateway_semantics(url.path) == {"before": 503, "started": 200}
        return
    assert test[0] == "CMD" and Path(test[1]).name.startswith("python"), "python:slim has no curl"
    ready = _health_semantics(w.module, url.path)
    assert (ready["before"], ready["started"], ready["failing"]) == (503, 200, 503)
    assert url.path == "/readyz"


@pytest.mark.parametrize(
    "w",
    [w for w in _gateway_workloads() if w.source == "k8s"],
    ids=_ids([w for w in _gateway_workloads() if w.source == "k8s"]),
)
def test_gateway_probes_do_not_depend_on_upstreams(w: Workload) -> None:
    c = _container(w.raw)
    expected = {
        "livenessProbe": {"before": 200, "started": 200},
        "readinessProbe": {"before": 503, "started": 200},
        "startupProbe": {"before": 503, "started": 200},
    }
    for kind, semantics in expected.items():
        probe = c[kind]
        assert _probe_port(c, probe) == w.port
        assert _gateway_semantics(probe["httpGet"]["path"]) == semantics, kind


def _gateway_semantics(path: str) -> dict[str, int]:
    """Status of ``path`` on the deployed gateway config, before and after its startup.

    Its upstreams do not resolve here, so every pool is down throughout.
    """
    gateway = Gateway.from_file(DEPLOY / "gateway.toml")
    out = {"before": _get(gateway, path).status_code}

    async def started() -> int:
        await gateway.startup()
        try:
            transport = httpx.ASGITransport(app=gateway)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                response = await client.get(path)
                assert response.headers["content-type"] == HEALTH_JSON
                return response.status_code
        finally:
            await gateway.shutdown()

    out["started"] = asyncio.run(started())
    return out


@pytest.mark.parametrize("w", _service_workloads(), ids=_ids(_service_workloads()))
def test_stop_grace_outlasts_the_shutdown_timeout(
    w: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_from(_settings_class(w.module), w.env, monkeypatch)
    if w.source == "k8s":
        grace = w.raw["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    else:
        m = re.fullmatch(r"(\d+)s", str(w.raw["stop_grace_period"]))
        assert m is not None
        grace = int(m[1])
    assert grace > settings.shutdown_timeout


# -- gateway configuration ------------------------------------------------------------------


def _gateway_configs() -> list[tuple[str, GatewayConfig]]:
    cm = _k8s("ConfigMap")["gateway-config"]["data"]["gateway.toml"]
    return [
        ("compose", load_config(DEPLOY / "gateway.toml")),
        ("k8s", parse_config(tomllib.loads(cm), source="gateway-config")),
    ]


@pytest.mark.parametrize("source,config", _gateway_configs(), ids=["compose", "k8s"])
def test_gateway_pools_point_at_the_services(
    source: str, config: GatewayConfig, apps: dict[str, Any]
) -> None:
    by_name = {w.name: w for w in WORKLOADS if w.source == source}
    k8s_services = _k8s("Service")
    for pool_name, pool in config.pools.items():
        assert pool.instances, pool_name
        for instance in pool.instances:
            host, port = instance.rsplit(":", 1)
            assert host in by_name, f"{pool_name}: {host} is not a {source} service"
            target = by_name[host]
            if source == "k8s":
                assert int(port) in {p["port"] for p in k8s_services[host]["spec"]["ports"]}
            assert int(port) == target.port
            assert target.module != GATEWAY_MODULE
            health = _get(apps[target.module], pool.health_path)
            assert health.headers["content-type"] == HEALTH_JSON, pool.health_path
    for route in config.routes:
        upstream = by_name[config.pools[route.upstream].instances[0].rsplit(":", 1)[0]]
        paths = list(apps[upstream.module].openapi()["paths"])
        assert any(p.startswith(route.prefix) for p in paths), f"{route.prefix} not served"


# -- metrics ----------------------------------------------------------------------------------


def test_prometheus_scrapes_every_service(apps: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    by_name = {w.name: w for w in _compose_workloads()}
    scraped = set()
    for job in config["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                w = by_name[host]
                assert int(port) == w.port
                if w.module != GATEWAY_MODULE:
                    assert path == _settings_class(w.module)().metrics_path
                response = _get(apps[w.module], path)
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/plain")
                scraped.add(w.module)
    assert scraped == {w.module for w in _compose_workloads()}
    for rule_file in config.get("rule_files", []):
        mounts = [str(v) for v in _compose()["services"]["prometheus"]["volumes"]]
        assert any(m.split(":")[1] == rule_file for m in mounts), rule_file


def test_dashboard_and_alert_metrics_exist(exported_metrics: set[str]) -> None:
    from tracseq_kit.service._metrics import ACTIVE_METRIC, DURATION_METRIC

    exprs = _dashboard_exprs() + _alert_exprs()
    used = set().union(*(_promql_metrics(e) for e in exprs))
    missing = used - exported_metrics - _PROMETHEUS_OWN
    assert not missing, f"no code exports {sorted(missing)}"
    dashboard = set().union(*(_promql_metrics(e) for e in _dashboard_exprs()))
    # request rates and latencies of the services, straight from the chassis' names
    assert {DURATION_METRIC + "_count", DURATION_METRIC + "_bucket", ACTIVE_METRIC} <= dashboard
    # gateway traffic, circuit breakers and event flow: every family of theirs is shown
    for family in ("tracseq_gateway_", "tracseq_circuit_breaker_", "tracseq_events_"):
        exported = {n for n in exported_metrics if n.startswith(family)}
        assert exported, f"the code exports no {family}* metric any more"
        assert dashboard & exported, f"the dashboard shows no {family}* metric"


def test_dashboard_datasources_are_provisioned() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text()
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "tracseq.json").read_text())
    refs = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert refs and refs <= uids
    prometheus = next(d for d in provisioned["datasources"] if d["type"] == "prometheus")
    host = httpx.URL(prometheus["url"])
    assert host.host in _compose()["services"]
    providers = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    grafana_mounts = [str(v) for v in _compose()["services"]["grafana"]["volumes"]]
    for provider in providers["providers"]:
        mounted = {m.split(":")[1]: m.split(":")[0] for m in grafana_mounts if ":" in m}
        source = mounted[provider["options"]["path"]]
        assert list((DEPLOY / source).glob("*.json")), "the provider finds the dashboard"


# -- image -------------------------------------------------------------------------------------


def _dockerfile_stages() -> list[list[str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _dockerfile_extras() -> set[str]:
    text = (DEPLOY / "Dockerfile").read_text()
    m = re.search(r"tracseq_kit-\*\.whl\)\[([\w,]+)\]", text)
    assert m is not None, "the builder installs the project wheel with extras"
    return set(m[1].split(","))


def _dockerfile_uid() -> int:
    users = [line.split()[1] for line in _dockerfile_stages()[-1] if line.startswith("USER ")]
    assert users, "the final stage sets USER"
    return int(users[-1].split(":")[0])


def test_dockerfile_is_multi_stage_and_runs_unprivileged() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    text = (DEPLOY / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], final[0].split()[1])
    assert base == "python:3.11-slim"
    assert _dockerfile_uid() != 0
    body = "\n".join(final)
    assert re.search(r"COPY --from=\w+ /opt/venv", body), "the venv comes from the builder"
    assert not re.search(r"apt-get install|build-essential|gcc|pip (install|wheel)", body)
    assert re.search(r"^COPY .*examples/", body, re.M), "the example services are in the image"


def test_image_extras_exist_and_cover_the_services() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    defined = set(pyproject["project"]["optional-dependencies"])
    extras = _dockerfile_extras()
    assert extras <= defined
    assert not extras & {"test", "local", "dev", "all", "bench"}, "no test tooling in the image"
    assert {"server", "postgres", "kafka", "gateway", "sheets"} <= extras


def test_build_context_keeps_what_the_dockerfile_copies() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage in _dockerfile_stages():
        for line in stage:
            if line.startswith("COPY ") and "--from=" not in line:
                sources = [s for s in line.split()[1:-1] if not s.startswith("--")]
                for src in sources:
                    assert (ROOT / src).exists(), src
                    top = src.strip("/").split("/")[0]
                    assert top not in ignored, f".dockerignore drops {src}"
    for w in _compose_workloads():
        build = w.raw["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        ).resolve()


def test_k8s_pods_are_non_root_with_resources() -> None:
    uid = _dockerfile_uid()
    for name, dep in _k8s("Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        c = _container(dep)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid, name
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= c["resources"][part].keys(), (name, part)


def test_hpas_and_pdbs_target_existing_deployments() -> None:
    deployments = _k8s("Deployment")
    hpas = _k8s("HorizontalPodAutoscaler")
    assert set(hpas) == set(deployments)
    for name, hpa in hpas.items():
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment" and ref["name"] in deployments, name
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        container = _container(deployments[ref["name"]])
        for metric in hpa["spec"]["metrics"]:
            resource = metric["resource"]["name"]
            assert resource in container["resources"]["requests"], "utilisation needs requests"
    for name, pdb in _k8s("PodDisruptionBudget").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


# -- README ------------------------------------------------------------------------------------


def test_readme_describes_every_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name != "README.md":
            assert path.name in readme, f"deploy/README.md does not mention {path.name}"
    assert not re.search(r"(?<![\w.])/(?:work|home|Users|root)/", readme)


# -- with a Docker engine -------------------------------------------------------------------


@pytest.mark.docker
def test_compose_file_is_valid_for_docker_compose() -> None:
    from tracseq_kit.testing._resolve import docker_problem

    problem = docker_problem()
    if problem is not None:
        pytest.skip(f"no Docker engine here: {problem}")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
