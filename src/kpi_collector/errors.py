"""The exceptions kpi-collector raises; only the CLI turns them into messages and exit codes.

    KpiError
    ├── ConfigError          the config or the command line is wrong (exit 2, nothing ran)
    ├── SourceError          a source could not give its values (stored with the run)
    │   ├── HttpError        an HTTP answer that is not a success (status, url)
    │   ├── LoginError       a login form refused the credentials
    │   └── ExtractError     the answer came, but the metric could not be read from it
    ├── DeliveryError        a destination could not take the values (stays pending)
    └── StoreError           the history store cannot be opened, migrated or written

Every error carries ``transient``: True means trying again later may succeed (connection
errors, timeouts, 5xx, 429), False means it will not until someone fixes something.
"""

from __future__ import annotations

from collections.abc import Iterable


class KpiError(Exception):
    """Base of every error kpi-collector raises on purpose."""

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return self.message


class ConfigError(KpiError):
    """The config file or the command line is wrong; nothing ran."""


class SourceError(KpiError):
    """A source failed; the other sources go on."""


class HttpError(SourceError):
    """An HTTP response that is not a success."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str = "",
        retry_after: float | None = None,
        transient: bool | None = None,
    ) -> None:
        if transient is None:
            transient = status is None or status == 429 or status >= 500
        super().__init__(message, transient=transient)
        self.status = status
        self.url = url
        self.retry_after = retry_after


class LoginError(SourceError):
    """A login form did not accept the credentials."""


class ExtractError(SourceError):
    """The page or document came, but a metric could not be read from it."""


class DeliveryError(KpiError):
    """A destination could not take the values; the delivery stays pending.

    `refused` (terminal): the service will never accept this payload (HTTP 400, 413, 422, a
    size limit): the delivery is marked failed so it stops holding back the later periods,
    and `kpi deliver --retry PERIOD` sends it again by hand. Other terminal errors (a bad
    token, a deleted webhook) concern every period: the deliveries stay pending, in order.

    `credentials`: the service refused the credentials (HTTP 401 or 403, a revoked token): the
    delivery engine adds which config keys and `${VAR}`s hold them, so the line says which
    token to check."""

    refused: bool = False
    credentials: bool = False

    def __init__(
        self,
        message: str,
        *,
        transient: bool | None = None,
        refused: bool = False,
        credentials: bool = False,
    ) -> None:
        super().__init__(message, transient=transient)
        self.refused = refused and not self.transient
        self.credentials = credentials


class StoreError(KpiError):
    """The history store could not be opened, migrated or written."""


class MetricErrors(ExtractError):
    """Some metrics of a source could not be read; the others in `values` are still good.

    `errors` is {metric: message}; `transient` names the metrics of `errors` whose failure
    the next attempt may not meet (a query timeout, a lost connection, a service's stall),
    so each metric's failure is told transient or terminal on its own (the run's errors,
    the store's `run_errors.transient`). The error as a whole is transient when every
    failure in it is."""

    def __init__(
        self,
        values: dict[str, float],
        errors: dict[str, str],
        transient: Iterable[str] = (),
    ) -> None:
        self.transient_metrics = frozenset(transient) & errors.keys()
        every = bool(errors) and len(self.transient_metrics) == len(errors)
        super().__init__("; ".join(errors.values()), transient=every)
        self.values = values
        self.errors = errors


#: the optional extras, by the top-level module each one brings
EXTRAS = {
    "psycopg": "postgres",
    "pymysql": "mysql",
    "pandas": "pandas",
    "duckdb": "duckdb",
    "pyarrow": "duckdb",
    "fsspec": "duckdb",
    "starlette": "dashboard",
    "uvicorn": "dashboard",
    "notion_client": "notion",
    "google": "analytics",
    "gspread": "sheets",
    "playwright": "browser",
    "celery": "celery",
    "kombu": "celery",
    "redis": "celery",
}


def missing_package(exc: BaseException) -> str | None:
    """For an optional package that is not installed, the one line that says how to get it."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.partition(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return f"this needs {top}, which is not installed: pip install 'kpi-collector[{extra}]'"


def did_you_mean(name: str, known: Iterable[str], most: int = 3) -> str:
    """` (did you mean 'Sign Up' or 'signup'?)`: the names of `known` closest to `name` (the
    same but for case first, then difflib's closest), at most `most`; "" when none is."""
    from difflib import get_close_matches

    names = list(dict.fromkeys(known))
    close = [n for n in names if n.lower() == name.lower()]
    close += get_close_matches(name, names, n=most, cutoff=0.6)
    close = list(dict.fromkeys(close))[:most]
    return f" (did you mean {' or '.join(repr(n) for n in close)}?)" if close else ""


def unknown_names(what: str, given: Iterable[str], known: Iterable[str]) -> str | None:
    """One line naming each of `given` that is not in `known`, with the closest known name
    ("no KPI named 'gihub.stars' (did you mean 'github.stars'?)"), or None when all are
    known. `what` is the kind of name ("source", "KPI")."""
    from difflib import get_close_matches

    names = list(dict.fromkeys(known))
    unknown = [name for name in dict.fromkeys(given) if name not in names]
    if not unknown:
        return None
    parts = []
    for name in unknown:
        close = get_close_matches(name, names, n=1, cutoff=0.6)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    some = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
    return f"no {what} named {', '.join(parts)}; {what}s: {some or 'none'}"
