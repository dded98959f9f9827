"""Typed models of `kpi.yaml`. Unknown keys are errors everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from kpi_collector.destinations.base import Destination
    from kpi_collector.sources.base import Source

Agg = Literal["last", "sum", "max", "min", "avg"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Defaults(Strict):
    """Settings every source gets unless it sets its own."""

    timeout: float = Field(default=20.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    concurrency: int = Field(default=64, ge=1, le=4096)
    per_host: int = Field(default=8, ge=1, le=4096)


class KpiSpec(Strict):
    """How a KPI is named, shown, aggregated and, for derived KPIs, computed."""

    title: str | None = None
    unit: str | None = None
    target: float | None = None
    agg: Agg = "last"
    formula: str | None = None
    description: str | None = None
    higher_is_better: bool = True


class Settings(Strict):
    """The top level of `kpi.yaml`, before sources and destinations get their own models."""

    store: str | None = None
    timezone: str = "UTC"
    schedule: str = "0 7 * * *"
    north_star: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    kpis: dict[str, KpiSpec] = Field(default_factory=dict)
    sources: list[dict[str, Any]] = Field(default_factory=list)
    destinations: list[dict[str, Any]] = Field(default_factory=list)
    alerts: list[dict[str, Any]] = Field(default_factory=list)

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
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a 5-field cron expression like '0 7 * * *'")
        return value


class Config:
    """A validated config: settings plus source and destination objects."""

    def __init__(
        self,
        settings: Settings,
        sources: list[Source],
        destinations: list[Destination],
        *,
        path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.destinations = destinations
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
        from kpi_collector.store import resolve_url

        return resolve_url(self.settings.store, self.base_dir)

    def kpi_ids(self) -> list[str]:
        ids = [kid for source in self.sources for kid in source.kpi_ids()]
        ids += [kid for kid, spec in self.kpis.items() if spec.formula and kid not in ids]
        return ids
