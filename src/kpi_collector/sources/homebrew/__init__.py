"""`type: homebrew`: a formula's (or cask's) installs over the last 30, 90 and 365 days, and
its installs on request, from the `analytics` of Homebrew's JSON API
(`GET /api/formula/{name}.json`, `/api/cask/{token}.json`; formulae.brew.sh/docs/api). The
counts are rolling windows Homebrew recomputes daily, with no history: no backfill.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from kpi_collector.collect.http import Response
from kpi_collector.errors import ExtractError
from kpi_collector.sources._service import ServiceSource
from kpi_collector.sources.base import SourceContext

#: metric -> (analytics category, period)
ANALYTICS = {
    "installs_30_days": ("install", "30d"),
    "installs_90_days": ("install", "90d"),
    "installs_365_days": ("install", "365d"),
    "installs_on_request_30_days": ("install_on_request", "30d"),
    "installs_on_request_90_days": ("install_on_request", "90d"),
    "installs_on_request_365_days": ("install_on_request", "365d"),
}
#: casks count installs only (a cask is always installed on request)
_CASK_METRICS = tuple(m for m, (category, _) in ANALYTICS.items() if category == "install")
_NAME = re.compile(r"^[\w@.+-]+$")


class Homebrew(ServiceSource):
    type: ClassVar[str] = "homebrew"
    service_name: ClassVar[str] = "Homebrew"
    known_metrics: ClassVar[tuple[str, ...]] = tuple(ANALYTICS)
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics

    formula: str | None = Field(default=None, description="a homebrew/core formula, e.g. wget")
    cask: str | None = Field(default=None, description="a homebrew/cask token, e.g. firefox")
    api_url: str = "https://formulae.brew.sh"

    @field_validator("formula", "cask")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value.strip()):
            raise ValueError(f"{value!r} is not a formula or cask name like wget or node@20")
        return value.strip() if value else value

    @model_validator(mode="after")
    def _one(self) -> Homebrew:
        if (self.formula is None) == (self.cask is None):
            raise ValueError("give exactly one of `formula:` and `cask:`")
        if self.cask is not None:
            extra = [m for m in self.metrics if m not in _CASK_METRICS]
            if extra:
                raise ValueError(
                    f"a cask has no {extra[0]!r}: casks count installs only ({', '.join(_CASK_METRICS)})"
                )
        return self

    def wanted(self) -> list[str]:
        if self.metrics:
            return list(self.metrics)
        return list(_CASK_METRICS if self.cask is not None else self.known_metrics)

    def not_found(self, response: Response) -> str:
        key, name = ("formula", self.formula) if self.formula else ("cask", self.cask)
        return (
            f"Homebrew has no {key} {name!r} (only homebrew/core formulae and homebrew/cask "
            f"casks have analytics): check `{key}:` of source {self.name!r}"
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        """One call: the formula's (cask's) JSON; each window sums the counts of every
        install variant (`wget`, `wget --HEAD`)."""
        path = (
            f"/api/formula/{self.formula}.json" if self.formula else f"/api/cask/{self.cask}.json"
        )
        data = await self.client(ctx).json(path)
        analytics = data.get("analytics") if isinstance(data, dict) else None
        if not isinstance(analytics, dict):
            raise ExtractError("the Homebrew answer has no `analytics`")
        values = {}
        for metric in self.wanted():
            category, period = ANALYTICS[metric]
            counts = (analytics.get(category) or {}).get(period)
            if not isinstance(counts, dict):
                raise ExtractError(f"the Homebrew analytics have no {category}.{period}")
            values[metric] = float(sum(_count(v) for v in counts.values()))
        return values


def _count(value: Any) -> int:
    """A count as Homebrew writes it: a number, or text with thousands commas ("1,234")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,3}(,\d{3})*|\d+", value):
        return int(value.replace(",", ""))
    raise ExtractError(f"{value!r} in the Homebrew analytics is not a count")
