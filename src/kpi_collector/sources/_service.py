"""What the ready connectors (github, pypi, npm, stripe, ...) share: the service's base URL,
its credentials, a subset of metrics, error answers turned into one clear line, rate limits,
pagination, and the dates backfilled values are stored under.

A connector declares its config fields, its `known_metrics`, and implements `collect` with
`self.client(ctx)`; everything here is written once for all of them.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any, ClassVar
from urllib.parse import parse_qs, parse_qsl, urlencode, urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from kpi_collector.collect import jsontext, retry
from kpi_collector.collect.http import (
    Auth,
    Response,
    body_text,
    check_http_url,
    redirect_error,
    retry_after_seconds,
    url_without_query,
)
from kpi_collector.collect.retry import MAX_RETRY_AFTER
from kpi_collector.errors import ExtractError, HttpError, KpiError, MetricErrors
from kpi_collector.secrets import Secret, redact, redact_cut
from kpi_collector.sources.base import Observation, Source, SourceContext

#: statuses a connector reads itself (to name the token, the repo, the rate-limit reset);
#: 5xx and connection errors stay with the HTTP layer, which retries them
HANDLED_STATUSES = (400, 401, 403, 404, 409, 422, 429)
MAX_PAGES = 10_000  # a guard against a service that keeps answering "next"
#: the redirects a GET to a service follows (at most MAX_REDIRECTS in a row), as aiohttp does
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10
#: seconds before asking again for an answer the service is still computing (HTTP 202),
#: doubled each time
COMPUTING_WAIT = 1.0
_MESSAGE_KEYS = ("message", "detail", "error_description", "error", "errstr", "errors")
#: a refusal that says it is a rate limit, though no header says for how long (GitHub's
#: secondary limits answer 403 "You have exceeded a secondary rate limit")
_SAYS_RATE_LIMITED = re.compile(r"rate.?limit|too many requests|throttl|abuse detection", re.I)


class ServiceSource(Source):
    """A connector for one service's API: `api_url`, credentials from `${ENV}`, `metrics: [...]`."""

    #: the service as users know it, for messages ("GitHub")
    service_name: ClassVar[str] = ""
    #: every metric the connector can give; `metrics:` picks a subset
    known_metrics: ClassVar[tuple[str, ...]] = ()
    #: config keys that hold credentials, and the variable people usually keep each in
    credentials: ClassVar[Mapping[str, str]] = {}
    #: seconds before asking again after a rate limit whose answer says no time (doubled for
    #: each further one)
    rate_limit_backoff: ClassVar[float] = 1.0
    #: whether the API answers its 404s with JSON: a 404 web page is then another server's
    #: (an `api_url` that is not the API), which names `api_url:`, not the repo or package
    json_not_found: ClassVar[bool] = False

    api_url: str = Field(description="the service's base URL, before its documented paths")
    metrics: list[str] = Field(default_factory=list, description="a subset of the known metrics")

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value).rstrip("/")

    @field_validator("metrics")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if not cls.accepts_metric(m)]
        if unknown:
            raise ValueError(
                f"unknown metric {unknown[0]!r} for type {cls.type!r}; known: {', '.join(cls.known_metrics)}"
            )
        if len(set(value)) != len(value):
            raise ValueError("a metric is listed twice")
        return value

    @model_validator(mode="after")
    def _no_empty_credentials(self) -> ServiceSource:
        # `${GITHUB_TOKEN:-}` gives "": an optional credential is then absent, a required one
        # is an error now rather than a 401 later
        for key, env in self.credentials.items():
            value = getattr(self, key, None)
            if isinstance(value, Secret) and not value.get():
                if type(self).model_fields[key].is_required():
                    raise ValueError(f"{key} is empty: set {env} in the environment or in .env")
                setattr(self, key, None)
        return self

    @classmethod
    def accepts_metric(cls, name: str) -> bool:
        return name in cls.known_metrics

    def host(self) -> str | None:
        return urlsplit(self.api_url).netloc

    def wanted(self) -> list[str]:
        """The metrics this run collects: the configured subset or the defaults."""
        return list(self.metrics) or list(self.default_metrics)

    def metric_names(self) -> list[str]:
        return self.wanted()

    # what each connector may override --------------------------------------------------------

    def auth(self) -> Auth | None:
        """How requests prove who they are; None for a public API."""
        return None

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    def not_found(self, response: Response) -> str:
        """The message for a 404: which repo/package/project the service does not know."""
        return f"{self.service_name} has nothing at {url_without_query(response.url)}"

    def not_api(self, response: Response) -> str:
        """The message for a 404 web page from a service whose API answers JSON
        (`json_not_found`): `api_url` is some other server."""
        return (
            f"{self.service_name} answered 404 with a web page, not its API's JSON, for "
            f"{urlsplit(response.url).path}: check `api_url:` of source {self.name!r} (the "
            "base URL before the API's documented paths)"
        )

    def forbidden(self, response: Response, message: str) -> str:
        """The message for a 403 that is not a rate limit. Without credentials, none are
        blamed: the service's own words say why (a limit of the API, a blocked address)."""
        said = f"HTTP 403{': ' + message if message else ''}"
        if not self.credentials_given():
            return (
                f"{self.service_name} refused {url_without_query(response.url)} ({said}); "
                f"source {self.name!r} sends no credentials"
            )
        return (
            f"{self.service_name} refused access ({said}); "
            f"the credentials lack a permission this needs (see the {self.type} connector docs)"
        )

    def api_path(self, url: str) -> str | None:
        """The path (and query) under `api_url` that `url`, an address outside it that the
        service sent a redirect to, names when it is the service's own address under another
        name (its configured hostname, which a proxy hides: GitHub Enterprise); None when
        it is not. Such a redirect is asked of `api_url` (with the credentials, which go
        nowhere else); any other is followed without them."""
        return None

    def credentials_given(self) -> bool:
        """Whether any of the connector's credential keys is set."""
        return any(getattr(self, key, None) is not None for key in self.credentials)

    # the shared pieces --------------------------------------------------------------------------

    def client(self, ctx: SourceContext) -> ServiceClient:
        return ServiceClient(self, ctx)

    def credential_hint(self) -> str:
        """Which config key and variable to check when the service refuses the credentials."""
        if not self.credentials:
            return "this API needs no credentials; check api_url"
        key, env = next(iter(self.credentials.items()))
        given = {k: getattr(self, k, None) for k in self.credentials}
        if all(v is None for v in given.values()):
            return f"it needs credentials: add `{key}: ${{{env}}}` to source {self.name!r}"
        keys = " and ".join(f"`{k}`" for k in self.credentials)
        one = len(self.credentials) == 1
        wrong = f"{keys} of source {self.name!r} {'is' if one else 'are'} wrong, expired or revoked"
        variables = [v for value in given.values() for v in getattr(value, "variables", ())]
        if variables:
            names = ", ".join(f"${{{v}}}" for v in dict.fromkeys(variables))
            return f"{wrong}; check {names} (in the environment or in .env beside the config)"
        envs = ", ".join(f"${{{e}}}" for e in self.credentials.values())
        return f"{wrong}; check the value given (usually read from {envs})"

    def http_error(self, response: Response) -> HttpError:
        """Turn a refused request into one clear line (never echoing a credential)."""
        status = response.status
        message = service_message(response.body, response.headers.get("Content-Type"))
        if status == 401:
            text = (
                f"{self.service_name} refused the credentials (HTTP 401{': ' + message if message else ''}): "
                f"{self.credential_hint()}"
            )
        elif status == 403:
            text = self.forbidden(response, message)
        elif status == 404 and self.json_not_found and not _is_json(response):
            text = self.not_api(response)
        elif status == 404:
            text = self.not_found(response)
        else:
            text = f"{self.service_name} refused the request (HTTP {status}){': ' + message if message else ''}"
        return HttpError(redact(text), status=status, url=response.url)

    def rate_limited(self, response: Response, wait: float) -> HttpError:
        """A rate limit that the source's time budget cannot wait out: transient, never a
        credentials problem; the next run tries again."""
        resets = datetime.now(UTC) + timedelta(seconds=wait)
        message = service_message(response.body, response.headers.get("Content-Type"))
        when = f"{resets:%Y-%m-%d %H:%M:%S} UTC (in {_duration(wait)})"
        told = (
            response.headers.get("Retry-After")
            or _reset_in(response.headers, time.time()) is not None
        )
        text = (
            f"{self.service_name} rate limit reached{' (' + message + ')' if message else ''}; "
            + (f"it resets at {when}" if told else f"it asks to wait, at least until {when}")
            + "; the next run will try again"
        )
        return HttpError(
            redact(text), status=response.status, url=response.url, retry_after=wait, transient=True
        )

    async def gather(
        self, parts: Mapping[tuple[str, ...], Awaitable[Mapping[str, float]]]
    ) -> dict[str, float]:
        """Run the requests behind groups of metrics at once; one failing group fails only its
        metrics (a group that raises MetricErrors keeps the values it has). When every group
        fails, the first error is the source's error."""
        results = await asyncio.gather(*parts.values(), return_exceptions=True)
        values: dict[str, float] = {}
        errors: dict[str, str] = {}
        transient: set[str] = set()  # the metrics whose failure may pass (`MetricErrors`)
        first: KpiError | None = None
        for metrics, result in zip(parts, results, strict=True):
            if isinstance(result, MetricErrors) and result.values:
                values.update(result.values)
                errors.update(result.errors)
                transient.update(result.transient_metrics)
            elif isinstance(result, KpiError):
                first = first or result
                errors.update({m: f"{m}: {result}" for m in metrics})
                if result.transient:
                    transient.update(metrics)
            elif isinstance(result, BaseException):
                raise result
            else:
                values.update(result)
        if errors and not values and first is not None:
            raise first
        wanted = self.wanted()
        values = {m: values[m] for m in wanted if m in values}
        missing = [m for m in wanted if m not in values and m not in errors]
        errors.update({m: f"{m}: the answer did not include it" for m in missing})
        if errors:
            raise MetricErrors(values, errors, transient)
        return values


class ServiceClient:
    """Requests to one service for one run: error mapping, rate-limit waits, pagination."""

    def __init__(self, source: ServiceSource, ctx: SourceContext) -> None:
        self.source = source
        self.ctx = ctx
        self.http = ctx.http(auth=source.auth(), headers=source.headers())
        #: the longest wait for a rate limit to reset that still fits the source's time budget
        self.max_wait = min(MAX_RETRY_AFTER, ctx.timeout)
        self.calls = 0

    def url(self, path: str) -> str:
        if "://" not in path:
            return f"{self.source.api_url}{path}"
        # a pagination link elsewhere would carry the credentials to another host
        if urlsplit(path).netloc != urlsplit(self.source.api_url).netloc:
            raise ExtractError(
                f"{self.source.service_name} sent a link to another host ({urlsplit(path).netloc}); "
                f"not following it with the credentials of source {self.source.name!r}"
            )
        return path

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
    ) -> Response:
        url = self.url(path)
        waits = computing = 0
        # a GET's redirects are followed here, where `api_path` can bring one written with
        # the service's own hostname back to `api_url`; aiohttp follows the others'
        own = method in ("GET", "HEAD")
        chain, credentials = [url], True
        while True:
            response = await self.http.request(
                method,
                url,
                params=params,
                headers=headers,
                json_body=json_body,
                data=data,
                ok=(*HANDLED_STATUSES, *REDIRECTS) if own else HANDLED_STATUSES,
                follow_redirects=not own,
                credentials=credentials,
            )
            self.calls += 1
            if own and response.status in REDIRECTS:
                url, credentials = self._redirected(response, chain)
                params = None  # the query is in the `Location`
                continue
            if response.status == 202:
                # "Accepted": the service is still computing the answer (GitHub's statistics
                # answer so while it gathers them); its body is no answer, an empty one no 0
                if computing >= self.ctx.retries:
                    raise HttpError(
                        f"{self.source.service_name} is still computing "
                        f"{url_without_query(response.url)} (HTTP 202); the next run will try again",
                        status=202,
                        url=response.url,
                        transient=True,
                    )
                await retry.pause(COMPUTING_WAIT * 2**computing)
                computing += 1
                continue
            if response.status < 400:
                return response
            if not credentials and response.status in (401, 403):
                # a redirect off `api_url` took the request where its credentials do not go
                raise HttpError(
                    f"{self.source.service_name} answered HTTP {response.status} at "
                    f"{url_without_query(response.url)}, where {url_without_query(chain[0])} "
                    "redirected, on another host than `api_url`: the credentials of source "
                    f"{self.source.name!r} are not sent there; if it is the service's own "
                    "address, set `api_url:` to it",
                    status=response.status,
                    url=response.url,
                    transient=False,
                )
            wait = rate_limit_wait(response, attempt=waits, backoff=self.source.rate_limit_backoff)
            if wait is None:
                raise self.source.http_error(response)
            if wait > self.max_wait or waits >= max(1, self.ctx.retries):
                raise self.source.rate_limited(response, wait)
            waits += 1
            await retry.pause(wait)

    def _redirected(self, response: Response, chain: list[str]) -> tuple[str, bool]:
        """Where a redirect sends a GET, and whether the credentials go with it: to the
        origin of `api_url` only (a `Location` that `api_path` maps is asked of `api_url`).
        HttpError (terminal) for a redirect without `Location`, a loop or too many."""
        location = response.headers.get("Location", "").strip()
        if not location:
            raise HttpError(
                f"HTTP {response.status} from {url_without_query(response.url)}: a redirect "
                "without a `Location` to follow; the service's answer is incomplete",
                status=response.status,
                url=response.url,
                transient=False,
            )
        target = urljoin(response.url, location)
        api_url = self.source.api_url
        if not _under(target, api_url) and (below := self.source.api_path(target)) is not None:
            target = f"{api_url}{below}"
        chain.append(target)
        if target in chain[:-1] or len(chain) > MAX_REDIRECTS + 1:
            raise redirect_error(chain)
        there, home = urlsplit(target), urlsplit(api_url)
        if (there.scheme, there.netloc.lower()) == (home.scheme, home.netloc.lower()):
            return target, True
        # a server that copied the request's query into its `Location` copied a key in it
        auth = self.source.auth()
        keys = {v.get().strip("\r\n") for v in ((auth.query or {}) if auth else {}).values()}
        if keys:
            query = parse_qsl(there.query, keep_blank_values=True)
            kept = urlencode([(k, v) for k, v in query if v not in keys])
            target = there._replace(query=kept).geturl()
        return target, False

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.request("GET", path, **kwargs)

    async def json(self, path: str, *, method: str = "GET", **kwargs: Any) -> Any:
        return (await self.request(method, path, **kwargs)).json()

    async def pages(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Response]:
        """Every page of a list, following the `Link: <...>; rel="next"` header (see
        `next_page`)."""
        response = await self.get(path, params=params, headers=headers)
        seen = {response.url}
        for _ in range(MAX_PAGES):
            yield response
            following = await self.next_page(response, path, params=params, headers=headers)
            if following is None:
                return
            if following.url in seen:
                # a next page that is one already read (a cache that ignores the query, a
                # cursor that does not move): read on, it would count the same items again
                raise ExtractError(
                    f"{self.source.service_name} named a page already read as the next one "
                    f"({url_without_query(following.url)}): the list cannot be read to its end"
                )
            seen.add(following.url)
            response = following
        raise ExtractError(
            f"{self.source.service_name} kept answering with a next page after {MAX_PAGES} pages"
        )

    async def next_page(
        self,
        response: Response,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response | None:
        """The page after `response` (an answer to `path` with `params`) that its
        `Link: <...>; rel="next"` names, or None on the last page.

        A link under `api_url` (same scheme, host and path prefix) is followed as it is. A
        service behind a proxy or on a renamed host (GitHub Enterprise, self-managed GitLab,
        a Hugging Face mirror) writes its links with the address it thinks it has, which kpi
        may not reach and must not send the credentials to: the link's query (the page
        number or cursor) is then asked of `path` at `api_url`."""
        link = response.links.get("next")
        if not link:
            return None
        target = urljoin(response.url, link)  # a link may be relative to the answer
        if _under(target, self.source.api_url):
            return await self.get(target, headers=headers)
        query = parse_qsl(urlsplit(target).query, keep_blank_values=True)
        if not query:
            raise ExtractError(
                f"{self.source.service_name} gave a next-page link without a page or cursor "
                f"({url_without_query(target)}) for {path}"
            )
        return await self.get(path, params={**(params or {}), **dict(query)}, headers=headers)

    async def count(self, path: str, *, params: Mapping[str, Any] | None = None) -> int:
        """The length of a Link-paginated list: ask one item per page and read the number of
        the last page (no Link header: the list fits on this page). A list whose links name
        a next page but no last one (cursor pagination) is read page by page, 100 items at a
        time, rather than counted as the one item on its first page."""
        response = await self.get(path, params={**(params or {}), "per_page": 1})
        if response.status == 204 or not response.body.strip():
            return 0
        last = response.links.get("last")
        if last:
            return page_number(last)
        if response.links.get("next"):
            full = {**(params or {}), "per_page": 100}
            total = 0
            async for page in self.pages(path, params=full):
                total += len(self._items(page))
            return total
        return len(self._items(response))

    def _items(self, response: Response) -> list[Any]:
        if response.status == 204 or not response.body.strip():
            return []
        items = response.json()
        if not isinstance(items, list):
            raise ExtractError(
                f"{self.source.service_name}: expected a list from {url_without_query(response.url)}"
            )
        return items


def _is_json(response: Response) -> bool:
    try:
        response.json()
    except ExtractError:
        return False
    return True


def _under(url: str, base: str) -> bool:
    """Whether `url` is `base` or below it: same scheme, host and port, and a path that
    starts with the base's path, segment by segment."""
    link, root = urlsplit(url), urlsplit(base)
    if (link.scheme.lower(), link.netloc.lower()) != (root.scheme.lower(), root.netloc.lower()):
        return False
    prefix = root.path.rstrip("/")
    return link.path == prefix or link.path.startswith(prefix + "/")


def page_number(url: str) -> int:
    """The `page` parameter of a pagination URL."""
    try:
        return int(parse_qs(urlsplit(url).query)["page"][0])
    except (KeyError, ValueError, IndexError):
        raise ExtractError(
            f"no page number in the pagination link {url_without_query(url)}"
        ) from None


def rate_limit_wait(
    response: Response, *, attempt: int = 0, now: float | None = None, backoff: float = 1.0
) -> float | None:
    """Seconds to wait before asking again, or None when the refusal is not a rate limit.

    `Retry-After` (secondary limits, 429s) wins; else a spent quota (`x-ratelimit-remaining: 0`,
    `RateLimit-Remaining: 0`, `RateLimit: "api";r=0;t=55`) waits for its reset (`_reset_in`:
    a Unix time or seconds from now), unless the answer is a 403 whose message
    gives another reason (the request that spent the last call is refused for its own
    reasons, with the same header); else a 429, or a 403 whose message says it
    is a rate limit, backs off `backoff`, twice that, four times... seconds. This is GitHub's
    documented rule for secondary limits (with a backoff of 60 s: "wait for at least one
    minute", then exponentially longer), and the usual one elsewhere.
    """
    if response.status not in (403, 429):
        return None
    now = time.time() if now is None else now
    retry_after = retry_after_seconds(response.headers.get("Retry-After"), now=now)
    if retry_after is not None:
        return retry_after
    message = service_message(response.body, response.headers.get("Content-Type"))
    spent = _quota_spent(response.headers)
    if response.status == 403 and message and not _SAYS_RATE_LIMITED.search(message) and spent:
        # the request that spent the last call is answered as any other: a refusal that
        # gives its own reason ("Must have push access") is that reason, not the limit
        return None
    if spent:
        reset = _reset_in(response.headers, now)
        if reset is not None:
            return reset + 0.25  # the reset second itself may still be refused
    if response.status == 429 or _SAYS_RATE_LIMITED.search(message):
        return float(backoff * 2**attempt)
    return None


#: the headers that say how many calls are left: `x-ratelimit-*` (GitHub, Docker Hub,
#: Discord) and the IETF draft's `ratelimit-*` (GitLab); Docker's add a window ("0;w=21600")
_REMAINING = ("x-ratelimit-remaining", "ratelimit-remaining")
_RESET = ("x-ratelimit-reset", "ratelimit-reset")
#: a reset below this is seconds from now (the IETF draft's `RateLimit-Reset`, some APIs'
#: `x-ratelimit-reset`), above it a Unix time (GitHub's): 10**9 s is September 2001
_EPOCH_FROM = 1e9


def _quota_spent(headers: Mapping[str, str]) -> bool:
    if _structured(headers).get("r") == "0":
        return True
    return any(headers.get(name, "").split(";")[0].strip() == "0" for name in _REMAINING)


def _structured(headers: Mapping[str, str]) -> dict[str, str]:
    """The parameters of the IETF draft's (version 9) single `RateLimit` header, as the
    Hugging Face Hub sends it: `"api";r=0;t=55` (r: calls left, t: seconds to the reset)."""
    params: dict[str, str] = {}
    for part in headers.get("RateLimit", "").split(";")[1:]:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip()
    return params


def _reset_in(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until a spent quota resets, from the `RateLimit` header's `t` or
    `x-ratelimit-reset-after` (Discord), both seconds, or `x-ratelimit-reset` /
    `ratelimit-reset` (a Unix time, or seconds when it is small); None when no header says."""
    try:
        seconds = float(_structured(headers).get("t", ""))
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return max(0.0, seconds)
    names = ("x-ratelimit-reset-after", *_RESET)
    for name in names:
        try:
            value = float(headers.get(name, "").split(";")[0])
        except ValueError:
            continue
        if not math.isfinite(value):
            continue
        if name == names[0] or value < _EPOCH_FROM:
            return max(0.0, value)
        return max(0.0, value - now)
    return None


def service_message(body: bytes, content_type: str | None = None) -> str:
    """The human part of an error body (`message`, `detail`, `error`, ...), short and redacted;
    read in the charset `content_type` declares (`http.body_text`)."""
    text = body_text(body[:4000], content_type).strip()
    if not text:
        return ""
    try:
        data = jsontext.loads(text)
    except ValueError:
        if text.lstrip().startswith("<"):
            return ""  # an HTML error page says nothing a user can act on
        return _short(text)
    return _short(_find_message(data))


def _find_message(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        return "; ".join(filter(None, (_find_message(item) for item in data[:3])))
    if isinstance(data, dict):
        for key in _MESSAGE_KEYS:
            if data.get(key):
                return _find_message(data[key])
    return ""


def _short(text: str, limit: int = 200) -> str:
    return redact_cut(" ".join(text.split()), limit)  # redacted first: no secret's prefix


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# backfill helpers ---------------------------------------------------------------------------


def service_zone(name: Any) -> ZoneInfo | None:
    """The time zone a service names in its answer (an IANA name such as
    "America/Los_Angeles"), or None when it names none or one this machine does not know
    (the caller then keeps to the config's `timezone`)."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return None


def day_end(day: date, tz: ZoneInfo) -> datetime:
    """The stamp of a value that holds at the end of `day` (the store keys values by local day)."""
    return datetime.combine(day, clock(23, 59, 59), tz)


def last_utc_day(ctx: SourceContext) -> date:
    """The last day complete both in UTC, the days services such as npm, PyPI Stats,
    crates.io and Mixpanel's JQL count (the UTC day under way is counted so far, or not yet),
    and in the config's time zone: ahead of UTC (Tokyo in the morning), the config's yesterday
    is the UTC day under way, and the day before is the last complete one."""
    return min(ctx.today, ctx.now.astimezone(UTC).date()) - timedelta(days=1)


def days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def number(data: Any, key: str, service: str) -> float:
    """A number from a JSON object of a service's answer, or a clear error."""
    raw = data.get(key) if isinstance(data, dict) else None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ExtractError(f"the {service} answer has no number in {key!r}")
    return float(raw)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text[:10])
    except (TypeError, ValueError):
        raise ExtractError(f"{text!r} is not a date like 2026-01-31") from None


def parse_time(text: str) -> datetime:
    """An ISO 8601 timestamp from an API ('2026-01-31T12:00:00Z')."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise ExtractError(f"{text!r} is not a timestamp") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def rolling_sums(
    daily: Mapping[date, float],
    windows: Mapping[str, int],
    *,
    since: date,
    until: date,
    tz: ZoneInfo,
) -> Iterator[Observation]:
    """For each day in [since, until], the sum over each window of days ending that day, where
    the daily series covers the whole window (a day missing inside the covered span counts 0;
    days after its last day are not guessed).

    `windows` maps metric names to window lengths: {"downloads_last_week": 7}.
    """
    if not daily:
        return
    first = min(daily)
    # days after the last one the service has counted are unknown, not zero
    for day in days(max(since, first), min(until, max(daily))):
        stamp = day_end(day, tz)
        for metric, width in windows.items():
            window_start = day - timedelta(days=width - 1)
            if window_start < first:
                continue
            total = sum(daily.get(window_start + timedelta(days=i), 0.0) for i in range(width))
            yield Observation(metric, total, stamp)


_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_repo(value: str, example: str = "owner/name") -> str:
    """`owner/name` (GitHub, Codecov, Docker Hub)."""
    value = value.strip().strip("/")
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a repository like {example}")
    return value
