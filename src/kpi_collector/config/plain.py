"""A validated config as a run holds it: plain classes, without pydantic.

`config.models` validates `kpi.yaml` with pydantic models; each model whose first base is a
`Plain` class (`class Alert(PlainAlert, Strict)`) keeps its behaviour there and only its
fields and checks in the model. The config cache (`config.cache`) stores such an object as
its plain class with the same field values, so a run whose config comes from the cache
never imports pydantic nor builds the model classes (a `kpi run` of 1,000 `html` sources:
0.94x the wall time of the release before, about 36 ms, and 7 MiB less memory). A plain object is read as its model is: the same attributes,
properties and methods; it is never validated again (it was, before it was cached).

Also here: what the rest of the package needs of the config without importing pydantic
(the `Config` object, durations, display order, store URLs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from kpi_collector.config.models import Defaults, KpiSpec, Settings
    from kpi_collector.destinations.base import Destination
    from kpi_collector.sources.base import Source

P = TypeVar("P", bound="Plain")

#: the largest answer a source may read (HTTP body after decompression, a command's stdout
#: or stderr) unless it sets `max_bytes`, in bytes: pages are kilobytes, an API answer a few
#: megabytes
MAX_BYTES = 20 * 1024 * 1024

Agg = Literal["last", "sum", "max", "min", "avg"]
HealthCheck = Literal["failing_sources", "alerts", "pending_deliveries"]


class Plain:
    """Base of the plain classes: attributes in `__dict__`, as a pydantic model keeps its
    fields, so one class serves both a model (which inherits it) and a cached object.

    A cached object also answers pydantic's API (`model_dump()`, `model_fields`,
    `model_copy()`, ...): each such call imports its model and builds it from the object's
    fields (`as_model`: `model_construct`, not validated again, with the fields the config
    set as `model_fields_set`)."""

    __slots__ = ()

    def replaced(self: P, **changes: Any) -> P:
        """A shallow copy with `changes` (field name -> value) applied, not validated (as
        pydantic's `model_copy(update=...)`)."""
        import copy

        twin = copy.copy(self)
        twin.__dict__.update(changes)
        return twin

    if not TYPE_CHECKING:  # the type checker sees a model's API on the model only

        def __getattr__(self, name: str) -> Any:
            if hasattr(type(self), "__pydantic_validator__"):  # a model: pydantic's own lookup
                return super().__getattr__(name)
            if name.startswith("model_") and type(self) in _MODELS:
                return getattr(as_model(self), name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


#: plain class -> "module:qualname" of the model it was cached from (filled by `restore`)
_MODELS: dict[type, str] = {}


#: the key of a cached object's `__dict__` that lists its fields the config left unset
UNSET = "__unset__"


def restore(
    cls: type[P], fields: dict[str, Any], model: str = "", unset: tuple[str, ...] = ()
) -> P:
    """An object of plain class `cls` holding `fields` (name -> value): how the config cache
    reads back a model stored as its plain class; `model` ("module:qualname") is that model,
    built by `as_model` when the object is asked for pydantic's API, and `unset` the fields
    the config did not set (pydantic's `model_fields_set` is the others)."""
    made = cls.__new__(cls)
    made.__dict__.update(fields)
    if unset:
        made.__dict__[UNSET] = unset
    if model:
        _MODELS.setdefault(cls, model)
    return made


def as_model(value: Any) -> Any:
    """`value` with each cached plain object in it (lists, tuples and dicts walked) built as
    its model, by `model_construct` (not validated again); anything else as it is."""
    if isinstance(value, list | tuple):
        return type(value)(as_model(item) for item in value)
    if isinstance(value, dict):
        return {key: as_model(item) for key, item in value.items()}
    path = _MODELS.get(type(value)) if isinstance(value, Plain) else None
    if path is None:
        return value
    from importlib import import_module

    module, _, name = path.partition(":")
    model = getattr(import_module(module), name)
    fields = {key: as_model(item) for key, item in vars(value).items() if key != UNSET}
    unset = vars(value).get(UNSET, ())
    return model.model_construct({key for key in fields if key not in unset}, **fields)


class PlainPlugin(Plain):
    """What sources and destinations share (see `config.plugins.Plugin`)."""

    #: the name in `kpi.yaml` (`type: html`)
    type: ClassVar[str] = ""

    if TYPE_CHECKING:
        name: str
        enabled: bool
        schedule: str | None


class PlainDefaults(Plain):
    """`defaults:` (see `models.Defaults`)."""

    if TYPE_CHECKING:
        timeout: float
        retries: int
        concurrency: int
        per_host: int
        max_bytes: int
        render_concurrency: int


class PlainKpiSpec(Plain):
    """One entry of `kpis:` (see `models.KpiSpec`)."""

    if TYPE_CHECKING:
        title: str | None
        unit: str | None
        target: float | None
        agg: Agg
        formula: str | None
        description: str | None
        higher_is_better: bool
        group: str | None
        hidden: bool


class PlainChangeRule(Plain):
    """An alert's `change:` (see `models.ChangeRule`)."""

    if TYPE_CHECKING:
        days: int
        below: float | None
        above: float | None


class PlainAlert(Plain):
    """One entry of `alerts:` (see `models.Alert`)."""

    if TYPE_CHECKING:
        name: str | None
        notify: list[str]
        kpi: str | None
        source: str | None
        destination: str | None
        below: float | None
        above: float | None
        change: PlainChangeRule | None
        failing_runs: int | None
        stale_days: float | None
        pending_runs: int | None
        pending_for: str | None
        hold: int | str | None
        resolve_above: float | None
        resolve_below: float | None
        repeat: str | None

    @property
    def hold_checks(self) -> int | None:
        """`for:` as a number of checks in a row, when it is one."""
        return self.hold if isinstance(self.hold, int) else None

    @property
    def hold_seconds(self) -> float | None:
        """`for:` as a duration in seconds, when it is one."""
        return (
            None if self.hold is None or isinstance(self.hold, int) else parse_duration(self.hold)
        )

    @property
    def repeat_seconds(self) -> float | None:
        """`repeat:` in seconds, None without one."""
        return None if self.repeat is None else parse_duration(self.repeat)

    @property
    def kind(self) -> str:
        """threshold | change | failing | stale | pending"""
        if self.change is not None:
            return "change"
        if self.failing_runs is not None:
            return "failing"
        if self.stale_days is not None:
            return "stale"
        if self.pending_runs is not None or self.pending_for is not None:
            return "pending"
        return "threshold"

    @property
    def rule(self) -> str:
        """The rule in words, e.g. `telemetry.dau below 100`; the alert's key unless `name`d."""
        if self.kind == "threshold":
            bounds = [f"below {_exact(self.below)}"] if self.below is not None else []
            bounds += [f"above {_exact(self.above)}"] if self.above is not None else []
            return f"{self.kpi} {' or '.join(bounds)}"
        if self.change is not None:
            change = self.change
            bounds = [f"below {_exact(change.below, '+')}%"] if change.below is not None else []
            bounds += [f"above {_exact(change.above, '+')}%"] if change.above is not None else []
            return f"{self.kpi} change over {change.days} days {' or '.join(bounds)}"
        if self.failing_runs is not None:
            return f"source {self.source or '*'} failing {self.failing_runs} runs in a row"
        if self.stale_days is not None:
            subject = self.kpi or (f"{self.source}.*" if self.source else "any KPI")
            return f"{subject} not updated for {_exact(self.stale_days)} days"
        if self.pending_for is not None:
            return f"delivery to {self.destination or '*'} pending for {self.pending_for}"
        return f"delivery to {self.destination or '*'} pending for {self.pending_runs} runs"

    @property
    def key(self) -> str:
        """What the store keeps the alert's state under: its `name`, else its `rule`."""
        return self.name or self.rule


def _exact(number: float, sign: str = "") -> str:
    """`number` as an alert's rule writes it: `:g` (100, 0.5, 1e+06: the keys stored alert
    states have), with as many more digits as it takes to be this number and no other:
    1000001 is 1000001, not 1e+06 (the key of 1000002 too, and of a duplicate alert)."""
    for digits in range(6, 18):
        shown = f"{number:{sign}.{digits}g}"
        if float(shown) == number:
            return shown
    return f"{number:{sign}.17g}"  # pragma: no cover (17 digits are every float)


class PlainLocalExecutor(Plain):
    """`executor: {type: local}` (see `models.LocalExecutor`)."""

    if TYPE_CHECKING:
        type: Literal["local"]


class PlainCeleryExecutor(Plain):
    """`executor: {type: celery, ...}` (see `models.CeleryExecutor`)."""

    if TYPE_CHECKING:
        type: Literal["celery"]
        broker: str
        backend: str | None
        batch_size: int
        wait: float | str

    @property
    def wait_seconds(self) -> float:
        """`wait:` in seconds."""
        return parse_duration(self.wait)


class PlainHealthSettings(Plain):
    """`health:` (see `models.HealthSettings`)."""

    if TYPE_CHECKING:
        fail_on: list[HealthCheck]


class PlainSettings(Plain):
    """The top level of `kpi.yaml` (see `models.Settings`)."""

    if TYPE_CHECKING:
        store: str | None
        timezone: str
        schedule: str
        misfire: Literal["skip", "run_late"]
        misfire_grace: float
        jitter: float | str | None
        north_star: str | None
        title: str | None
        locale: str | None
        defaults: Defaults
        kpis: dict[str, KpiSpec]
        sources: list[dict[str, Any]]
        destinations: list[dict[str, Any]]
        alerts: Sequence[PlainAlert]
        health: PlainHealthSettings
        heartbeat_url: str | None
        executor: PlainLocalExecutor | PlainCeleryExecutor

    @property
    def jitter_seconds(self) -> float:
        """`jitter:` in seconds (0 without one)."""
        return 0.0 if self.jitter is None or _no_time(self.jitter) else parse_duration(self.jitter)


_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> float:
    """Seconds from `90` (seconds), `30s`, `15m`, `6h`, `2d` or `1w`; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        unit = text[-1:].lower()
        try:
            seconds = float(text[:-1]) * _DURATION[unit] if unit in _DURATION else float(text)
        except ValueError:
            raise ValueError(f"not a duration: {value!r}; write e.g. 30m, 6h, 2d or 1w") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be positive, not {value!r}")
    return seconds


def _no_time(value: Any) -> bool:
    """Whether a duration is zero however it is written (`0`, `"0"`, `0s`, `"0.0m"`): where
    zero means "none" (`jitter:`), not a duration `parse_duration` refuses."""
    text = str(value).strip().lower()
    if text[-1:] in _DURATION:
        text = text[:-1]
    try:
        return not isinstance(value, bool) and float(text) == 0
    except ValueError:
        return False


def display_order(
    ids: Iterable[str],
    *,
    kpis: Iterable[str] = (),
    north_star: str | None = None,
    config_ids: Iterable[str] = (),
) -> list[str]:
    """KPI ids as every table, message and page shows them: the north star, then the ids
    named in `kpis:`, then the sources' KPIs in config order, then the rest by id."""
    rank: dict[str, int] = {}
    for kpi in (*kpis, *config_ids):
        rank.setdefault(kpi, len(rank))
    return sorted(dict.fromkeys(ids), key=lambda k: (k != north_star, rank.get(k, len(rank)), k))


MAX_WAIT = 30 * 86400.0  # seconds: the longest `executor.wait`


def grouped(ids: Iterable[str], kpis: Mapping[str, KpiSpec]) -> list[tuple[str | None, list[str]]]:
    """`ids` (in display order) as sections: each `group:` in the order the groups first
    appear in `kpis:`, its KPIs in the order given, then the KPIs without a group under None.
    Without any group: one section, None. Empty sections are left out."""
    order: dict[str | None, list[str]] = {}
    for spec in kpis.values():
        if spec.group is not None:
            order.setdefault(spec.group, [])
    order[None] = []
    for kpi in ids:
        found = kpis.get(kpi)
        order[found.group if found is not None else None].append(kpi)
    return [(group, members) for group, members in order.items() if members]


_PLAIN_SQLITE = re.compile(r"sqlite:///[^?]*")


def check_store_url(url: str) -> None:
    """Raise ValueError unless `url` is a SQLAlchemy database URL whose dialect is installed
    (SQLAlchemy's `make_url` and `get_dialect`; the database driver is not imported). The
    message never shows the password, whatever characters it holds."""
    if _PLAIN_SQLITE.fullmatch(url):
        # A SQLite file path without a query: `make_url` takes every such text and the
        # sqlite dialect ships with SQLAlchemy, so the answer is known without importing
        # SQLAlchemy (~0.3 s), which the store then imports while the first requests are out.
        return
    import sqlalchemy as sa

    from kpi_collector.secrets import without_password

    fix = "use sqlite:///kpi.db, postgresql+psycopg://... or mysql+pymysql://..."
    encode = (
        "a password holding @ : / or % is written percent-encoded (@ as %40, : as %3A, "
        "/ as %2F, % as %25)"
    )
    try:
        parsed = sa.engine.make_url(url)
        parsed.get_dialect()
    except sa.exc.NoSuchModuleError:  # before ArgumentError, its base class
        scheme = url.partition("://")[0]
        raise ValueError(
            f"unknown database kind {scheme!r} in {without_password(url)!r}; {fix}"
        ) from None
    except sa.exc.ArgumentError:
        raise ValueError(f"{without_password(url)!r} is not a database URL; {fix}") from None
    except ValueError:  # a port that is no number: `user:p@ss:word@host` read `word` as one
        raise ValueError(
            f"the port in {without_password(url)!r} is not a number; {encode}"
        ) from None
    if parsed.host and "@" in parsed.host:
        # SQLAlchemy ends the password at its first `@` and takes the rest for the host
        raise ValueError(
            f"the user or password of the database URL holds a raw `@`: {encode} (the URL "
            "is not shown: it holds a password)"
        )


#: `check_store_url` checks any database URL: the store's, a `sql` source's or destination's
check_database_url = check_store_url


def store_secrets(url: str) -> list[str]:
    """The secrets a (valid) store URL holds: its password, as written and as SQLAlchemy
    decodes it, and a `password` in its query."""
    if _PLAIN_SQLITE.fullmatch(url):
        return []
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    found = [str(parsed.password)] if parsed.password else []
    asked = parsed.query.get("password")
    found += [asked] if isinstance(asked, str) else list(asked or ())
    written = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
    if written and "?" not in written:
        found.append(written)
    return [s for s in found if s]


@dataclass(frozen=True, slots=True)
class Unchecked:
    """A source or destination left out unchecked because its `${VAR}`s are not set (commands
    that need no secrets): what a deployment snippet still needs of it."""

    kind: str  # "sources" | "destinations"
    name: str  # its `name:` (default: its type)
    schedule: str | None  # its own `schedule:` cron, None: the config's


class Config:
    """A validated config: settings plus source and destination objects; `unchecked` lists
    the entries left out for their unset variables (only when loaded without secrets)."""

    def __init__(
        self,
        settings: Settings,
        sources: list[Source],
        destinations: list[Destination],
        *,
        path: Path | None = None,
        unchecked: Sequence[Unchecked] = (),
        fingerprint: str | None = None,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.destinations = destinations
        self.unchecked = tuple(unchecked)
        #: what decides how sources are collected, as written (see `config_fingerprint`)
        self.fingerprint = fingerprint
        self.path = path
        self.base_dir = path.parent if path else Path.cwd()

    @property
    def timezone(self) -> str:
        """`timezone:`, an IANA name (default UTC)."""
        return self.settings.timezone

    @property
    def tz(self) -> ZoneInfo:
        """`timezone:` as a ZoneInfo."""
        return ZoneInfo(self.settings.timezone)

    @property
    def kpis(self) -> dict[str, KpiSpec]:
        """`kpis:`, {KPI id: its spec}."""
        return self.settings.kpis

    @property
    def defaults(self) -> Defaults:
        """`defaults:`."""
        return self.settings.defaults

    @property
    def store_url(self) -> str:
        """The store's URL (`store:`, default `kpi.db` beside the config; see `resolve_url`)."""
        return resolve_url(self.settings.store, self.base_dir)

    def order(self, ids: Iterable[str]) -> list[str]:
        """`ids` in display order (see `display_order`)."""
        return display_order(
            ids, kpis=self.kpis, north_star=self.settings.north_star, config_ids=self.kpi_ids()
        )

    def sections(self, ids: Iterable[str]) -> list[tuple[str | None, list[str]]]:
        """`ids` in display order, in their `group:` sections (see `grouped`)."""
        return grouped(self.order(ids), self.kpis)

    @property
    def title(self) -> str:
        """The dashboard's and the reports' title: `title:`, else "KPIs"."""
        return self.settings.title or "KPIs"

    def kpi_ids(self) -> list[str]:
        """Every KPI id the config can produce: the sources' metrics, then derived KPIs."""
        ids = dict.fromkeys(kid for source in self.sources for kid in source.kpi_ids())
        ids.update(dict.fromkeys(kid for kid, spec in self.kpis.items() if spec.formula))
        return list(ids)


#: the top-level keys whose text decides how sources are collected
FINGERPRINTED = ("sources", "defaults", "timezone", "locale")


def config_fingerprint(data: Any) -> str:
    """16 hex digits of SHA-256 over the canonical JSON (sorted keys, no spaces) of the
    config's `sources`, `defaults`, `timezone` and `locale` as written, before `${VAR}`
    expansion: what workers and their coordinator must agree on (docs/scale-out.md).
    `data` is the parsed YAML document; a mapping whose keys are of mixed types (`{open: 1,
    2: 0}`, which validation refuses later) has them sorted as their JSON text. Never
    raises."""
    import hashlib
    import json

    top = data if isinstance(data, dict) else {}
    wanted = {key: top.get(key) for key in FINGERPRINTED}
    try:
        text = json.dumps(wanted, sort_keys=True, separators=(",", ":"), default=str)
    except TypeError:  # keys of mixed types cannot be sorted: sort them as the text they are
        wanted = _text_keys(wanted)
        text = json.dumps(wanted, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _text_keys(value: Any) -> Any:
    """`value` with every mapping key as the text JSON writes it (`2` -> "2", `null` ->
    "null"), so that keys of mixed types (YAML's `{open: 1, 2: 0}`) sort as text, as
    canonical JSON sorts them, instead of failing to compare."""
    if isinstance(value, dict):
        return {
            key if isinstance(key, str) else _key_text(key): _text_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_text_keys(item) for item in value]
    return value


def _key_text(key: Any) -> str:
    import json

    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return str(key)


def resolve_url(url: str | None, base_dir: Path) -> str:
    """The store URL; a relative SQLite path is taken relative to the config's folder (whose
    name may hold `%` or `?`: escaped, `sqlite_url`), and one starting with `~` in the home
    folder (as a file destination's `path`)."""
    if not url:
        return sqlite_url(base_dir / "kpi.db")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = url.removeprefix("sqlite:///")
        if path.startswith("~"):
            return f"sqlite:///{Path(path).expanduser().resolve()}"
        if path and path != ":memory:" and not Path(path).is_absolute():
            return sqlite_url(base_dir, path)
    return url


def resolve_database_url(url: str, base_dir: Path) -> str:
    """A source's database `url` with a relative SQLite path taken relative to `base_dir`
    (the config's folder), as the store's (`resolve_url`), whatever driver it names
    (`sqlite+pysqlite:///app.db`); other URLs as they are."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+", 1)[0] != "sqlite":
        return url
    return scheme + resolve_url(f"sqlite:///{rest}", base_dir).removeprefix("sqlite")


def sqlite_url(folder: Path, relative: str = "") -> str:
    """The `sqlite:///` URL of `folder` (resolved), joined with `relative` (a URL's own
    path, its escapes and query kept). The folder's `%` and `?` are escaped: SQLAlchemy
    decodes `%XX` and reads `?` as a query's start, so a folder `q?1` or `p%41b` put the store
    at `q` or `pAb`."""
    head = str(folder.resolve()).replace("%", "%25").replace("?", "%3F")
    return f"sqlite:///{head}/{relative}" if relative else f"sqlite:///{head}"


def sqlite_file(url: str) -> str | None:
    """The file a `sqlite:///path` URL opens, as SQLAlchemy reads it (the query dropped,
    `%XX` decoded); None for other databases, memory and `file:` URIs."""
    if not url.startswith("sqlite:///"):
        return None
    from urllib.parse import unquote

    path = unquote(url.removeprefix("sqlite:///").partition("?")[0])
    return path if path and path != ":memory:" and not path.startswith("file:") else None
