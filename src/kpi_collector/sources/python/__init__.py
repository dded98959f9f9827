"""`type: python`: any function returning `{name: number}`, sync (run in a daemon thread, which
a call that never returns leaves behind at the source's timeout) or async (run on a loop of
its own in such a thread: a blocking call inside it stalls no other source)."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator, model_validator

from kpi_collector.collect.extract import Metric, finish_plain
from kpi_collector.collect.offload import in_daemon_thread, on_own_loop
from kpi_collector.errors import ConfigError, ExtractError, MetricErrors, SourceError
from kpi_collector.secrets import redact_cut, remember_values
from kpi_collector.sources.base import Source, SourceContext

#: characters of a function's or a program's own error message kept in the source's error
MESSAGE_LIMIT = 240


class Function(Source):
    """A Python function as a source: `Function(get_blog_stats)` or `function: pkg.mod:func`."""

    type: ClassVar[str] = "python"

    function: str | Callable[..., Any]
    kwargs: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)  # optional checks per metric
    _callable: Callable[..., Any] | None = PrivateAttr(default=None)

    def __init__(self, function: Any = None, /, **data: Any) -> None:
        if function is not None:
            data["function"] = function
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _name_from_function(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and data.get("function") is not None:
            func = data["function"]
            name = (
                getattr(func, "__name__", None) if callable(func) else str(func).rpartition(":")[2]
            )
            if name and name != "<lambda>":
                data = {**data, "name": name}
        return data

    @field_validator("kwargs")
    @classmethod
    def _secret_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        remember_credentials(value)  # a function that fails often repeats what it was given
        return value

    @field_validator("function")
    @classmethod
    def _importable(cls, value: Any) -> Any:
        if isinstance(value, str) and (":" not in value or not all(value.split(":", 1))):
            raise ValueError(f"{value!r} should look like package.module:function")
        return value

    def resolve(self, base_dir: Path | None = None) -> Callable[..., Any]:
        """The function to call; `package.module:function` is imported first from `base_dir`
        (the folder of `kpi.yaml`) when the module lives there, else from `sys.path`."""
        if self._callable is None:
            if callable(self.function):
                self._callable = self.function
            else:
                module_name, _, attr = self.function.partition(":")
                if base_dir is not None:
                    importable_from(base_dir, module_name)
                try:
                    target: Any = importlib.import_module(module_name)
                    for part in attr.split("."):
                        target = getattr(target, part)
                except (ImportError, AttributeError) as exc:
                    raise ConfigError(
                        f"source {self.name!r}: cannot import {self.function!r}: {exc}"
                    ) from exc
                if not callable(target):
                    raise ConfigError(f"source {self.name!r}: {self.function!r} is not callable")
                self._callable = target
        return self._callable

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        func = self.resolve(ctx.base_dir)
        try:
            if inspect.iscoroutinefunction(func):
                # a loop of its own: a blocking call inside it holds only its thread
                result = await on_own_loop(lambda: func(**self.kwargs))
            else:
                # a daemon thread: one still running after the source's timeout keeps
                # neither the run's end nor a celery worker's batch waiting
                result = await in_daemon_thread(lambda: func(**self.kwargs))
                if inspect.iscoroutine(result):  # (a sync wrapper of an async function)
                    coroutine = result
                    result = await on_own_loop(lambda: coroutine)
                elif inspect.isawaitable(result):
                    result = await result
        except (SourceError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # one line, cut: a message may hold a traceback, a validation report or a page
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise SourceError(redact_cut(text, MESSAGE_LIMIT)) from exc
        return to_values(result, self.metrics, self.locale)


#: an argument named like a credential: `api_key`, `token`, `password`, `auth`, `dsn`
_CREDENTIAL_NAME = re.compile(r"(?i)token|secret|passw|pwd|key|credential|auth|dsn")


def remember_credentials(arguments: Mapping[str, Any], secret: bool = False) -> None:
    """Mark as secret the text values given under a credential's name (`api_key`, `auth:
    {password: ...}`), at any depth, with the length rule of `remember_values` for values
    written in the file; a value from `${VAR}` is already secret (the loader remembers it)."""
    for key, value in arguments.items():
        named = isinstance(key, str) and _CREDENTIAL_NAME.search(key) is not None
        _remember_in(value, secret or named)


def _remember_in(value: Any, secret: bool) -> None:
    if isinstance(value, Mapping):
        remember_credentials(value, secret)
    elif isinstance(value, list | tuple):
        for item in value:
            _remember_in(item, secret)
    elif secret and isinstance(value, str):
        remember_values({"value": value})


def check_findable(source: Function, base_dir: Path) -> None:
    """Raise ConfigError when the module of `source`'s `function:` is neither beside
    `kpi.yaml` nor installed (`kpi validate`: a typo found before the first run). Only its
    top-level module is looked for: nothing of the user's code runs."""
    if callable(source.function):
        return
    module_name = source.function.partition(":")[0]
    importable_from(base_dir, module_name)
    top = module_name.partition(".")[0]
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            f"source {source.name!r}: function {source.function!r}: no module {top!r} beside "
            f"kpi.yaml ({base_dir}) nor installed; check the name before the ':'"
        )


def importable_from(folder: Path, module_name: str) -> None:
    """Put `folder` first on `sys.path` when it holds `module_name`'s top-level module or
    package (`acme_metrics.py` or `acme_metrics/` beside `kpi.yaml`), as `python script.py`
    does for the script's folder; other folders are left alone."""
    top = module_name.partition(".")[0]
    folder = folder.resolve()
    if not ((folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()):
        return
    entry = str(folder)
    if entry not in sys.path:
        sys.path.insert(0, entry)
        importlib.invalidate_caches()


def to_values(
    result: Any,
    metrics: Mapping[str, Metric],
    locale: str | None = None,
    *,
    missing: str = "the function did not return it",
) -> dict[str, float]:
    """Check that `result` is `{name: number}`, reading numeric text where needed; a metric
    of `metrics` that `result` lacks is an error saying `missing`."""
    if not isinstance(result, Mapping):
        raise ExtractError(
            f"expected a mapping of metric names to numbers, got {type(result).__name__}"
        )
    names = [key for key in result if not isinstance(key, str)]
    if names:
        # `{1: 5, "1": 6}` would store one of them under `1`, `{None: 3}` a KPI `None`
        shown = ", ".join(f"{redact_cut(str(key), 60)} ({type(key).__name__})" for key in names)
        raise ExtractError(
            f"a key of the mapping is not a metric name: {shown}; name each number with "
            'text, e.g. {"signups": 12}'
        )
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    for key, raw in result.items():
        name = str.__str__(key)  # a `str` Enum's value, not `Kind.SIGNUPS`
        try:
            values[name] = finish_plain(name, raw, metrics.get(name) or Metric(), locale)
        except ExtractError as exc:
            errors[name] = str(exc)
    for name in metrics:
        if name not in result:
            errors[name] = f"{name}: {missing}"
    if errors:
        raise MetricErrors(values, errors)
    return values
