"""What `http_json` and `html` share: a URL, auth, an optional login form and metrics (the
behaviour; the model is `sources._http_model.HttpSource`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from kpi_collector.collect.extract import PlainMetric, extract_all
from kpi_collector.collect.http import (
    MAX_REFRESHES,
    CookieRedirectLoop,
    HttpSession,
    PlainAuth,
    PlainLoginForm,
    Response,
    refresh_error,
    shows_login_form,
    url_without_query,
)
from kpi_collector.errors import ExtractError, LoginError, MetricErrors
from kpi_collector.lazy import lazy_exports
from kpi_collector.secrets import redact
from kpi_collector.sources.base import PlainSource, SourceContext

if TYPE_CHECKING:
    from kpi_collector.sources._http_model import HttpSource as HttpSource

#: the model, served from `sources._http_model` on first use (pydantic is imported there)
__getattr__ = lazy_exports("kpi_collector.sources", {"HttpSource": "_http_model"})

log = logging.getLogger("kpi_collector.extract")


class PlainHttpSource(PlainSource):
    """A page or API at `url`, read once per run; each metric is read from the same answer
    (see `sources._http_model.HttpSource`, its model)."""

    #: the extractor of a metric given as a plain string (`stars: stargazers_count`)
    default_extractor: ClassVar[str] = "jmespath"

    if TYPE_CHECKING:
        url: str
        method: str
        params: dict[str, str]
        headers: dict[str, str]
        body: Any
        auth: PlainAuth | None
        login: PlainLoginForm | None
        metrics: Mapping[str, PlainMetric]

    def host(self) -> str | None:
        # for display: without the userinfo a URL may carry (`https://TOKEN@host/`)
        return urlsplit(self.url).netloc.rpartition("@")[2] or None

    async def fetch(
        self,
        ctx: SourceContext,
        *,
        refresh: Callable[[Response], Awaitable[str | None]] | None = None,
    ) -> Response:
        """The answer at `url` (after the login, if any), raising HttpError as
        `HttpSession.request` does. `refresh` gives the URL an answer sends on to with
        `<meta http-equiv=refresh>`, or None (an `html` source reads it off the page it
        parses); each such URL is read in the same session (its cookies; its auth, headers
        and params only on `url`'s origin), at most `MAX_REFRESHES` in a row, and a
        refresh back to a page already read is an error. A page that sets a cookie and
        redirects back to itself (a session check) is asked again keeping cookies, as a
        browser keeps them."""
        session = ctx.http(auth=self.auth, headers=self.headers, cookies=self.login is not None)
        try:
            try:
                response = await self._fetch(session)
            except CookieRedirectLoop:
                # it set a cookie and sent back to the page: once more, keeping cookies
                await session.close()
                session = ctx.http(auth=self.auth, headers=self.headers, cookies=True)
                response = await self._fetch(session)
            if refresh is None:
                return response
            chain = [response.url]
            while (target := await refresh(response)) is not None:
                chain.append(target)
                if target in chain[:-1] or len(chain) > MAX_REFRESHES + 1:
                    raise refresh_error(chain)
                same_origin = _origin(target) == _origin(self.url)
                response = await session.get(target, credentials=same_origin)
                chain[-1] = response.url  # after its HTTP redirects
            return response
        finally:
            await session.close()

    async def _fetch(self, session: HttpSession) -> Response:
        """The answer at `url`, after the login (if any) in `session`."""
        if self.login is None:
            return await session.request(
                self.method, self.url, params=self.params, json_body=self.body
            )
        # a session can end between the login and the page (it expired, another login
        # took its place): log in once more, as a user would, before calling it an error
        for _ in range(2):
            await session.login(self.login)
            response = await session.request(
                self.method, self.url, params=self.params, json_body=self.body
            )
            if not shows_login_form(self.login, response):
                return response
        raise LoginError(
            f"logged in, but {url_without_query(self.url)} answered with the login form "
            f"again (from {url_without_query(response.url)}), after a second login too: "
            "the site does not keep the session (a cookie it needs, a check on the "
            "browser) or ends it at once",
            transient=False,
        )

    @contextmanager
    def keeping_page(self, page: Callable[[], str], url: str, suffix: str) -> Iterator[None]:
        """With `kpi -v` (debug logging), a page or answer (`page()`, fetched from `url`) that
        a metric could not be read from is saved to a temporary file, and the log says where,
        to open it."""
        try:
            yield
        except ExtractError:
            if log.isEnabledFor(logging.DEBUG):
                text = page()
                saved = save_page(self.name, redact(text), suffix)
                log.info(
                    "%s: a metric could not be read from %s; the answer as fetched is saved in %s",
                    self.name,
                    redact(url_without_query(url)),
                    saved,
                )
            raise

    def extract(self, evaluate: Callable[[str, PlainMetric], float]) -> dict[str, float]:
        values, errors = extract_all(self.metrics, evaluate)
        if errors:
            raise MetricErrors(values, errors)
        return values


def _origin(url: str) -> tuple[str, str | None, int | None]:
    """(scheme, host, port) of an http(s) URL, the port its scheme's default when absent."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def save_page(source: str, page: str, suffix: str) -> Path:
    """Write a fetched page (secrets already masked) to a new file in the temp folder,
    readable by this user only; returns its path, `kpi-<source>-XXXX<suffix>`."""
    import os
    import re
    import tempfile

    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", source)[:40]
    handle, name = tempfile.mkstemp(prefix=f"kpi-{safe}-", suffix=suffix)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(page)
    return Path(name)
