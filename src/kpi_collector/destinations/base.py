"""The destination contract: a config model that takes a `Delivery` (a snapshot plus the
history) and writes it somewhere. Destinations never collect; the store is the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from kpi_collector.config.models import KpiSpec
    from kpi_collector.store import HistoryStore


@dataclass
class Delivery:
    """What a destination gets: the values of one period, their history and how to show them."""

    period: str  # the period key: "2026-11-29", "2026-W48", "2026-11" or "run:17"
    period_start: date
    run_id: int | None
    values: dict[str, float]  # KPI id -> latest value
    timestamps: dict[str, float]  # KPI id -> epoch seconds of that value
    kpis: dict[str, KpiSpec]  # titles, units, targets (may miss ids)
    order: list[str]  # KPI ids, north star first
    tz: ZoneInfo
    now: datetime
    previous: dict[str, float] = field(default_factory=dict)  # values `compare` days earlier
    errors: list[tuple[str, str]] = field(default_factory=list)  # (source, message)
    store: HistoryStore | None = None
    base_dir: Path = field(default_factory=Path.cwd)  # relative paths are relative to this

    def title(self, kpi: str) -> str:
        spec = self.kpis.get(kpi)
        return spec.title if spec is not None and spec.title else kpi

    def unit(self, kpi: str) -> str | None:
        spec = self.kpis.get(kpi)
        return spec.unit if spec is not None else None


class Destination(BaseModel):
    """Base of every destination. Subclasses set `type` and implement `deliver`."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    type: ClassVar[str] = ""

    name: str = ""
    enabled: bool = True
    every: Literal["run", "day", "week", "month"] = "run"
    compare: str | None = Field(default=None, pattern=r"^\d+d$", description="e.g. 14d")

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name"):
            data = {**data, "name": cls.type or cls.__name__.lower()}
        return data

    @property
    def compare_days(self) -> int | None:
        return int(self.compare[:-1]) if self.compare else None

    async def deliver(self, delivery: Delivery) -> None:
        raise NotImplementedError
