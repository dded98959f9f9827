"""`type: http_json`: any JSON API; each metric is a JMESPath into the answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from kpi_collector.collect.extract import PlainMetric, from_json
from kpi_collector.collect.http import url_without_query
from kpi_collector.collect.offload import INLINE_BYTES
from kpi_collector.errors import ExtractError
from kpi_collector.lazy import lazy_exports
from kpi_collector.sources._http import PlainHttpSource
from kpi_collector.sources.base import SourceContext

if TYPE_CHECKING:
    from kpi_collector.sources.http_json.model import HttpJson as HttpJson


class PlainHttpJson(PlainHttpSource):
    """Any JSON API (see `sources.http_json.model.HttpJson`, its model)."""

    type: ClassVar[str] = "http_json"

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        response = await self.fetch(ctx)

        def read() -> dict[str, float]:
            with self.keeping_page(response.text, response.url, ".json"):
                return read_answer()

        def read_answer() -> dict[str, float]:
            # 1e-400 in the answer: a Decimal, whose metric says it is too small to store
            document = response.json(exact=True)

            def evaluate(name: str, metric: PlainMetric) -> float:
                if metric.css or metric.xpath:
                    raise ExtractError(f"{name}: http_json metrics use `jmespath:`, not css/xpath")
                if not metric.jmespath:
                    raise ExtractError(f"{name}: give a `jmespath:` expression")
                return from_json(name, document, metric, self.locale)

            return self.extract(evaluate)

        return await ctx.off_loop(
            read,
            what=f"reading {url_without_query(response.url)}",
            inline=len(response.body) <= INLINE_BYTES,
        )


#: the model, served from `.model` on first use (pydantic is imported there)
__getattr__ = lazy_exports(__name__, {"HttpJson": "model"})
