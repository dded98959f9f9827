"""Every public name of the extension contract and of the store API has a docstring.

The contract (`sources.base` and `.model`, `destinations.base` and `.model`, `collect.http`
and `.auth`, `config.plain`) is what connector authors write against; the store API is what every layer above the store calls. A public function,
class, method or property without a docstring fails here, and so does a field of a public
dataclass, NamedTuple or config model that its class docstring does not name (in backticks)
and that has no `description`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

MODULES = [
    "kpi_collector.sources.base",
    "kpi_collector.sources.model",
    "kpi_collector.collect.http",
    "kpi_collector.collect.auth",
    "kpi_collector.destinations.base",
    "kpi_collector.destinations.model",
    "kpi_collector.config.plain",
    "kpi_collector.store",
    "kpi_collector.store.history",
    "kpi_collector.store.lock",
    "kpi_collector.store.heartbeats",
    "kpi_collector.store.rollup",
]


def public_names(module: ModuleType) -> Iterator[tuple[str, Any]]:
    """(qualified name, object) of each public function and class defined in `module` (or,
    for a package, re-exported in its `__all__`), and of each public method and property
    those classes define themselves."""
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if obj.__module__ != module.__name__ and not hasattr(module, "__path__"):
            continue  # imported from elsewhere: checked where it is defined
        yield name, obj
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_"):
                    continue
                if isinstance(value, staticmethod | classmethod):
                    value = value.__func__
                if inspect.isfunction(value) or isinstance(value, property):
                    yield f"{name}.{member}", value


def fields(cls: type) -> list[str]:
    """The public fields `cls` itself declares (not those it inherits); for a config model,
    those without a `description`."""
    own = inspect.get_annotations(cls)
    if dataclasses.is_dataclass(cls):
        found = [f.name for f in dataclasses.fields(cls) if f.name in own]
    elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
        found = list(cls._fields)
    elif issubclass(cls, BaseModel):
        found = [n for n, info in cls.model_fields.items() if n in own and not info.description]
    else:
        found = []
    return [name for name in found if not name.startswith("_")]


def docstring(obj: Any) -> str:
    """The docstring `obj` was written with ("" for a class whose docstring dataclasses or
    NamedTuple generated from its signature)."""
    doc = (obj.__doc__ or "").strip()
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return doc


def described(cls: type, field: str) -> bool:
    """True when the class docstring names `field` in backticks, or its declaration has a
    comment: `#: ...` on the line above or `# ...` at the end of the line."""
    if f"`{field}`" in docstring(cls):
        return True
    lines = inspect.getsource(cls).splitlines()
    declaration = re.compile(rf"^\s+{re.escape(field)}\s*:")
    for i, line in enumerate(lines):
        if declaration.match(line):
            above = lines[i - 1].strip() if i else ""
            return "  # " in line or above.startswith("#:")
    return False


@pytest.mark.parametrize("module_name", MODULES)
def test_public_names_have_docstrings(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    missing = [f"{module_name}.{name}" for name, obj in public_names(module) if not docstring(obj)]
    assert not missing, "public names without a docstring: " + ", ".join(missing)


@pytest.mark.parametrize("module_name", MODULES)
def test_fields_are_described(module_name: str) -> None:
    module = importlib.import_module(module_name)
    undescribed = [
        f"{module_name}.{name}.{field}"
        for name, obj in public_names(module)
        if inspect.isclass(obj)
        for field in fields(obj)
        if not described(obj, field)
    ]
    assert not undescribed, "fields without a description: " + ", ".join(undescribed)


def test_the_walk_sees_the_contract() -> None:
    """The walk finds the names it must check (a broken walk would pass everything)."""
    from kpi_collector.sources import base, model

    found = dict(public_names(base))
    assert {"PlainSource", "PlainSource.collect", "PlainSource.backfill"} <= found.keys()
    assert "SourceContext" in found and "Source" in dict(public_names(model))
    assert "SourceContext.http" in found and "SourceContext.today" in found
    assert fields(base.SourceContext) == [
        "http_client",
        "timeout",
        "retries",
        "tz",
        "now",
        "base_dir",
        "max_bytes",
        "limits",
        "browser",
        "day",
    ]
    assert fields(model.Source) == ["timeout", "retries", "max_bytes"]
