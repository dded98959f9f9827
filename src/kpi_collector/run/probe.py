"""`kpi probe`: fetch a page as a source would (its auth, login and `render:`), then list
every number on it with the metric that reads it (see `collect.probe`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from kpi_collector.collect.browser import Browser
from kpi_collector.collect.http import HttpClient, url_without_query
from kpi_collector.collect.probe import Finding, probe_html, probe_json
from kpi_collector.errors import ConfigError
from kpi_collector.sources._http import PlainHttpSource
from kpi_collector.sources.base import SourceContext
from kpi_collector.sources.html import PlainHTML

if TYPE_CHECKING:
    from kpi_collector.config.models import Defaults
    from kpi_collector.sources.base import Source


@dataclass
class ProbeResult:
    """What `probe` found: the page's final `url` (query removed), its `kind` ("html" or
    "json"), the findings in document order, and the seconds spent fetching (`fetch_seconds`,
    login and rendering included) and finding (`probe_seconds`)."""

    url: str
    kind: str
    findings: list[Finding] = field(default_factory=list)
    #: the page was loaded in headless Chromium (`--render` or the source's `render:`)
    rendered: bool = False
    fetch_seconds: float = 0.0
    probe_seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """The stable document `kpi probe --format json` prints; the page's text with any
        known secret masked (a page may echo a login name)."""
        from kpi_collector.secrets import redact

        findings = []
        for finding in self.findings:
            shown = finding.as_dict()
            shown["text"], shown["label"] = redact(finding.text), redact(finding.label)
            findings.append(shown)
        return {"url": redact(self.url), "kind": self.kind, "findings": findings}


def probe_source(
    url: str | None, source: Source | None = None, *, render: bool = False
) -> PlainHttpSource:
    """The source to fetch with: `source` (an `html` or `http_json` source of the config)
    pointed at `url` when given, rendered when `render`; without a source, a plain `html`
    source for `url`. ConfigError when that cannot be."""
    if source is None:
        if not url:
            raise ConfigError("give a URL, or `--source NAME` of the config")
        from kpi_collector.collect.metric import Metric
        from kpi_collector.sources.html import HTML

        return HTML(name="probe", url=url, render=render, metrics={"probe": Metric(css="body")})
    if not isinstance(source, PlainHttpSource):
        raise ConfigError(
            f"`--source {source.name}` is a {source.type} source; probe reads html and "
            "http_json sources"
        )
    update: dict[str, object] = {}
    if url:
        update["url"] = url
    if render:
        if not isinstance(source, PlainHTML):
            raise ConfigError(f"`--render` is for html sources; {source.name} is {source.type}")
        update["render"] = True
    return source.replaced(**update) if update else source


async def probe_page(
    source: PlainHttpSource,
    *,
    grep: str | None = None,
    defaults: Defaults | None = None,
    tz: ZoneInfo | None = None,
    base_dir: Path | None = None,
    settle: bool = False,
    pin: bool = True,
) -> ProbeResult:
    """Fetch `source`'s page (login, auth, headers, `render:` as in a run) and list its
    numbers; `settle`: a rendered page is read once the source's metrics read numbers (a
    placeholder its script replaces), as a run reads it; `pin`: a metric whose number
    reads by the locale names it (`collect.probe._pinned`), for a line pasted into any
    config (a configured source's lines are read by its own). Raises the source's errors
    (HttpError, LoginError, ExtractError...)."""
    if defaults is None:
        from kpi_collector.config.models import Defaults

        defaults = Defaults()
    timeout = source.timeout or defaults.timeout
    retries = defaults.retries if source.retries is None else source.retries
    client = HttpClient(concurrency=4, per_host=4)
    browser = Browser(concurrency=1)
    ctx = SourceContext(
        client,
        timeout,
        retries,
        tz or ZoneInfo("UTC"),
        datetime.now(UTC),
        base_dir or Path.cwd(),
        source.max_bytes or defaults.max_bytes,
        browser=browser,
    )
    try:
        began = time.perf_counter()
        if isinstance(source, PlainHTML) and source.render:
            async with source.prepared(ctx):
                fetch_began = time.perf_counter()
                document, final = await source.page(ctx, settle=settle, shown=True)
                text, language = document.text, document.language
            began = fetch_began
            json_body = None
        elif isinstance(source, PlainHTML):  # a `<meta http-equiv=refresh>` is followed
            response, document = await source.answer(ctx)
            final = response.url
            json_body = _json_of(source, response)
            text = "" if json_body is not None else document.text
            language = document.language
        else:
            response = await source.fetch(ctx)
            final = response.url
            json_body = _json_of(source, response)
            text = "" if json_body is not None else response.html()
            language = response.headers.get("Content-Language")
        fetched = time.perf_counter()
        if json_body is not None:
            result = ProbeResult(url_without_query(final), "json")
            result.findings = probe_json(json_body[0], locale=source.locale, grep=grep, pin=pin)
        else:
            rendered = isinstance(source, PlainHTML) and source.render
            result = ProbeResult(url_without_query(final), "html", rendered=rendered)
            result.findings = probe_html(
                text, locale=source.locale, language=language, grep=grep, pin=pin
            )
        result.fetch_seconds = fetched - began
        result.probe_seconds = time.perf_counter() - fetched
        return result
    finally:
        await browser.close()
        await client.close()


def _json_of(source: PlainHttpSource, response: object) -> tuple[object] | None:
    """The parsed JSON body (in a 1-tuple: JSON null is a document too), or None for HTML;
    read exactly, as a run reads it (a number no double holds is a Decimal, never listed)."""
    from kpi_collector.collect.http import Response

    assert isinstance(response, Response)
    kind = response.headers.get("Content-Type", "").lower()
    if source.type == "http_json" or "json" in kind:
        return (response.json(exact=True),)
    if "html" in kind:
        return None
    start = response.body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]  # after a UTF-8 BOM
    if start in (b"{", b"["):
        try:
            return (response.json(exact=True),)
        except Exception:  # not JSON after all: an HTML page
            return None
    return None


def probe(
    url: str | None,
    source: Source | None = None,
    *,
    render: bool = False,
    grep: str | None = None,
    defaults: Defaults | None = None,
    tz: ZoneInfo | None = None,
    base_dir: Path | None = None,
) -> ProbeResult:
    """`probe_page` for `url` (or `source`'s page), from synchronous code."""
    fetching = probe_source(url, source, render=render)
    return asyncio.run(
        probe_page(
            fetching,
            grep=grep,
            defaults=defaults,
            tz=tz,
            base_dir=base_dir,
            # the source's own page: read once its metrics read, as a run reads it
            settle=source is not None and not url,
            pin=source is None,
        )
    )
