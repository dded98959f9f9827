"""Names a package exports without importing their modules until first used, so that
`kpi --help` and `import kpi_collector` stay fast (pydantic, SQLAlchemy load on demand)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` serving `name` from `package.modules[name]` on first use."""

    def __getattr__(name: str) -> Any:
        if name in modules:
            return getattr(import_module(f"{package}.{modules[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
