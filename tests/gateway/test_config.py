from __future__ import annotations

from pathlib import Path

import pytest

from tracseq_kit import ConfigurationError
from tracseq_kit.gateway import load_config, parse_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "gateway" / "gateway.toml"


def _cfg(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "pools": {"a": {"instances": ["127.0.0.1:1"]}},
        "routes": [{"prefix": "/a", "upstream": "a"}],
    }
    base.update(over)
    return base


def _error(data: object) -> str:
    with pytest.raises(ConfigurationError) as info:
        parse_config(data, source="gw.toml")
    return str(info.value)


def test_unknown_pool_names_the_route_key() -> None:
    routes = [
        {"prefix": "/a", "upstream": "a"},
        {"prefix": "/b", "upstream": "a"},
        {"prefix": "/c", "upstream": "x"},
    ]
    assert _error(_cfg(routes=routes)) == "gw.toml: routes[2].upstream: unknown pool 'x'"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_cfg(pools={"a": {"instances": ["nohost"]}}), "pools.a.instances: instance 'nohost'"),
        (_cfg(pools={"a": {}}), "pools.a: a pool needs static 'instances'"),
        (_cfg(routes=[{"prefix": "a", "upstream": "a"}]), "routes[0].prefix: prefix 'a' must"),
        (_cfg(routes=[{"prefix": "/a", "upstream": "a", "tmeout": 1}]), "routes[0].tmeout: Extra"),
        (_cfg(routes=[{"prefix": "/a", "upstream": "a", "timeout": 0}]), "routes[0].timeout"),
        (_cfg(routes=[{"prefix": "/a", "upstream": "a", "auth": True}]), "routes[0].auth: needs"),
        (
            _cfg(pools={"a": {"service": "templates"}}),
            "pools.a.service: needs a [registry] section",
        ),
        (
            _cfg(
                auth={"jwt": {"algorithms": ["RS256"], "keys": [{"alg": "HS256", "secret": "s"}]}}
            ),
            "keys[0].alg 'HS256' is not in 'algorithms'",
        ),
        (
            _cfg(auth={"jwt": {"algorithms": ["HS256"], "keys": [{"alg": "HS256"}]}}),
            "auth.jwt.keys[0]: an HS256 key needs 'secret'",
        ),
        (_cfg(auth={"api_keys": [{"id": "x", "sha256": "plain"}]}), "auth.api_keys[0].sha256"),
    ],
)
def test_errors_point_at_the_bad_key(data: object, expected: str) -> None:
    assert expected in _error(data)


def test_toml_and_yaml_files(tmp_path: Path) -> None:
    toml = tmp_path / "g.toml"
    toml.write_text('[pools.a]\ninstances=["h:1"]\n[[routes]]\nprefix="/a"\nupstream="a"\n')
    yml = tmp_path / "g.yaml"
    yml.write_text("pools:\n  a: {instances: ['h:1']}\nroutes:\n  - {prefix: /a, upstream: a}\n")
    assert load_config(toml) == load_config(yml)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("g.toml", "[pools\n", "g.toml: invalid TOML"),
        ("g.yaml", "pools: [\n", "g.yaml: invalid YAML"),
        ("g.yaml", "- 1\n", "g.yaml: the top level must be"),
        ("g.json", "{}", "use a .toml, .yaml or .yml file"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert expected in str(info.value)


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_example_routes_tracseq_paths() -> None:
    from tracseq_kit.gateway import Gateway

    gw = Gateway(load_config(EXAMPLE))
    table = gw._snap.table
    templates = table.match("GET", "/api/templates/42")
    events = table.match("GET", "/api/events/stream")
    assert templates is not None and events is not None
    assert templates.pool.name == "templates"
    assert [i.address for i in templates.pool.instances] == ["127.0.0.1:8083"]
    assert events.pool.name == "events"
    assert [i.address for i in events.pool.instances] == ["127.0.0.1:8095"]


def test_example_entry_point_builds_the_gateway() -> None:
    import runpy

    from tracseq_kit.gateway import Gateway

    namespace = runpy.run_path(str(EXAMPLE.with_name("main.py")))
    assert isinstance(namespace["app"], Gateway)
    assert {r.prefix for r in namespace["app"].config.routes} == {"/api/templates", "/api/events"}
