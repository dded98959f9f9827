"""`Destination`, the model every destination type subclasses (and `MessageDestination`,
`TableDestination`): fields checked when the config is read, and what a destination does.
`from kpi_collector.destinations.base import Destination` serves these classes; a run with no
destination never imports them (nor pydantic)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from kpi_collector.config.plugins import Plugin
from kpi_collector.destinations.base import Delivery, NameClash, name_collision

__all__ = ["Destination", "MessageDestination", "TableDestination"]

#: the longest `compare:`, a hundred years, as `kpi report --compare` takes
MAX_COMPARE_DAYS = 36600


class Destination(Plugin):
    """Base of every destination: a config model (pydantic, unknown keys forbidden) whose
    subclasses set `type` (the name in `kpi.yaml`, registered as an entry point in the
    `kpi_collector.destinations` group) and implement `deliver`.

    `every` is how often it gets a delivery: each run ("run") or once per local "day",
    "week" (from Monday) or "month" (tables update their row on each run of the period).
    """

    type: ClassVar[str] = ""
    #: what `kpi_names` names ("column", "property", ...) and how to fix a clash, for the
    #: refusal of a delivery whose KPIs collide (`refuse_name_collision`)
    name_kind: ClassVar[str] = "name"
    name_fix: ClassVar[str] = "give one of them another title (or id) in `kpis:`"
    #: True: one row per period, updated by every run of the period (idempotent writes);
    #: False: a message, sent at most once per period
    upserts: ClassVar[bool] = False

    every: Literal["run", "day", "week", "month"] = "run"
    compare: str | None = Field(default=None, pattern=r"^\d+d$", description="e.g. 14d")
    retries: int = Field(
        default=3, ge=0, le=10, description="transient failures retried within a run"
    )
    timeout: float = Field(default=30.0, gt=0, description="seconds per request")

    @field_validator("api_url", "webhook_url", check_fields=False)
    @classmethod
    def _http_urls(cls, value: Any) -> Any:
        """`api_url` and `webhook_url` of every destination that has them: an http(s) URL with
        a host, found wrong at load rather than at the first delivery; a webhook URL holds its
        token, so it is never echoed."""
        from kpi_collector.collect.http import check_http_url, is_http_url
        from kpi_collector.secrets import Secret

        if isinstance(value, Secret):
            if not is_http_url(value.get()):
                raise ValueError("not an http(s) URL; copy the whole URL, https:// included")
            check_http_url(value.get(), secret=True)
        elif isinstance(value, str):
            check_http_url(value)
        return value

    @field_validator("compare", mode="before")
    @classmethod
    def _compare_in_days(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"\d+d", value):
            raise ValueError(f"{value!r} is not a number of days; write it like 14d")
        if isinstance(value, str) and int(value[:-1]) > MAX_COMPARE_DAYS:
            # a value is looked for back to twice the days: further, the dates overflow and
            # every delivery of the destination failed with a traceback
            raise ValueError(
                f"{value!r} reaches back more than a hundred years; use at most {MAX_COMPARE_DAYS}d"
            )
        return value

    @property
    def compare_days(self) -> int | None:
        """`compare` ("14d") as a number of days; None without one."""
        return int(self.compare[:-1]) if self.compare else None

    async def deliver(self, delivery: Delivery) -> None:
        """Write or send `delivery`. Table destinations (`upserts`) must be idempotent: a
        retry or a later run of the same period updates the period's row, never adds one.
        Raise DeliveryError (see `delivery_error`) with `transient=True` for what a retry
        may fix (timeouts, 5xx, 429), `transient=False` for what it will not (bad token,
        missing table); the engine retries transient failures `retries` times and keeps the
        delivery pending. Messages must not contain secrets (they are redacted anyway)."""
        raise NotImplementedError

    def kpi_names(self, kpis: Sequence[str], titles: Mapping[str, str]) -> dict[str, str]:
        """The name each KPI gets in this destination where it names something by KPI (a
        column, property, header, field or metric): {kpi id: name}; empty where it names
        nothing by KPI. `titles` maps a KPI id to its `title:`. Two KPIs must never share
        a name: the loader checks this against the config's KPIs (`kpi validate` names
        both), and `deliver` refuses a delivery where run-time KPIs collide
        (`refuse_name_collision`) instead of letting one value overwrite the other. A KPI
        may not take one of `reserved_names` either (a `period` KPI in a `period` column)."""
        return {}

    def credential_keys(self) -> dict[str, tuple[str, ...]]:
        """{config key: the `${VAR}`s its value came from} for each secret this destination
        sends (`token`, `webhook_url`, `headers.Authorization`, ...), for the message of a
        refused credential: which key and variable to check."""
        from kpi_collector.secrets import Secret

        found: dict[str, tuple[str, ...]] = {}
        for key in type(self).model_fields:
            value = getattr(self, key, None)
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for inner, item in items:
                if isinstance(item, Secret):
                    found[f"{key}.{inner}" if inner else key] = tuple(item.variables)
        return found

    def writes_to(self, base_dir: Path) -> str | None:
        """Where this destination writes that it alone may write (a file's real path, with
        relative paths under `base_dir`, the config's folder); None where two of them may
        share the place. The loader refuses two enabled destinations writing one place: each
        would rewrite the other's rows as its own."""
        return None

    def reserved_names(self) -> frozenset[str]:
        """The names this destination writes besides the KPIs' (`period`, `date`, ...),
        spelled as `kpi_names` spells names: no KPI may map to one of them."""
        return frozenset()

    def name_clash(self, kpis: Sequence[str], titles: Mapping[str, str]) -> NameClash | None:
        """The first clash of `kpi_names` (two KPIs, one name; or a reserved name), None
        when each KPI keeps a name of its own (`name_collision`)."""
        return name_collision(self.kpi_names(kpis, titles), self.reserved_names())

    @property
    def can_send_text(self) -> bool:
        """True when this destination implements `send_text`, so alerts can `notify` it."""
        return type(self).send_text is not Destination.send_text

    async def send_text(self, text: str) -> None:
        """Send one short plain-text message (an alert firing or resolving), now, once.

        Message destinations implement it; raise DeliveryError (with `transient`) on failure.
        """
        raise NotImplementedError(f"destination type {self.type!r} cannot send text messages")


class MessageDestination(Destination):
    """A destination that sends a message (the digest): at most once per `every` period.

    `compare` defaults to 14 days, like the reference system's Monday message.
    """

    compare: str | None = Field(default="14d", pattern=r"^\d+d$", description="e.g. 14d")


class TableDestination(Destination):
    """A destination that keeps one row per period (`wide`: a column per KPI) or one row per
    KPI and period (`long`), updated in place by every run of the period; never duplicated."""

    upserts: ClassVar[bool] = True

    layout: Literal["wide", "long"] = Field(
        default="wide", description="wide: a column per KPI; long: a row per KPI and period"
    )
