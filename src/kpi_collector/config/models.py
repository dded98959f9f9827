"""Typed models of `kpi.yaml`. Unknown keys are errors everywhere.

Each model's behaviour (properties, methods) is in its plain base class in `config.plain`,
which a run from the config cache uses without pydantic; the names of `config.plain` are
served from here too."""

from __future__ import annotations

from typing import Annotated, Any, Literal

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

from kpi_collector.config.plain import (
    FINGERPRINTED,
    MAX_BYTES,
    MAX_WAIT,
    Agg,
    Config,
    HealthCheck,
    PlainAlert,
    PlainCeleryExecutor,
    PlainChangeRule,
    PlainDefaults,
    PlainHealthSettings,
    PlainKpiSpec,
    PlainLocalExecutor,
    PlainPlugin,
    PlainSettings,
    Unchecked,
    _no_time,
    check_database_url,
    check_store_url,
    config_fingerprint,
    display_order,
    grouped,
    parse_duration,
    resolve_url,
    sqlite_file,
    sqlite_url,
    store_secrets,
)

__all__ = [
    "FINGERPRINTED",
    "MAX_BYTES",
    "MAX_WAIT",
    "Agg",
    "Alert",
    "CeleryExecutor",
    "ChangeRule",
    "Config",
    "Defaults",
    "HealthCheck",
    "HealthSettings",
    "KpiSpec",
    "LocalExecutor",
    "Plugin",
    "Settings",
    "Unchecked",
    "check_database_url",
    "check_store_url",
    "config_fingerprint",
    "display_order",
    "grouped",
    "parse_duration",
    "resolve_url",
    "sqlite_file",
    "sqlite_url",
    "store_secrets",
]


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


class Plugin(PlainPlugin, BaseModel):
    """What sources and destinations share: a config model named by its `type`, with a
    name (default: the type), an on/off switch and an optional cron of its own."""

    model_config = CONFIG_MODEL | {"arbitrary_types_allowed": True}

    _no_bool_numbers = field_validator("*", mode="before")(classmethod(refuse_bool_as_number))

    name: str = Field(default="", description="unique among its kind; default: the type")
    enabled: bool = True
    schedule: str | None = Field(default=None, description="cron for `kpi schedule`")

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name"):
            data = {**data, "name": cls.type or cls.__name__.lower()}
        return data

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from kpi_collector.config.cron import check_cron

        return value if value is None else check_cron(value)


class Defaults(PlainDefaults, Strict):
    """Settings every source gets unless it sets its own."""

    timeout: float = Field(default=20.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    concurrency: int = Field(default=64, ge=1, le=4096)
    per_host: int = Field(default=8, ge=1, le=4096)
    max_bytes: ByteSize = Field(default=ByteSize(MAX_BYTES), gt=0)  # bytes, or "20MiB", "500kB"
    #: at most this many pages load at once in the run's headless Chromium (`render: true`)
    render_concurrency: int = Field(default=4, ge=1, le=64)


class KpiSpec(PlainKpiSpec, Strict):
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


#: `json_schema_input_type`: `kpi schema` says what the loader takes, `-20%` too
Percent = Annotated[float, BeforeValidator(_percent, json_schema_input_type=float | str)]


class ChangeRule(PlainChangeRule, Strict):
    """`change: {days: 7, below: -20%}`: the change in percent against the value `days` before."""

    #: at most 100 years back (800,000 days is before year 1: no date to compare with)
    days: int = Field(ge=1, le=36500)
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


class Alert(PlainAlert, Strict):
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

    @field_validator("notify", mode="before", json_schema_input_type=list[str] | str)
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


class LocalExecutor(PlainLocalExecutor, BaseModel):
    """`executor: {type: local}` (the default): every source collected in this process."""

    # not Strict: a discriminated union's `type` takes no before-validator
    model_config = CONFIG_MODEL

    type: Literal["local"] = "local"


class CeleryExecutor(PlainCeleryExecutor, BaseModel):
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


Executor = Annotated[LocalExecutor | CeleryExecutor, Field(discriminator="type")]


class HealthSettings(PlainHealthSettings, Strict):
    """`health:`: what `kpi validate --health` (and `kpi_health_ok`) counts as a problem
    besides a stopped scheduler, an overdue job or a failed last run."""

    #: failing_sources: a source whose newest attempt failed; alerts: an alert that fires;
    #: pending_deliveries: a delivery waiting to be retried (else these are warnings)
    fail_on: list[HealthCheck] = Field(default_factory=list)


class Settings(PlainSettings, Strict):
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
        from kpi_collector.config.cron import check_zone

        return check_zone(value)

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
