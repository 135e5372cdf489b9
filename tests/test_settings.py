from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from tracseq_kit import ConfigurationError
from tracseq_kit.settings import ServiceSettings


class TemplateSettings(ServiceSettings, env_prefix="TRACSEQ_TEMPLATES_"):
    service_name: str = "templates"
    database_url: SecretStr = SecretStr("postgresql://localhost/templates")
    page_size: int = 50


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("PORT", "PAGE_SIZE", "DATABASE_URL", "CORS_ORIGINS", "CORS_ALLOW_CREDENTIALS"):
        monkeypatch.delenv(f"TRACSEQ_TEMPLATES_{name}", raising=False)


def test_values_come_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACSEQ_TEMPLATES_PORT", "8081")
    monkeypatch.setenv("TRACSEQ_TEMPLATES_DATABASE_URL", "postgresql://u:s3cret@db/t")
    monkeypatch.setenv("TRACSEQ_PORT", "9999")  # another service's prefix: ignored
    loaded = TemplateSettings()
    assert loaded.port == 8081
    assert loaded.database_url.get_secret_value() == "postgresql://u:s3cret@db/t"
    assert "s3cret" not in repr(loaded) and "s3cret" not in str(loaded)


def test_dotenv_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("TRACSEQ_TEMPLATES_PAGE_SIZE=20\nTRACSEQ_TEMPLATES_PORT=7000\n")
    monkeypatch.setenv("TRACSEQ_TEMPLATES_PORT", "7001")
    loaded = TemplateSettings()
    assert loaded.page_size == 20
    assert loaded.port == 7001


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACSEQ_TEMPLATES_PAGE_SIZE", "many")
    with pytest.raises(ConfigurationError, match="TRACSEQ_TEMPLATES_PAGE_SIZE") as info:
        TemplateSettings()
    assert "many" not in str(info.value)


def test_every_invalid_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACSEQ_TEMPLATES_PORT", "70000")
    monkeypatch.setenv("TRACSEQ_TEMPLATES_PAGE_SIZE", "x")
    with pytest.raises(ConfigurationError) as info:
        TemplateSettings()
    assert "TRACSEQ_TEMPLATES_PORT" in str(info.value)
    assert "TRACSEQ_TEMPLATES_PAGE_SIZE" in str(info.value)


def test_wildcard_origin_with_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACSEQ_TEMPLATES_CORS_ORIGINS", "*")
    monkeypatch.setenv("TRACSEQ_TEMPLATES_CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ConfigurationError, match=r"TRACSEQ_TEMPLATES_CORS_ALLOW_CREDENTIALS.*'\*'"):
        TemplateSettings()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://a.example, https://b.example", ["https://a.example", "https://b.example"]),
        ('["https://a.example"]', ["https://a.example"]),
        ("", []),
    ],
)
def test_lists_accept_commas_or_json(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("TRACSEQ_TEMPLATES_CORS_ORIGINS", raw)
    assert TemplateSettings().cors_origins == expected


def test_keyword_arguments_override_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACSEQ_TEMPLATES_PORT", "1")
    assert TemplateSettings(port=2).port == 2


def test_env_name() -> None:
    assert TemplateSettings.env_name("page_size") == "TRACSEQ_TEMPLATES_PAGE_SIZE"
    assert ServiceSettings.env_name("port") == "TRACSEQ_PORT"


@settings(max_examples=100, deadline=None)
@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=8, max_size=30))
def test_errors_never_echo_values(secret: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        TemplateSettings(page_size=secret, port=secret)
    assert secret not in str(info.value)
    assert info.value.__cause__ is None  # the pydantic error (with the input) is not chained


def test_access_log_is_opt_in() -> None:
    from tracseq_kit.settings import ServiceSettings

    assert ServiceSettings().access_log is False
    assert ServiceSettings(access_log=True).access_log is True
