"""`type: html`: a web page (optionally behind a login form); metrics are CSS or XPath."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from kpi_collector.collect.extract import HtmlDocument
from kpi_collector.collect.http import url_without_query
from kpi_collector.collect.offload import INLINE_BYTES
from kpi_collector.sources._http import HttpSource
from kpi_collector.sources.base import SourceContext


class HTML(HttpSource):
    type: ClassVar[str] = "html"
    default_extractor: ClassVar[str] = "css"

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        response = await self.fetch(ctx)

        def read() -> dict[str, float]:
            with self.keeping_page(response, ".html"):
                document = HtmlDocument(response.html(), locale=self.locale)
                return self.extract(document.metric)

        small = len(response.body) <= INLINE_BYTES and not any(
            m.xpath for m in self.metrics.values()
        )
        return await ctx.off_loop(
            read, what=f"reading {url_without_query(response.url)}", inline=small
        )
