"""`type: html`: a web page (optionally behind a login form); metrics are CSS or XPath."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from kpi_collector.collect.extract import HtmlDocument
from kpi_collector.collect.http import url_without_query
from kpi_collector.collect.offload import INLINE_BYTES
from kpi_collector.errors import ExtractError
from kpi_collector.secrets import redact
from kpi_collector.sources._http import HttpSource
from kpi_collector.sources.base import SourceContext

log = logging.getLogger("kpi_collector.extract")


class HTML(HttpSource):
    type: ClassVar[str] = "html"
    default_extractor: ClassVar[str] = "css"

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        response = await self.fetch(ctx)

        def read() -> dict[str, float]:
            document = HtmlDocument(response.html(), locale=self.locale)
            try:
                return self.extract(document.metric)
            except ExtractError:
                if log.isEnabledFor(logging.DEBUG):  # `kpi -v`: keep the page to look at
                    saved = save_page(self.name, redact(response.html()))
                    log.info(
                        "%s: a selector failed on %s; the page as fetched is saved in %s",
                        self.name,
                        url_without_query(response.url),
                        saved,
                    )
                raise

        small = len(response.body) <= INLINE_BYTES and not any(
            m.xpath for m in self.metrics.values()
        )
        return await ctx.off_loop(
            read, what=f"reading {url_without_query(response.url)}", inline=small
        )


def save_page(source: str, page: str) -> Path:
    """Write a fetched page (secrets already masked) to a new file in the temp folder,
    readable by this user only, and return its path, `kpi-<source>-XXXX.html`."""
    import os
    import re
    import tempfile

    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", source)[:40]
    handle, name = tempfile.mkstemp(prefix=f"kpi-{safe}-", suffix=".html")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(page)
    return Path(name)
