"""The exported names are the contract: pin them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import tracseq_kit


def _public_modules() -> list[str]:
    """Every module of the kit whose dotted name has no part starting with '_'."""
    names = ["tracseq_kit"]
    for info in pkgutil.walk_packages(tracseq_kit.__path__, prefix="tracseq_kit."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = _public_modules()


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff (RUF022) keeps: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_sorted_and_resolvable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_key), f"{module_name}.__all__ is not sorted"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.{name} is exported but missing"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"


def test_every_error_derives_from_the_root() -> None:
    for name in tracseq_kit.__all__:
        obj = getattr(tracseq_kit, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            assert issubclass(obj, tracseq_kit.TracSeqError)


def test_version_comes_from_one_place() -> None:
    from importlib.metadata import version

    assert tracseq_kit.__version__ == version("tracseq-kit")


def test_missing_dependency_error_names_the_extra() -> None:
    err = tracseq_kit.MissingDependencyError("asyncpg", extra="postgres", purpose="The check")
    assert "pip install 'tracseq-kit[postgres]'" in str(err)
    assert isinstance(err, ImportError)


def test_circuit_open_error_never_has_negative_remaining() -> None:
    err = tracseq_kit.CircuitOpenError("db", remaining=-1.0)
    assert err.remaining == 0.0
    assert err.retriable
