"""`type: html`: a web page (optionally behind a login form, optionally rendered in headless
Chromium); metrics are CSS or XPath."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, ClassVar, TypeVar

from kpi_collector.collect import retry
from kpi_collector.collect.extract import (
    HtmlDocument,
    backtracking_combinators,
    extract_all,
)
from kpi_collector.collect.http import Response, url_without_query
from kpi_collector.collect.offload import INLINE_BYTES
from kpi_collector.errors import HttpError, MetricErrors
from kpi_collector.lazy import lazy_exports
from kpi_collector.sources._http import PlainHttpSource
from kpi_collector.sources.base import SourceContext

#: seconds before the second attempt to load a rendered page, doubling after
_BACKOFF = 0.25

if TYPE_CHECKING:
    from kpi_collector.collect.browser import RenderedPage
    from kpi_collector.sources.html.model import HTML as HTML

T = TypeVar("T")


def _in_frames(exc: MetricErrors, document: HtmlDocument, url: str) -> MetricErrors:
    """`exc`, its "matched nothing" errors saying so when the page shows other pages in
    frames (`<iframe src>`, `<frame src>`), whose content is not the page's: their URLs,
    query removed."""
    from urllib.parse import urljoin

    frames: dict[str, None] = {}
    for node in document.tree.css("iframe[src], frame[src]"):
        src = urljoin(url, (node.attributes.get("src") or "").strip())
        if src.startswith(("http://", "https://")) and src != url:
            frames[url_without_query(src)] = None
    if not frames:
        return exc
    shown = ", ".join(list(frames)[:3]) + (", …" if len(frames) > 3 else "")
    pages = "another page in a frame" if len(frames) == 1 else "other pages in frames"
    hint = f"; the page shows {pages} ({shown}): set `url:` to the frame's page"
    errors = {
        name: message + hint if message.endswith("matched nothing") else message
        for name, message in exc.errors.items()
    }
    return MetricErrors(exc.values, errors, exc.transient_metrics)


class PlainHTML(PlainHttpSource):
    """A page read with CSS or XPath (see `sources.html.model.HTML`, its model)."""

    type: ClassVar[str] = "html"
    default_extractor: ClassVar[str] = "css"

    if TYPE_CHECKING:
        render: bool
        wait_for: str | None

    def prepared(self, ctx: SourceContext) -> contextlib.AbstractAsyncContextManager[None]:
        """A page slot in the run's browser (Chromium launched), for `render: true`."""
        if self.render and ctx.browser is not None:
            return ctx.browser.slot()
        return contextlib.nullcontext()

    async def page(
        self, ctx: SourceContext, *, settle: bool = False, shown: bool = False
    ) -> tuple[HtmlDocument, str]:
        """The page parsed (its `text`, its `language` header) and its final URL: fetched, or
        rendered in Chromium (with `settle`, until the metrics read, as a run reads the
        page; with `shown`, what the page does not show marked `hidden`, see
        `Browser.render`)."""
        return await self._document(ctx, settle=settle, shown=shown)

    async def answer(self, ctx: SourceContext) -> tuple[Response, HtmlDocument]:
        """The answer at `url` without a browser, after each `<meta http-equiv=refresh>` it
        sends on with (see `HttpSource.fetch`), and that answer parsed as the page's
        metrics read it (`Response.html_page`: decoded as a browser decodes it). Raises
        HttpError, LoginError and ExtractError as `fetch` and `html_page` do."""
        parsed: list[HtmlDocument] = []

        async def refresh(response: Response) -> str | None:
            text, utf8 = response.html_page()
            language = response.headers.get("Content-Language")
            document = await self._parse(ctx, text, response.url, utf8, language=language)
            parsed[:] = [document]
            return document.refresh_url(response.url) if response.is_html else None

        response = await self.fetch(ctx, refresh=refresh)
        return response, parsed[0]

    async def _document(
        self, ctx: SourceContext, *, settle: bool = False, shown: bool = False
    ) -> tuple[HtmlDocument, str]:
        """The page parsed, and its final URL: fetched (`answer`), or rendered in Chromium
        (which follows a refresh itself); with `settle`, rendered until every metric reads
        a number (a placeholder the page's script replaces is read again) or the time is
        up."""
        if not self.render:
            response, document = await self.answer(ctx)
            return document, response.url
        last: list[tuple[str, HtmlDocument]] = []  # the DOM `ready` parsed last

        async def ready(html: str, url: str, language: str | None) -> bool:
            document = await self._parse(ctx, html, url, language=language)
            last[:] = [(html, document)]
            _, errors = await self._off_loop_if_slow(
                ctx, document, url, lambda: extract_all(self.metrics, document.metric)
            )
            return not errors

        rendered = await self._rendered(ctx, ready if settle else None, shown=shown)
        if last and last[0][0] is rendered.html:
            return last[0][1], rendered.url
        document = await self._parse(ctx, rendered.html, rendered.url, language=rendered.language)
        return document, rendered.url

    async def _parse(
        self,
        ctx: SourceContext,
        text: str,
        url: str,
        utf8: bytes | None = None,
        *,
        language: str | None = None,
    ) -> HtmlDocument:
        """`text` (from `url`; `utf8`: the same as UTF-8 bytes, if known; `language`: the
        answer's `Content-Language` header, the language of text nothing else names) parsed:
        on the loop, unless the page is large (parsing is linear in it, see `INLINE_BYTES`)."""

        def parse() -> HtmlDocument:
            return HtmlDocument(
                text, locale=self.locale, utf8=utf8, seconds=ctx.timeout, language=language
            )

        if len(text) <= INLINE_BYTES:
            return parse()
        return await ctx.off_loop(parse, what=f"parsing {url_without_query(url)}")

    async def _rendered(
        self,
        ctx: SourceContext,
        ready: Callable[[str, str, str | None], Awaitable[bool]] | None = None,
        *,
        shown: bool = False,
    ) -> RenderedPage:
        """The DOM Chromium built, as HTML, its final URL and language header (`render:
        true`); `ready` as `Browser.render` takes it."""
        from kpi_collector.collect.browser import Browser, BrowserEnded

        browser = ctx.browser or Browser(concurrency=1)
        try:
            for attempt in range(ctx.retries + 1):
                try:
                    rendered = await browser.render(
                        self.url,
                        timeout=ctx.timeout,
                        wait_for=self.wait_for,
                        login=self.login,
                        auth=self.auth,
                        headers=self.headers,
                        params=self.params,
                        max_bytes=ctx.max_bytes,
                        ready=ready,
                        shown=shown,
                    )
                    return rendered
                except (HttpError, BrowserEnded) as exc:
                    # the page did not load (connection refused, 5xx, 429) or Chromium ended:
                    # load it again, after its `Retry-After` (one longer than the source's
                    # budget: never); a page that loaded but never showed `wait_for` is not
                    # retried
                    asked = exc.retry_after if isinstance(exc, HttpError) else None
                    if (
                        not exc.transient
                        or attempt == ctx.retries
                        or (asked is not None and asked > min(retry.MAX_RETRY_AFTER, ctx.timeout))
                    ):
                        raise
                    await retry.pause(max(_BACKOFF * 2**attempt, asked or 0.0))
        finally:
            if ctx.browser is None:
                await browser.close()
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        # rendered, what the page does not show is marked `hidden`, so that the metrics
        # read the text as shown (an odometer's hidden spacer digits are no digits)
        document, url = await self._document(ctx, settle=True, shown=True)

        def read() -> dict[str, float]:
            with self.keeping_page(lambda: document.text, url, ".html"):
                try:
                    return self.extract(document.metric)
                except MetricErrors as exc:
                    raise _in_frames(exc, document, url) from None

        return await self._off_loop_if_slow(ctx, document, url, read)

    async def _off_loop_if_slow(
        self, ctx: SourceContext, document: HtmlDocument, url: str, read: Callable[[], T]
    ) -> T:
        """`read()` (the metrics read from `document`): on the loop, unless the page is
        large or a metric is XPath or CSS that may backtrack (`HtmlDocument.css`)."""
        small = len(document.text) <= INLINE_BYTES and not any(
            m.xpath or (m.css and backtracking_combinators(m.css) > 1)
            for m in self.metrics.values()
        )
        if small:
            return read()
        return await ctx.off_loop(read, what=f"reading {url_without_query(url)}")


#: the model, served from `.model` on first use (pydantic is imported there)
__getattr__ = lazy_exports(__name__, {"HTML": "model"})
