"""Code blocks in docs are run by tests.

Every fenced ```python block of every ``docs/*.md`` page and of ``README.md`` runs:

- The blocks of one page run in order in one namespace (a module named after the page),
  so a page can build up step by step, as the tutorial does. Top-level ``await`` is
  allowed: blocks are compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` and the page
  runs inside one asyncio event loop. The working directory is the repository root.
- Servers come from the kit's pytest fixtures through environment variables. A page
  that mentions a variable ``TRACSEQ_<...>POSTGRES_DSN`` or ``TRACSEQ_<...>DATABASE_URL``
  gets it set to a fresh PostgreSQL schema of its own (dropped afterwards),
  ``TRACSEQ_<...>REDIS_URL`` to the ``redis_url`` fixture and
  ``TRACSEQ_<...>KAFKA_BOOTSTRAP`` to the ``kafka_bootstrap`` fixture, and
  ``TRACSEQ_BASE_URL`` to a gateway in front of both example services (the stack that
  ``tracseq dev`` runs), for pages that use the typed client. The docs read
  them like services do, e.g. ``os.environ.get("TRACSEQ_REDIS_URL", "redis://...")``.
  Servers are started only for the pages that mention them.
- A block that cannot run on its own (it needs the running stack on :8000, a Docker
  engine, ...) is preceded by an HTML comment on the line right before its fence::

      <!-- docs-test: skip needs the gateway of `tracseq dev` on :8000 -->

  The reason is required; each skipped block is reported as a skipped test with it.
- Example tests a page defines (functions named ``test_*``) are then called, in order,
  with the fixtures their parameters name (``postgres_schema``, ``redis_prefix``,
  ``kafka_topic``, ...), as pytest would call them.
- ```bash blocks are not run, but every ``tracseq`` subcommand they name must exist.

One more test builds the site with ``mkdocs build --strict``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import io
import os
import re
import shlex
import subprocess
import sys
import types
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from tracseq_kit.telemetry import reset_metrics_registry

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<info>[^`]*)$")
_SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip\b(?P<reason>.*?)-->\s*$")
_VARIABLE = re.compile(r"\bTRACSEQ_[A-Z0-9_]+\b")
_SEPARATORS = re.compile(r"&&|\|\||[|;]")
_FIXTURES = {"redis": "redis_url", "kafka": "kafka_bootstrap"}

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


@pytest.fixture
def anyio_backend() -> str:
    # asyncpg, redis-py asyncio and aiokafka, which the docs use, need asyncio.
    return "asyncio"


# -- reading pages --------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, text, and where it starts (1-based)."""

    page: Path
    line: int
    language: str
    code: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, with the skip marker that precedes each, if any.

    Raises ``ValueError`` for an unclosed fence or a skip marker without a reason.
    """
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = (opening["info"].split() or [""])[0].lower()
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""
        ):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{page.name}:{start + 1}: code fence is never closed")
        i += 1
        reason = None
        if start > 0 and (marker := _SKIP.match(lines[start - 1])):
            reason = marker["reason"].strip()
            if not reason:
                raise ValueError(f"{page.name}:{start}: 'docs-test: skip' needs a reason")
        blocks.append(Block(page, start + 1, language, "\n".join(body) + "\n", reason))
    return blocks


def _python_blocks(page: Path) -> list[Block]:
    return [b for b in read_blocks(page) if b.language in ("python", "py")]


def _pages_with_python() -> list[Path]:
    """Pages with at least one python block to run (not skipped)."""
    return [p for p in PAGES if any(b.skip_reason is None for b in _python_blocks(p))]


def _skipped_blocks() -> list[Block]:
    return [b for p in PAGES for b in _python_blocks(p) if b.skip_reason is not None]


def _tracseq_commands() -> list[tuple[str, list[str]]]:
    """Every ``tracseq ...`` command in a bash block: where it is, its subcommand words."""
    found = []
    for page in PAGES:
        for block in read_blocks(page):
            if block.language not in ("bash", "sh", "shell", "console"):
                continue
            for n, line in enumerate(block.code.replace("\\\n", " ").splitlines()):
                for segment in _SEPARATORS.split(line):
                    try:
                        words = shlex.split(segment, comments=True)
                    except ValueError:
                        continue
                    for i, word in enumerate(words):
                        if Path(word).name == "tracseq":
                            where = f"{page.relative_to(ROOT)}:{block.line + 1 + n}"
                            found.append((where, _subcommand(words[i + 1 :])))
                            break
    return found


def _subcommand(words: list[str]) -> list[str]:
    """The leading subcommand words: up to the first option, placeholder or value."""
    out = []
    for word in words:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
            break
        out.append(word)
    return out


# -- servers for the pages ------------------------------------------------------------


def _server_variables(page: Path) -> dict[str, str]:
    """The server variables a page mentions, each mapped to the server it names."""
    wanted = {}
    for name in set(_VARIABLE.findall(page.read_text(encoding="utf-8"))):
        if name.startswith("TRACSEQ_TEST_"):
            continue  # the fixtures' own inputs, documented in testing.md
        if name.endswith(("POSTGRES_DSN", "DATABASE_URL")):
            wanted[name] = "postgres"
        elif name.endswith("REDIS_URL"):
            wanted[name] = "redis"
        elif name.endswith("KAFKA_BOOTSTRAP"):
            wanted[name] = "kafka"
        elif name == "TRACSEQ_BASE_URL":
            wanted[name] = "stack"
    return wanted


def _with_search_path(dsn: str, schema: str) -> str:
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query["search_path"] = schema
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextlib.asynccontextmanager
async def _fresh_schema(postgres_dsn: str) -> AsyncIterator[str]:
    """A DSN whose search_path is a new schema; the schema is dropped afterwards."""
    name = f"docs_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    try:
        yield _with_search_path(postgres_dsn, name)
    finally:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()


@contextlib.contextmanager
def _page_module(page: Path) -> Iterator[dict[str, Any]]:
    """A fresh module for the page's namespace, importable while the page runs
    (dataclasses and pydantic look classes' modules up in ``sys.modules``)."""
    name = "docs_" + re.sub(r"\W", "_", page.stem.lower())
    module = types.ModuleType(name)
    module.__file__ = str(page)
    sys.modules[name] = module
    try:
        yield module.__dict__
    finally:
        del sys.modules[name]


async def _run_block(block: Block, namespace: dict[str, Any]) -> None:
    # Pad with blank lines so tracebacks point at the page's own line numbers.
    source = "\n" * block.line + block.code
    code = compile(
        source, str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    if code.co_flags & inspect.CO_COROUTINE:
        await eval(code, namespace)
    else:
        exec(code, namespace)


# -- tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", _pages_with_python(), ids=lambda p: p.name)
async def test_python_blocks_run(
    page: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    # Pages register metrics and collectors of their own: give each page an empty
    # registry, and leave an empty one behind for the tests that follow.
    reset_metrics_registry()
    request.addfinalizer(reset_metrics_registry)
    async with contextlib.AsyncExitStack() as stack:
        schema_dsn: str | None = None
        for variable, server in sorted(_server_variables(page).items()):
            if server == "postgres":
                if schema_dsn is None:
                    dsn = request.getfixturevalue("postgres_dsn")
                    schema_dsn = await stack.enter_async_context(_fresh_schema(dsn))
                monkeypatch.setenv(variable, schema_dsn)
            elif server == "stack":
                from services_support import ADMIN_TOKEN

                monkeypatch.setenv(variable, await _stack(stack, request))
                monkeypatch.setenv("TRACSEQ_API_TOKEN", ADMIN_TOKEN)  # the stack needs one
            else:
                monkeypatch.setenv(variable, request.getfixturevalue(_FIXTURES[server]))
        with _page_module(page) as namespace:
            for block in _python_blocks(page):
                if block.skip_reason is None:
                    await _run_block(block, namespace)
            for test in _page_tests(namespace):
                await _run_page_test(test, request)


async def _stack(stack: contextlib.AsyncExitStack, request: pytest.FixtureRequest) -> str:
    """The example services behind a gateway, each service in a schema of its own."""
    from services_support import serve_stack

    dsn = request.getfixturevalue("postgres_dsn")
    template_dsn = await stack.enter_async_context(_fresh_schema(dsn))
    event_dsn = await stack.enter_async_context(_fresh_schema(dsn))
    return stack.enter_context(
        serve_stack(
            template_dsn=template_dsn,
            event_dsn=event_dsn,
            kafka_bootstrap=request.getfixturevalue("kafka_bootstrap"),
        )
    )


def _page_tests(namespace: dict[str, Any]) -> list[Any]:
    """The ``test_*`` functions a page defines, in the order it defines them."""
    return [
        value
        for name, value in namespace.items()
        if name.startswith("test_")
        and inspect.isfunction(value)
        and value.__module__ == namespace["__name__"]
    ]


async def _run_page_test(test: Any, request: pytest.FixtureRequest) -> None:
    """Call a page's test with the fixtures its parameters name, as pytest would."""
    arguments = {name: request.getfixturevalue(name) for name in inspect.signature(test).parameters}
    result = test(**arguments)
    if inspect.isawaitable(result):
        await result


if _skipped_blocks():  # each skipped block shows as a skipped test with its reason

    @pytest.mark.parametrize("block", _skipped_blocks(), ids=lambda b: b.where)
    def test_skipped_block(block: Block) -> None:
        pytest.skip(f"{block.where}: {block.skip_reason}")


@pytest.mark.parametrize(
    ("where", "words"),
    _tracseq_commands(),
    ids=lambda v: " ".join(["tracseq", *v]) if isinstance(v, list) else v,
)
def test_tracseq_commands_in_bash_blocks_exist(where: str, words: list[str]) -> None:
    from tracseq_kit.cli import main as tracseq_main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = tracseq_main([*words, "--help"])
        except SystemExit as exc:
            status = exc.code
    assert status in (0, None), (
        f"{where}: `tracseq {' '.join(words)}` is not a command of the installed "
        f"`tracseq`: {err.getvalue().strip()}"
    )


def test_markers_are_well_formed() -> None:
    for page in PAGES:
        read_blocks(page)  # raises on an unclosed fence or a reasonless skip marker
        lines = page.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if "docs-test:" in line:
                following = lines[n + 1] if n + 1 < len(lines) else ""
                assert _SKIP.match(line) and following.lstrip().startswith("```"), (
                    f"{page.name}:{n + 1}: a docs-test marker must be "
                    "'<!-- docs-test: skip <reason> -->' on the line right before a fence"
                )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    needed = {
        "mkdocs": "mkdocs",
        "material": "mkdocs-material",
        "mkdocstrings_handlers.python": "mkdocstrings[python]",
    }
    missing = [dist for module, dist in needed.items() if not _importable(module)]
    if "mkdocs" in missing:
        pytest.skip("mkdocs is not installed; pip install 'tracseq-kit[docs]' to build the site")
    assert not missing, f"the docs site needs {missing}: pip install 'tracseq-kit[docs]'"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--site-dir",
            str(tmp_path / "site"),
            "--config-file",
            str(ROOT / "mkdocs.yml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_public_module_has_a_reference_page() -> None:
    import pkgutil

    import tracseq_kit

    public = {
        info.name
        for info in pkgutil.walk_packages(tracseq_kit.__path__, prefix="tracseq_kit.")
        if not any(part.startswith("_") for part in info.name.split("."))
    }
    documented = {
        line.removeprefix("::: ").strip()
        for page in (ROOT / "docs" / "reference").glob("*.md")
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("::: ")
    }
    assert public - documented == set()
