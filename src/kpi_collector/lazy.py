"""Names a package exports without importing their modules until first used, so that
`kpi --help` and `import kpi_collector` stay fast (pydantic, SQLAlchemy load on demand)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from importlib import import_module
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` serving `name` from `package.modules[name]` on first use."""

    def __getattr__(name: str) -> Any:
        if name in modules:
            return getattr(import_module(f"{package}.{modules[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def entry_point_exports(group: str, package: str) -> Callable[[str], Any]:
    """A module `__getattr__` serving the classes that `package`'s own entry points in `group`
    name, loaded on first use: `from kpi_collector.sources import GitHub` loads the entry point
    `github = "kpi_collector.sources.github:GitHub"`.

    The entry points (pyproject.toml) stay the one list of built-in types: nothing is repeated
    here, and they are read on the first such name, not at import. Third-party entry points
    (other packages) are never served. Raises AttributeError for a name no entry point of
    `package` declares.
    """

    def __getattr__(name: str) -> Any:
        entry = _classes(group, package).get(name)
        if entry is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(entry[0]), entry[1])

    return __getattr__


def exported_names(group: str, package: str) -> list[str]:
    """The class names `entry_point_exports(group, package)` serves, sorted (for `__dir__`)."""
    return sorted(_classes(group, package))


@cache
def _classes(group: str, package: str) -> dict[str, tuple[str, str]]:
    """class name -> (module, attribute) of `package`'s entry points in `group`."""
    from importlib.metadata import entry_points

    found: dict[str, tuple[str, str]] = {}
    for ep in entry_points(group=group):
        if ep.module.startswith(f"{package}.") and ep.attr:
            found[ep.attr] = (ep.module, ep.attr)
    return found
