"""Typed models of `kpi.yaml`. Unknown keys are errors everywhere."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from kpi_collector.destinations.base import Destination
    from kpi_collector.sources.base import Source

Agg = Literal["last", "sum", "max", "min", "avg"]

#: the largest answer a source may read (HTTP body after decompression, a command's stdout
#: or stderr) unless it sets `max_bytes`: pages are kilobytes, an API answer a few megabytes
MAX_BYTES = ByteSize(20 * 1024 * 1024)


def _takes_number(annotation: Any) -> bool:
    """Whether a field's type is a number (int, float, ByteSize, optional or in a union) and
    not also a bool."""
    from types import UnionType
    from typing import Union, get_args, get_origin

    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_number(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        members = get_args(annotation)
        return bool not in members and any(_takes_number(m) for m in members)
    return (
        isinstance(annotation, type)
        and issubclass(annotation, int | float)
        and not issubclass(annotation, bool)
    )


def refuse_bool_as_number(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """A `field_validator("*", mode="before")`: YAML's true/false (and YAML 1.1's yes/no/on/off)
    where a number goes is an error; pydantic would read `timeout: true` as 1 second."""
    if isinstance(value, bool) and info.field_name is not None:
        field = cls.model_fields.get(info.field_name)
        if field is not None and _takes_number(field.annotation):
            raise PydanticCustomError("bool_not_number", "a boolean is not a number")
    return value


#: what every config model shares: unknown keys are errors, and so are NaN and infinities
#: (`.nan`, `.inf` in YAML), which would make a threshold never fire or a timeout never end
CONFIG_MODEL = ConfigDict(extra="forbid", defer_build=True, allow_inf_nan=False)


class Strict(BaseModel):
    model_config = CONFIG_MODEL

    _no_bool_numbers = field_validator("*", mode="before")(classmethod(refuse_bool_as_number))


class Defaults(Strict):
    """Settings every source gets unless it sets its own."""

    timeout: float = Field(default=20.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    concurrency: int = Field(default=64, ge=1, le=4096)
    per_host: int = Field(default=8, ge=1, le=4096)
    max_bytes: ByteSize = Field(default=MAX_BYTES, gt=0)  # bytes, or "20MiB", "500kB"
    #: at most this many pages load at once in the run's headless Chromium (`render: true`)
    render_concurrency: int = Field(default=4, ge=1, le=64)


class KpiSpec(Strict):
    """How a KPI is named, shown, aggregated and, for derived KPIs, computed."""

    title: str | None = None
    unit: str | None = None
    target: float | None = None
    agg: Agg = "last"
    formula: str | None = None
    description: str | None = None
    higher_is_better: bool = True
    #: a section heading ("Growth", "Revenue") on the overview, in reports and in messages
    group: str | None = None
    #: left off the overview (its page, reports, messages and the API still have it)
    hidden: bool = False

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("a group needs a name, e.g. group: Growth")
        return value.strip() if value is not None else None


def _percent(value: Any) -> Any:
    """`-20%`, `-20 %` or -20: a change in percent."""
    if isinstance(value, str):
        text = value.strip().replace("\u2212", "-").removesuffix("%").strip()
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage like -20%") from None
    return value


Percent = Annotated[float, BeforeValidator(_percent)]


class ChangeRule(Strict):
    """`change: {days: 7, below: -20%}`: the change in percent against the value `days` before."""

    days: int = Field(ge=1)
    below: Percent | None = None
    above: Percent | None = None

    @model_validator(mode="after")
    def _bound(self) -> ChangeRule:
        if self.below is None and self.above is None:
            raise ValueError("a change rule needs `below:` (e.g. -20%) or `above:` (e.g. 50%)")
        if self.below is not None and self.above is not None and self.below >= self.above:
            # it fires outside that range: below +10% or above +5% is every change
            raise ValueError(
                "`below:` must be smaller than `above:` (it fires outside that range, "
                "e.g. below: -20%, above: 50%)"
            )
        return self


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


class Alert(Strict):
    """One entry of `alerts:`: a rule about a KPI, a source or a delivery, and who to tell.

    Rules: `below`/`above` (a threshold on the KPI's latest value), `change` (its change in
    percent over `days`), `failing_runs` (a source failing that many runs in a row),
    `stale_days` (a KPI not updated for that many days), `pending_runs` (a delivery pending
    for that many runs).

    Noise control (as in Prometheus/Alertmanager and Grafana alerting): `for` (the rule must
    hold for that many checks, or that long, before it fires), `resolve_above` /
    `resolve_below` (hysteresis: a threshold alert resolves only past this value), `repeat`
    (a reminder while it stays true, e.g. `1d`).
    """

    model_config = CONFIG_MODEL | {"populate_by_name": True}

    name: str | None = Field(default=None, description="how messages name it (default: the rule)")
    notify: list[str] = Field(default_factory=list, description="message destinations, by name")
    kpi: str | None = None
    source: str | None = None
    destination: str | None = None
    below: float | None = None
    above: float | None = None
    change: ChangeRule | None = None
    failing_runs: int | None = Field(default=None, ge=1)
    stale_days: float | None = Field(default=None, gt=0)
    pending_runs: int | None = Field(default=None, ge=1)
    pending_for: str | None = Field(
        default=None, description="a delivery pending this long (6h, 2d): the pending rule"
    )
    hold: int | str | None = Field(
        default=None,
        alias="for",
        description="checks in a row (an integer) or a duration (30m, 6h, 2d) before it fires",
    )
    resolve_above: float | None = None
    resolve_below: float | None = None
    repeat: str | None = Field(default=None, description="remind while true, e.g. 1d")

    @field_validator("hold")
    @classmethod
    def _hold(cls, value: int | str | None) -> int | str | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            if isinstance(value, int) and value < 1:
                raise ValueError("`for:` counts checks: 1 or more (or a duration like 6h)")
            return value
        parse_duration(value)
        return value

    @field_validator("pending_for")
    @classmethod
    def _pending_for(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("repeat")
    @classmethod
    def _repeat(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

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
        return None if self.repeat is None else parse_duration(self.repeat)

    @field_validator("notify", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_rule(self) -> Alert:
        rules = [
            key
            for key, value in (
                ("below/above", self.below if self.below is not None else self.above),
                ("change", self.change),
                ("failing_runs", self.failing_runs),
                ("stale_days", self.stale_days),
                ("pending_runs", self.pending_runs),
                ("pending_for", self.pending_for),
            )
            if value is not None
        ]
        if not rules:
            raise ValueError(
                "an alert needs a rule: below/above (a threshold), change, failing_runs, "
                "stale_days, pending_runs or pending_for"
            )
        if len(rules) > 1:
            raise ValueError(f"one rule per alert, this one has {' and '.join(rules)}: split it")
        allowed = {
            "threshold": {"kpi"},
            "change": {"kpi"},
            "failing": {"source"},
            "stale": {"kpi", "source"},
            "pending": {"destination"},
        }[self.kind]
        given = {k for k in ("kpi", "source", "destination") if getattr(self, k) is not None}
        if given - allowed:
            wrong = sorted(given - allowed)[0]
            raise ValueError(
                f"`{wrong}:` does not go with {rules[0]}; it takes {', '.join(sorted(allowed))}"
            )
        if self.kind in ("threshold", "change") and self.kpi is None:
            raise ValueError(f"{rules[0]} needs `kpi:`, the KPI id it watches")
        if self.below is not None and self.above is not None and self.below >= self.above:
            raise ValueError("`below:` must be smaller than `above:` (it fires outside that range)")
        if self.resolve_above is not None and (
            self.below is None or self.resolve_above < self.below
        ):
            raise ValueError(
                "`resolve_above:` goes with `below:` and is at least that value "
                "(e.g. below: 100, resolve_above: 110)"
            )
        if self.resolve_below is not None and (
            self.above is None or self.resolve_below > self.above
        ):
            raise ValueError(
                "`resolve_below:` goes with `above:` and is at most that value "
                "(e.g. above: 1000, resolve_below: 900)"
            )
        # held past the other threshold, a value there would count for the wrong side
        inf = float("inf")
        if (self.resolve_above if self.resolve_above is not None else -inf) >= (
            self.above if self.above is not None else inf
        ):
            raise ValueError(
                "`resolve_above:` must stay under `above:` (a value above it is the other side)"
            )
        if (self.resolve_below if self.resolve_below is not None else inf) <= (
            self.below if self.below is not None else -inf
        ):
            raise ValueError(
                "`resolve_below:` must stay over `below:` (a value below it is the other side)"
            )
        return self

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
            bounds = [f"below {self.below:g}"] if self.below is not None else []
            bounds += [f"above {self.above:g}"] if self.above is not None else []
            return f"{self.kpi} {' or '.join(bounds)}"
        if self.change is not None:
            change = self.change
            bounds = [f"below {change.below:+g}%"] if change.below is not None else []
            bounds += [f"above {change.above:+g}%"] if change.above is not None else []
            return f"{self.kpi} change over {change.days} days {' or '.join(bounds)}"
        if self.failing_runs is not None:
            return f"source {self.source or '*'} failing {self.failing_runs} runs in a row"
        if self.stale_days is not None:
            subject = self.kpi or (f"{self.source}.*" if self.source else "any KPI")
            return f"{subject} not updated for {self.stale_days:g} days"
        if self.pending_for is not None:
            return f"delivery to {self.destination or '*'} pending for {self.pending_for}"
        return f"delivery to {self.destination or '*'} pending for {self.pending_runs} runs"

    @property
    def key(self) -> str:
        return self.name or self.rule


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


class LocalExecutor(BaseModel):
    """`executor: {type: local}` (the default): every source collected in this process."""

    # not Strict: a discriminated union's `type` takes no before-validator
    model_config = CONFIG_MODEL

    type: Literal["local"] = "local"


MAX_WAIT = 30 * 86400.0  # seconds: the longest `executor.wait`


class CeleryExecutor(BaseModel):
    """`executor: {type: celery, ...}`: sources collected by `kpi worker` processes (Celery)
    on any machine, in batches of `batch_size` source names; outcomes come back through
    `backend` and are stored by the coordinator (`kpi run` / `kpi schedule`).

    - `broker`: Celery's broker URL, `amqp://user:pass@host:5672//` (RabbitMQ) or
      `redis://host:6379/0`; write it as `${KPI_BROKER_URL}` when it holds a password;
    - `backend`: where results go; default `rpc://` for RabbitMQ (replies as messages to the
      coordinator), the broker's URL for Redis;
    - `wait`: seconds (or a duration like `10m`) a queue may stay silent, no batch of it
      answering, before its outstanding sources become errors of the run.
    """

    model_config = CONFIG_MODEL

    type: Literal["celery"]
    broker: str = Field(min_length=1)
    backend: str | None = None
    batch_size: int = Field(default=50, ge=1, le=10_000)
    wait: float | str = 600.0

    _no_bool_numbers = field_validator("batch_size", "wait", mode="before")(
        classmethod(refuse_bool_as_number)
    )

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        scheme = value.partition("://")[0]
        if "://" not in value or scheme not in ("amqp", "amqps", "pyamqp", "redis", "rediss"):
            raise ValueError(
                "the broker is a URL like amqp://guest:guest@127.0.0.1:5672// (RabbitMQ) "
                "or redis://127.0.0.1:6379/0"
            )
        return value

    @field_validator("wait")
    @classmethod
    def _wait(cls, value: float | str) -> float | str:
        if parse_duration(value) > MAX_WAIT:
            # the broker takes the expiries derived from it (results, visibility) only so far
            raise ValueError(f"at most 30d (a queue silent longer is given up), not {value!r}")
        return value

    @property
    def wait_seconds(self) -> float:
        return parse_duration(self.wait)


Executor = Annotated[LocalExecutor | CeleryExecutor, Field(discriminator="type")]


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


HealthCheck = Literal["failing_sources", "alerts", "pending_deliveries"]


class HealthSettings(Strict):
    """`health:`: what `kpi validate --health` (and `kpi_health_ok`) counts as a problem
    besides a stopped scheduler, an overdue job or a failed last run."""

    #: failing_sources: a source whose newest attempt failed; alerts: an alert that fires;
    #: pending_deliveries: a delivery waiting to be retried (else these are warnings)
    fail_on: list[HealthCheck] = Field(default_factory=list)


class Settings(Strict):
    """The top level of `kpi.yaml`, before sources and destinations get their own models."""

    store: str | None = None
    timezone: str = "UTC"
    schedule: str = "0 7 * * *"
    #: a fire time that passes while the job still runs: `skip` it (logged), or `run_late`:
    #: run it once when it is at most `misfire_grace` seconds late
    misfire: Literal["skip", "run_late"] = "skip"
    misfire_grace: float = Field(default=600.0, ge=0)
    #: each scheduled job starts up to this long after its fire time, at random (seconds or a
    #: duration like 5m), so many installations don't call an API in the same second
    jitter: float | str | None = None
    north_star: str | None = None
    #: the dashboard's and the reports' title (default "KPIs")
    title: str | None = None
    #: BCP 47 tag (de, de-CH, hi-IN): how pages and answers write numbers, unless a source
    #: or metric says otherwise; without it a page's own `lang`, else en
    locale: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    kpis: dict[str, KpiSpec] = Field(default_factory=dict)
    sources: list[dict[str, Any]] = Field(default_factory=list)
    destinations: list[dict[str, Any]] = Field(default_factory=list)
    alerts: list[Alert] = Field(default_factory=list)
    health: HealthSettings = Field(default_factory=HealthSettings)
    #: a dead-man's switch: `kpi schedule` requests this URL after each job that succeeded,
    #: so a monitoring service (healthchecks-style) alerts when the pings stop
    heartbeat_url: str | None = None
    #: where sources are collected: `{type: local}` (this process) or `{type: celery, ...}`
    executor: Executor = Field(default_factory=LocalExecutor)

    @field_validator("jitter")
    @classmethod
    def _jitter(cls, value: float | str | None) -> float | str | None:
        if value is not None and not _no_time(value):
            parse_duration(value)
        return value

    @property
    def jitter_seconds(self) -> float:
        """`jitter:` in seconds (0 without one)."""
        return 0.0 if self.jitter is None or _no_time(self.jitter) else parse_duration(self.jitter)

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is not None and (
            urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc
        ):
            raise ValueError("heartbeat_url needs an http:// or https:// URL")
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        from kpi_collector.config.locale import check_locale

        return value if value is None else check_locale(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like Europe/Berlin"
            ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from kpi_collector.config.cron import check_cron

        return check_cron(value)

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value:
            check_store_url(value)
        return value

    @field_validator("store", mode="before")
    @classmethod
    def _store_password(cls, value: Any) -> Any:
        """A password written in the file itself is a secret: hidden everywhere, and the
        config never cached; one from a variable (`${DATABASE_URL}`: a `FromVariables`, seen
        only before the field makes it a plain str) is the variable's, cached by its name."""
        if isinstance(value, str) and value:
            from kpi_collector.secrets import remember

            given = getattr(value, "values", None) or ()
            try:
                secrets = store_secrets(value)
            except Exception:  # not a database URL: `_store_url` says so
                return value
            if any(secret in part for secret in secrets for part in given):
                return value  # (as written, or decoded: then its written form is there too)
            for secret in secrets:
                remember(secret)
        return value


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
    name: str
    schedule: str | None


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
        return self.settings.timezone

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    @property
    def kpis(self) -> dict[str, KpiSpec]:
        return self.settings.kpis

    @property
    def defaults(self) -> Defaults:
        return self.settings.defaults

    @property
    def store_url(self) -> str:
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
