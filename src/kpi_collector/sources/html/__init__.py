"""`type: html`: a web page (optionally behind a login form); metrics are CSS or XPath."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from kpi_collector.collect.extract import HtmlDocument
from kpi_collector.sources._http import HttpSource
from kpi_collector.sources.base import SourceContext


class HTML(HttpSource):
    type: ClassVar[str] = "html"
    default_extractor: ClassVar[str] = "css"

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        document = HtmlDocument((await self.fetch(ctx)).body, locale=self.locale)
        return self.extract(document.metric)
