"""The one HTTP layer every source uses: a shared connection pool with global and per-host
limits, auth, retries with backoff for transient failures, redirects, cookies and login forms.
Every answer is bounded: at most `max_bytes` of body after decompression, read as a stream,
all within the source's timeout.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import functools
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from kpi_collector._version import __version__
from kpi_collector.collect import jsontext
from kpi_collector.collect.retry import BACKOFF, MAX_RETRY_AFTER, retrying, wait_text
from kpi_collector.config.plain import MAX_BYTES, Plain
from kpi_collector.errors import ExtractError, HttpError, LoginError
from kpi_collector.lazy import lazy_exports
from kpi_collector.secrets import (
    Secret,
    redact,
    redact_cut,
    remember,
    reveal,
)

log = logging.getLogger("kpi_collector.http")

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

    from kpi_collector.collect.forms import FilledForm

USER_AGENT = f"kpi-collector/{__version__} (+KPI collection bot; python-aiohttp)"
_BODY_SNIPPET = 200
# C0 controls but tab/newline/CR, DEL and C1 controls: never part of a message
_CONTROL = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)])


class PlainAuth(Plain):
    """How a source proves who it is (see `collect.auth.Auth`, its model)."""

    if TYPE_CHECKING:
        bearer: Secret | None
        basic: tuple[str | Secret, Secret] | None
        header: dict[str, Secret] | None
        query: dict[str, Secret] | None

    def apply(self, headers: dict[str, str], params: dict[str, str]) -> None:
        """Add the credentials to a request's `headers` or query `params`, in place."""
        if self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer.get()}"
        elif self.basic is not None:
            import base64

            user, password = self.basic
            name = user.get() if isinstance(user, Secret) else user
            token = base64.b64encode(f"{name}:{password.get()}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif self.header is not None:
            headers.update({k: v.get() for k, v in self.header.items()})
        elif self.query is not None:  # a key pasted with its line end goes without it
            params.update({k: v.get().strip("\r\n") for k, v in self.query.items()})


class PlainLoginForm(Plain):
    """A login form to fill before reading a page (see `collect.auth.LoginForm`)."""

    if TYPE_CHECKING:
        url: str
        fields: dict[str, Secret]
        form: str | None
        submit: str | None
        submit_url: str | None
        success: str | None
        failure: str | None


#: the models, served from `collect.auth` on first use (pydantic is imported there)
__getattr__ = lazy_exports("kpi_collector.collect", {"Auth": "auth", "LoginForm": "auth"})


def remember_trimmed(values: Iterable[str]) -> None:
    """Mark as secret the trimmed form of each of `values` that has whitespace around it
    (a token pasted with its newline): what a request sends of it (header values trimmed,
    the line ends of typed fields and query keys left out), which a server may echo."""
    for value in values:
        trimmed = value.strip(" \t\r\n")
        if trimmed and trimmed != value:
            remember(trimmed)


@dataclass(slots=True)
class Response:
    """An HTTP answer, read whole: the `status` code, the final `url` (after redirects), the
    response `headers` (case-insensitive) and the `body` as bytes."""

    status: int
    url: str
    headers: Mapping[str, str]
    body: bytes

    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes become U+FFFD)."""
        return self.body.decode("utf-8", errors="replace")

    @property
    def is_html(self) -> bool:
        """Whether the `Content-Type` says HTML (`text/html`, `application/xhtml+xml`)."""
        return "html" in self.headers.get("Content-Type", "").lower()

    def html(self) -> str:
        """The body decoded the way a browser decodes an HTML page (`charset.decode_html`):
        a byte order mark, then the `Content-Type` header's charset, then `<meta charset>` /
        `<meta http-equiv=Content-Type>` in the body, labels as the WHATWG Encoding standard
        reads them (`iso-8859-1` and `ascii` are windows-1252); without any of them UTF-8
        when the body is valid UTF-8, else a `<meta>` further on, else the standard's
        default for the page's `<html lang>` (windows-1252 for most languages). Bytes that
        do not decode become U+FFFD.
        """
        return self.html_page()[0]

    @property
    def blank(self) -> bool:
        """Whether the body is empty or only ASCII whitespace (what `bytes.strip` removes),
        found without copying it: `strip()` copied every page only to test it."""
        return not self.body or self.body.isspace()

    def html_page(self) -> tuple[str, bytes | None]:
        """`html()`, and the body itself when that text is exactly the body read as UTF-8
        (no byte order mark, nothing replaced), else None: what an HTML parser can take
        as it is, without encoding the text again. ExtractError for an empty answer, or
        compressed bytes without their `Content-Encoding`."""
        from kpi_collector.collect.charset import decode_html

        if self.blank:
            raise self._empty()
        for magic, coding in _COMPRESSED_MAGIC:
            if self.body.startswith(magic):
                # a browser shows such a page as garbage too; say why nothing matches
                where = url_without_query(self.url)
                said = self.headers.get("Content-Encoding", "").strip()
                if said:  # undone, and compressed still: compressed twice, said once
                    raise ExtractError(
                        f"the page at {where} is still {coding} data after its "
                        f"`Content-Encoding: {printable(said)[:60]}` was undone: the server "
                        "compresses it twice; fix the server (nothing can be read from "
                        "compressed bytes)"
                    )
                raise ExtractError(
                    f"the page at {where} is {coding} data, but the answer has no "
                    f"`Content-Encoding: {coding}` header; fix the server's headers (nothing "
                    "can be read from compressed bytes)"
                )
        encoding, text = decode_html(self.headers.get("Content-Type"), self.body)
        # U+FFFD absent: nothing was replaced (a body that spells it out takes the text)
        if (
            encoding.replace("_", "-").lower() in ("utf-8", "utf8")
            and "\ufffd" not in text
            and not self.body.startswith(b"\xef\xbb\xbf")
        ):
            return text, self.body
        return text, None

    def json(self, *, exact: bool = False) -> Any:
        """The body parsed as JSON; ExtractError (terminal, naming the URL without its query
        and the start of the body) when it is not JSON, or is empty. `exact`: a number no
        double holds (1e-400, 1e400) is a Decimal, not 0.0 or infinity (`jsontext.loads`).

        UTF-8 (or UTF-16/32, by its BOM or its zero bytes), as RFC 8259 says JSON is, even
        when the header names another charset; a body that is none of them is read in the
        `Content-Type`'s charset when it names one (a Latin-1 or Shift_JIS service), else
        as UTF-8 with U+FFFD for what does not decode, as a browser's `response.json()`."""
        if self.blank:
            raise self._empty()
        try:
            try:
                return jsontext.loads(self.body, exact=exact)
            except UnicodeDecodeError:
                from kpi_collector.collect.charset import header_charset, label_codec

                codec = label_codec(header_charset(self.headers.get("Content-Type")) or "")
                text = self.body.decode(codec or "utf-8", errors="replace")
                return jsontext.loads(text, exact=exact)
        except ValueError as exc:
            raise ExtractError(
                f"the answer from {url_without_query(self.url)} is not valid JSON ({exc}): {_snippet(self.body, self.headers.get('Content-Type'))}"
            ) from None

    def _empty(self) -> ExtractError:
        """The error for an answer with no body (a 204; a 200 of a proxy, or of a server
        whose app is not up): nothing to read, which no selector should be blamed for."""
        return ExtractError(
            f"the answer from {url_without_query(self.url)} is empty (HTTP {self.status}): "
            "nothing to read; check the URL"
        )

    @property
    def links(self) -> dict[str, str]:
        """The `Link` header as {rel: url} (GitHub-style pagination), read as RFC 8288 writes
        it: a comma inside `<...>` or a quoted parameter separates nothing, `rel` may name
        several relation types, compared in lower case; the first link of a type wins."""
        out: dict[str, str] = {}
        for found in _LINK.finditer(self.headers.get("Link", "")):
            for param in _LINK_PARAM.finditer(found.group("params")):
                if param.group("name").lower() == "rel":
                    for rel in (param.group("value") or "").strip('"').lower().split():
                        out.setdefault(rel, found.group("url").strip())
        return out


#: one link of a `Link` header (RFC 8288): `<url>` and its `; name=value` parameters
_LINK = re.compile(
    r'<(?P<url>[^>]*)>(?P<params>(?:\s*;\s*[^;,="]+(?:\s*=\s*(?:"[^"]*"|[^;,]*))?)*)'
)
_LINK_PARAM = re.compile(r';\s*(?P<name>[^;,="\s]+)\s*(?:=\s*(?P<value>"[^"]*"|[^;,]*))?')

#: the first bytes of compressed data (RFC 1952 gzip, RFC 8878 zstd): no page starts so
_COMPRESSED_MAGIC = ((b"\x1f\x8b\x08", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"))


def is_http_url(url: str) -> bool:
    """Whether `url` is an http(s) URL with a host (what every HTTP source and destination
    takes); False for text that is no URL at all (`http://[::1`, an IPv6 host never closed)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_http_url(value: str, *, secret: bool = False) -> str:
    """`value` itself when it is an http(s) URL with a host (`is_http_url`) and a port a
    connection can use, for the models' URL validators and `kpi probe`; ValueError naming it
    otherwise, or calling it "the URL" when it is a `secret` (a webhook URL holds its
    token)."""
    shown = "the URL" if secret else repr(value)
    before_query = re.split(r"[?#]", value, maxsplit=1)[0]
    if "\\" in before_query:
        # a browser reads `\` there as `/`; split as a URL, `host:8080\stats` was a wrong port
        fixed = before_query.replace("\\", "/") + value[len(before_query) :]
        example = "" if secret else f" ({fixed!r})"
        raise ValueError(f"{shown} holds a backslash; a URL is written with /{example}")
    if not is_http_url(value):
        raise ValueError(f"{shown} is not an http(s) URL")
    if any(char.isspace() for char in value):
        # httpx would refuse it at the first request, or send a host no server has
        what = "a space" if " " in value else "a tab or line break"
        raise ValueError(f"{shown} holds {what}; a URL has none (write %20 in its path)")
    try:
        port = urlsplit(value).port
    except ValueError:  # not a number, or out of range: the request would fail with no reason
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{shown} has no valid port (a number from 1 to 65535)")
    return value


#: what a URL's path may hold as it is on the wire (RFC 3986 "pchar" and "/": unreserved,
#: sub-delims, ":" and "@"); the query also "?"
_PATH_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/"
)
_QUERY_SAFE = _PATH_SAFE | {"?"}
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
#: a character outside each safe set, made from the set: a text without one goes as it is
_UNSAFE = {
    safe: re.compile(f"[^{re.escape(''.join(sorted(safe)))}]") for safe in (_PATH_SAFE, _QUERY_SAFE)
}


def _escaped(text: str, safe: frozenset[str]) -> str:
    """`text` with its `%XX` escapes as written and every other character outside `safe`
    percent-encoded as UTF-8 (a `%` that starts no escape too)."""
    if _UNSAFE[safe].search(text) is None:  # one scan in C, not a generator over characters
        return text
    out: list[str] = []
    at = 0
    while at < len(text):
        if _ESCAPE.match(text, at):
            out.append(text[at : at + 3])
            at += 3
            continue
        char = text[at]
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
        at += 1
    return "".join(out)


def wire_url(url: str) -> URL:
    """The yarl URL that sends `url`'s path and query byte for byte, as a browser sends what
    it was given: its escapes kept as written (yarl's own reading decodes `%7E` to `~`, a
    query's `%2F` to `/` and `%41` to `A`, and upper-cases escapes, so a signed URL whose
    signature covers the URL as written was refused), and only what may not go on the wire
    as it is (non-ASCII, controls, a `%` that starts no escape) percent-encoded; the host
    as yarl reads it (IDNA). ValueError for what is no URL."""
    from yarl import URL

    parsed = URL(url)
    if not parsed.absolute:
        return parsed
    parts = urlsplit(url)
    query = _escaped(parts.query, _QUERY_SAFE)
    path = _escaped(parts.path or "/", _PATH_SAFE)
    return URL(
        f"{parsed.scheme}://{parsed.raw_authority}{path}" + (f"?{query}" if query else ""),
        encoded=True,
    )


def url_without_query(url: str) -> str:
    """The URL without its userinfo (`token@`, `user:password@`), query string and fragment,
    where credentials may hide: what a message names. The host and port stay as written."""
    parts = urlsplit(url)
    if not parts.netloc:  # `javascript:...`, `mailto:...`: no host to keep
        return f"{parts.scheme}:{parts.path}"
    host = parts.netloc.rpartition("@")[2]  # a password written with its `@` goes too
    return f"{parts.scheme}://{host}{parts.path}"


def shown_url(url: str) -> str:
    """A URL a server sent (a `Location`, a refresh's target) as a message names it: without
    userinfo, query and fragment (`url_without_query`, or the text before `?` or `#` when
    it is no URL at all), secrets masked, controls removed, at most 200 characters (a
    `Location` may be 8 KB long)."""
    try:
        bare = url_without_query(url)
    except ValueError:  # `http://[::1`: as it came, less what may hold credentials
        bare = re.split(r"[?#]", url, maxsplit=1)[0]
    return redact_cut(printable(bare), _BODY_SNIPPET)


def printable(text: str) -> str:
    """`text` without control characters (NUL, escape sequences, C1 controls), for messages
    that end up in a terminal, the store and the dashboard."""
    return text.translate(_CONTROL)


def _snippet(body: bytes, content_type: str | None = None) -> str:
    """The start of an answer for an error message: its text (in the charset `content_type`
    declares, `body_text`), redacted first and then cut to 200 characters (so the cut never
    leaves a secret's first characters, issue 12), or a note that it is binary (a NUL, or
    mostly undecodable: compressed data, an image)."""
    head = body_text(body[:_BODY_SNIPPET], content_type)
    if "\0" in head or head.count("\ufffd") > len(head) // 4:
        return f"({len(body)} bytes of binary data)"
    window = body[: _BODY_SNIPPET * 64]  # room for secrets and whitespace before the cut
    text = " ".join(printable(body_text(window, content_type)).split())
    short = redact_cut(text, _BODY_SNIPPET)
    return short + "…" if len(body) > len(window) and not short.endswith("…") else short


def body_text(body: bytes, content_type: str | None) -> str:
    """An answer that is not HTML as text, for a message (this layer's, a connector's): by
    its byte order mark, else in the charset its `Content-Type` declares (a WHATWG label,
    read as `Response.html` reads it: `iso-8859-1` is windows-1252), else UTF-8; a JSON
    body that is valid UTF-8 is read as UTF-8 whatever the header says, as `Response.json`
    parses it. U+FFFD for what does not decode."""
    from w3lib.encoding import read_bom

    from kpi_collector.collect.charset import header_charset, label_codec

    bom_codec, bom = read_bom(body)
    if bom_codec is not None and bom is not None:
        return body[len(bom) :].decode(bom_codec, errors="replace")
    codec = label_codec(header_charset(content_type) or "") or "utf-8"
    if codec != "utf-8" and "json" in (content_type or "").lower():
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return body.decode(codec, errors="replace")


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Parse `Retry-After` (seconds or an HTTP date) into seconds from now, at least 0; None
    when it is missing or neither (`inf`, `nan`, `1_0`, a word).

    Seconds are ASCII digits (RFC 9110 10.2.3), a fraction and a sign allowed as servers send
    them. A date is UTC in each of its three forms (RFC 9110 5.6.7), asctime's
    (`Sun Nov  6 08:49:37 1994`) too, which names no zone: not the machine's local time."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):  # 400 digits are no number of seconds either (`inf`)
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


#: `Retry-After` as a number of seconds: ASCII digits, maybe a fraction and a sign
_SECONDS = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)", re.ASCII)


_STATUS_HINTS = {
    401: "unauthorized: the credentials are missing or wrong",
    403: "forbidden: the credentials do not allow this",
    404: "not found: check the URL or the name in the config",
    407: "proxy authentication required",
    429: "rate limited",
}
#: the hint for a status of 600 or more: no server error, and the same refusal comes back
UNDEFINED_STATUS = "a status HTTP does not define (LinkedIn refuses automated requests with 999)"
#: the same, for a request without `auth:` or a login: no credentials to blame
_HINTS_WITHOUT_CREDENTIALS = {**_STATUS_HINTS, 403: "forbidden"}


class CookieRedirectLoop(HttpError):
    """Redirects that went round in a circle while their answers set cookies, in a session
    that keeps none (`cookies=False`): a site that sets a cookie and sends back to the page
    (a session check, a cookie wall) loops only without them; ask again keeping cookies."""


@dataclass
class HttpClient:
    """One per run: the connection pool shared by every source, with at most `concurrency`
    connections in all and `per_host` to one host; `backoff` is the seconds before the first
    retry of a transient failure (doubled each time, with jitter). The pool opens on first
    use; `close` it (or use `async with`) when the run is done."""

    concurrency: int = 64
    per_host: int = 8
    backoff: float = BACKOFF
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)
    _connector: aiohttp.TCPConnector | None = field(default=None, init=False, repr=False)

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            self._connector = aiohttp.TCPConnector(
                limit=self.concurrency, limit_per_host=self.per_host, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=self._connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers=_default_headers(),
                # a `Location` as the server wrote it: `_as_written` sends it (`wire_url`)
                requote_redirect_url=False,
            )
        return self._session

    def session(
        self,
        *,
        timeout: float = 20.0,
        retries: int = 2,
        auth: PlainAuth | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: bool = False,
        max_bytes: int = MAX_BYTES,
    ) -> HttpSession:
        """A view of the pool for one source: its timeout, retries, auth, answer cap (bytes
        after decompression) and, if asked, cookies."""
        return HttpSession(
            self,
            timeout=timeout,
            retries=retries,
            auth=auth,
            headers=dict(headers or {}),
            cookies=cookies,
            max_bytes=max_bytes,
        )

    async def close(self) -> None:
        """Close the pool and its connections; the next request opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._connector = None


def _default_headers() -> dict[str, str]:
    """The headers every request sends unless the source sets its own: the User-Agent, and
    an `Accept-Encoding` naming only the codings `_read_capped` can undo (aiohttp's names br
    for any Brotli installed, one too old to decode in bounded steps included)."""
    from kpi_collector.collect.decoding import accept_encoding

    return {"User-Agent": USER_AGENT, "Accept-Encoding": accept_encoding()}


@functools.cache
def _browser_cookie_jar() -> type[aiohttp.CookieJar]:
    """aiohttp's cookie jar, sending `Secure` cookies to loopback http origins too
    (`http://localhost:8080`, `http://127.0.0.1`), which browsers count as secure (a
    port-forward, an SSH tunnel: the login's session cookie is `Secure`), and each value
    as the server set it, never quoted anew."""
    import ipaddress
    from http.cookies import Morsel

    import aiohttp
    from aiohttp._cookie_helpers import preserve_morsel_with_coded_value
    from yarl import URL

    def loopback(host: str) -> bool:
        host = host.rstrip(".").lower()
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            return False

    class BrowserCookieJar(aiohttp.CookieJar):
        def filter_cookies(self, request_url: URL = URL()) -> Any:
            if request_url.scheme == "http" and loopback(request_url.raw_host or ""):
                request_url = request_url.with_scheme("https")
            return super().filter_cookies(request_url)

        def _build_morsel(self, cookie: Morsel[str]) -> Morsel[str]:
            # the value as the server wrote it (RFC 6265 5.4: a browser sends it back byte
            # for byte); aiohttp's own puts one with `=`, `,`, `{` or `:` in quotes and
            # escapes it, which a site reading the raw header (PHP, Go, Google's) never knows
            return preserve_morsel_with_coded_value(cookie)

    return BrowserCookieJar


class HttpSession:
    """Requests for one source. Transient failures are retried; terminal ones raise at once."""

    def __init__(
        self,
        client: HttpClient,
        *,
        timeout: float,
        retries: int,
        auth: PlainAuth | None,
        headers: dict[str, str],
        cookies: bool,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.retries = retries
        self.max_bytes = max_bytes
        self.auth = auth
        self.headers = headers
        self._own: aiohttp.ClientSession | None = None
        self._cookies = cookies

    def _aiohttp(self) -> aiohttp.ClientSession:
        shared = self.client._ensure()
        if not self._cookies:
            return shared
        if self._own is None:
            import aiohttp

            # a cookie jar of its own, the connections of the shared pool
            self._own = aiohttp.ClientSession(
                connector=self.client._connector,
                connector_owner=False,
                cookie_jar=_browser_cookie_jar()(unsafe=True),
                headers=_default_headers(),
                requote_redirect_url=False,
            )
        return self._own

    async def close(self) -> None:
        """Close this session's own cookie jar, if it has one (the pool stays open)."""
        if self._own is not None:
            await self._own.close()
            self._own = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        ok: tuple[int, ...] = (),
        fields_stay: bool = False,
        credentials: bool = True,
        follow_redirects: bool = True,
    ) -> Response:
        """Send a request, retrying transient failures; raise HttpError for a non-success.

        `params` are added to the query string (values turned into strings), `headers` to
        the session's; `json_body` is sent as JSON, `data` as a form or raw body. Each attempt
        has the session's `timeout` in seconds. A status below 300 returns (redirects are
        followed); `ok` lists more statuses the caller handles itself (they return, not
        raise); a 3xx left as it is (a 304, a redirect without `Location`) raises, terminal. Connection errors,
        timeouts, 5xx and 429 are transient: retried `retries` times (after the
        `Retry-After` of the answer; one longer than `timeout`, or than `collect.retry`'s
        limit, raises at once, saying when to come back),
        then raised as HttpError with `transient=True`; other 4xx raise at
        once (terminal). Messages name the URL without its query string. `fields_stay`: the
        body holds a login's fields, which a redirect must not send on (a 307 or 308 keeps
        the body) to another host than `url`'s: LoginError (terminal) instead. Without
        `credentials`, the session's auth and headers are not sent (a page on another origin
        that a configured page sent on to). Without `follow_redirects`, a redirect is the
        answer (list its status in `ok`, or it raises as a 3xx left as it is).
        """
        import aiohttp
        from yarl import URL

        try:  # a URL a server gave (a `next` link, a `Link` header) may be no URL at all
            URL(url)
        except ValueError as exc:  # aiohttp would raise this bare, as a bug in the source
            raise HttpError(
                f"{shown_url(url)} is no valid URL ({printable(str(exc))}); check the URL",
                url=url,
                transient=False,
            ) from None
        all_headers = {**(self.headers if credentials else {}), **(headers or {})}
        all_params = {k: str(v) for k, v in (params or {}).items()}
        if self.auth is not None and credentials:
            self.auth.apply(all_headers, all_params)
        for name, value in all_headers.items():
            if not _HEADER_NAME.fullmatch(name):
                # `X-Key:` pasted from curl's `-H` went as `X-Key:: value` (the server read
                # `: value`), `X Key` as no header a server reads, a line break as a crash
                raise HttpError(
                    f"{printable(repr(name))} is no header name (for "
                    f"{url_without_query(url)}): a name is letters, digits and "
                    "!#$%&'*+-.^_`|~, without the colon and the value; check `headers:`",
                    url=url,
                    transient=False,
                )
            if value != (trimmed := value.strip(" \t\r\n")) or _HEADER_CONTROL.search(value):
                if _HEADER_CONTROL.search(trimmed):
                    raise HttpError(
                        f"the header {printable(name)} for {url_without_query(url)} holds a line "
                        "break or another control character inside its value; a header value is "
                        "one line: check it (and the variable it comes from)",
                        url=url,
                        transient=False,
                    )
                # a token pasted with its line end: no field value has surrounding whitespace
                all_headers[name] = trimmed

        async def attempt() -> Response:
            try:
                response = await self._once(
                    method,
                    url,
                    all_params,
                    all_headers,
                    json_body,
                    data,
                    fields_stay,
                    follow_redirects=follow_redirects,
                )
            except aiohttp.TooManyRedirects as exc:
                chain = [str(r.url) for r in exc.history]
                last = exc.history[-1] if exc.history else None
                target = last.headers.get("Location") if last is not None else None
                if last is not None and target:
                    chain.append(urljoin(str(last.url), target))
                error = redirect_error(chain)
                if not self._cookies and any("Set-Cookie" in r.headers for r in exc.history):
                    # a cookie it set and then asked for: a browser would have had it
                    raise CookieRedirectLoop(str(error), url=error.url, transient=False) from None
                raise error from None
            except (
                aiohttp.InvalidUrlRedirectClientError,
                aiohttp.NonHttpUrlRedirectClientError,
            ) as exc:
                # a `Location` to ftp:, file:, javascript:..., or one that is no URL (a port
                # past 65535, an IPv6 host never closed): the same one comes next time
                target = shown_url(str(exc.args[0] if exc.args else exc))
                what = (
                    "an http(s) URL"
                    if isinstance(exc, aiohttp.NonHttpUrlRedirectClientError)
                    else "a valid URL"
                )
                raise HttpError(
                    f"{url_without_query(url)} redirects to {target}, which is not {what}; "
                    "check the URL",
                    url=url,
                    transient=False,
                ) from None
            except aiohttp.ClientResponseError as exc:
                # raised by aiohttp's parser itself: a 400 of its own, not the server's status
                if type(exc) is not aiohttp.ClientResponseError or exc.status != 400:
                    raise _connection_error(url, exc, self.timeout) from None
                # aiohttp could not parse the answer (a header line past 8190 bytes, more
                # headers than it takes, a broken status line): no retry reads it better
                reason = exc.message.split(":", 1)[0] if exc.message else "unreadable"
                raise HttpError(
                    f"the answer from {url_without_query(url)} is not HTTP this client reads: "
                    f"{printable(reason)[:120]}",
                    url=url,
                    transient=False,
                ) from None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise _connection_error(url, exc, self.timeout) from None
            if response.status < 300 or response.status in ok:
                return response
            if response.status < 400:  # a redirect left as it is: no page in it
                raise _unfollowed_error(response)
            # credentials in the URL's userinfo count too: aiohttp sends them as basic auth
            # to its origin only
            userinfo = "@" in urlsplit(url).netloc
            raise _status_error(
                response,
                credentials=self.auth is not None or self._cookies or userinfo,
                left_behind=(
                    url if (credentials and (self.auth or self.headers)) or userinfo else None
                ),
            )

        # a Retry-After longer than an attempt's time would spend the source's whole budget
        # waiting (the run gives it `timeout` per attempt): fail now, saying when to come back
        return await retrying(
            attempt,
            retries=self.retries,
            backoff=self.client.backoff,
            max_wait=min(MAX_RETRY_AFTER, self.timeout),
        )

    async def _once(
        self,
        method: str,
        url: str,
        params: dict[str, str],
        headers: dict[str, str],
        json_body: Any,
        data: Any,
        fields_stay: bool = False,
        *,
        follow_redirects: bool = True,
    ) -> Response:
        import aiohttp

        session = self._aiohttp()
        target = wire_url(url)
        middlewares: list[aiohttp.ClientMiddlewareType] = [
            _as_written(follow_redirects, "" if params else str(target))
        ]
        own = _query_credentials(url)
        if headers or params or own:  # nothing to keep from other origins: no middleware
            middlewares.append(_same_origin_credentials(url, headers, {**own, **params}))
        if fields_stay:
            middlewares.append(_fields_stay_on_host(url))
        # one deadline for the whole answer, the last byte of the body included: aiohttp's
        # `total` does not stop a body that keeps trickling in
        reading = _Reading()
        try:
            async with (
                asyncio.timeout(self.timeout),
                session.request(
                    method,
                    target,
                    params=params or None,
                    headers=headers or None,
                    json=json_body,
                    data=data,
                    # the one deadline is the asyncio.timeout above; an aiohttp timeout (this
                    # one, or else the session's default of 5 minutes) adds a timer per request
                    timeout=aiohttp.ClientTimeout(),
                    # the body as it came: `_read_capped` undoes its Content-Encoding, and
                    # refuses a stream cut before its end, which aiohttp takes as whole
                    auto_decompress=False,
                    middlewares=tuple(middlewares),
                    allow_redirects=follow_redirects,
                ) as resp,
            ):
                reading.status, reading.declared = resp.status, resp.content_length
                try:
                    body = await _read_capped(resp, self.max_bytes, reading)
                except _TooLarge:
                    if resp.status < 400:
                        raise
                    # an error page past the cap (a 503 that is a gzip bomb): its status is
                    # the answer, retried as such, not a hint to raise `max_bytes`
                    body = b""
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "%s %s: HTTP %d, %s bytes",
                        method,
                        redact(url_without_query(str(resp.url))),
                        resp.status,
                        f"{len(body):,}",
                    )
                return Response(resp.status, str(resp.url), resp.headers, body)
        except TimeoutError as exc:
            if reading.status is None:
                raise
            # the answer began: say how far its body came (stalled, or trickling)
            raise _BodyTimeout(reading) from exc

    async def get(self, url: str, **kwargs: Any) -> Response:
        """`request("GET", url, ...)`: same keywords, same errors."""
        return await self.request("GET", url, **kwargs)

    async def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET `url` and parse the answer as JSON: HttpError as `request`, ExtractError
        when the body is not JSON."""
        return (await self.request("GET", url, **kwargs)).json()

    async def login(self, form: PlainLoginForm) -> Response:
        """Fill and send a login form as a browser does (see `collect.forms`), keeping the
        session's cookies; LoginError when it is refused, saying how it was refused."""
        from kpi_collector.collect.charset import decode_html
        from kpi_collector.collect.forms import FormProblem, fill, find_form, parse_html

        log.debug("login: reading the form on %s", redact(url_without_query(form.url)))
        try:
            page = await self.get(form.url)
        except HttpError as exc:
            # which of the source's two URLs failed: this one is `login: url:`
            where = url_without_query(exc.url or form.url)
            said = str(exc).replace(where, f"{where} (the login page, `login: url:`)", 1)
            raise HttpError(
                said if said != str(exc) else f"{exc} (the login page, `login: url:`)",
                status=exc.status,
                url=exc.url,
                retry_after=exc.retry_after,
                transient=exc.transient,
            ) from None
        where = url_without_query(page.url)
        try:
            # read as a browser reads it: its hidden values as the page has them, and its
            # charset the one the form is sent in
            encoding, text = decode_html(page.headers.get("Content-Type"), page.body)
        except ExtractError as exc:
            raise LoginError(f"login: {exc} ({where})", transient=False) from None
        try:
            doc = parse_html(text, page.url)
            node = find_form(doc, form.form)
            filled = fill(
                doc,
                node,
                page_url=page.url,
                fields={key: reveal(value) or "" for key, value in form.fields.items()},
                submit=form.submit,
                action=urljoin(page.url, form.submit_url) if form.submit_url else None,
                encoding=encoding,
            )
        except FormProblem as exc:
            raise LoginError(f"login: {exc} on {where}", transient=False) from None
        target = url_without_query(filled.url)
        if form.submit_url is None:  # the user's own `submit_url:` may go anywhere
            _check_destination(page.url, filled.url)
        _remember_as_sent(filled, [reveal(value) or "" for value in form.fields.values()])
        log.debug(
            "login: sending %s to %s (fields: %s)",
            filled.method,
            redact(target),
            ", ".join(dict.fromkeys(key for key, _ in filled.entries)) or "none",
        )
        # where the submission comes from, as a browser says it: CSRF checks (Django's over
        # HTTPS, Rails' origin check) refuse a POST with neither `Origin` nor `Referer`
        # from its own origin, the page itself; to another (`submit_url:`), its origin only, as
        # a browser's default referrer policy (strict-origin-when-cross-origin) sends it
        referer = urlsplit(page.url)._replace(fragment="").geturl()
        if _origin(filled.url) != _origin(page.url):
            referer = _origin(page.url) + "/"
        sent_from = {"Referer": referer}
        if filled.method == "GET":
            result = await self.request("GET", filled.url, headers=sent_from, ok=_REFUSALS)
        else:
            body, headers = _form_body(filled)
            headers = {**headers, **sent_from, "Origin": _origin(page.url)}
            result = await self.request(
                "POST", filled.url, data=body, headers=headers, ok=_REFUSALS, fields_stay=True
            )
        if result.status >= 400:
            # 403 of a CSRF check, 419 of Laravel's, 422...: what the server said is the why
            reason = _page_text(result)
            raise LoginError(
                f"login refused by {target} (HTTP {result.status})"
                f"{': ' + reason if reason else ''}; {_sent(filled)}",
                transient=False,
            )
        _check_login(form, filled, result)
        log.debug("login: accepted by %s", redact(target))
        return result


def _remember_as_sent(filled: FilledForm, values: list[str]) -> None:
    """Mark the forms a login's values take in a legacy charset as secret too (`remember`
    knows their UTF-8 forms): what a server echoes of them, `M%FCller` of a windows-1252
    form, `&#10003;` for what the charset lacks."""
    from urllib.parse import quote, quote_plus

    for value in values:
        sent = filled.encode(value)
        if sent == value.encode():
            continue
        remember(sent.decode(filled.codec))  # what the server decoded, char refs and all
        for encode in (quote, quote_plus):
            remember(encode(sent, safe=""))


def _check_destination(page_url: str, form_url: str) -> None:
    """LoginError unless a login form on `page_url` sends its fields to the same host, and
    not unencrypted when the page came over https: the fields are for that site alone."""
    page, form = urlsplit(page_url), urlsplit(form_url)
    where, target = url_without_query(page_url), url_without_query(form_url)
    if page.hostname != form.hostname:
        why = "another host"
    elif page.scheme == "https" and form.scheme != "https":
        why = "unencrypted (http), from an https page"
    else:
        return
    raise LoginError(
        f"login: the form on {where} sends the login fields to {target}, {why}; if that "
        f"is the site's own sign-in, give `submit_url: {target}`",
        transient=False,
    )


def _fields_stay_on_host(url: str) -> aiohttp.ClientMiddlewareType:
    """An aiohttp middleware that refuses a request of the redirect chain from `url` that
    sends a body (a 307 or 308 keeps a POST's) to another host, or from https to http (in
    clear text): LoginError, terminal."""
    from yarl import URL

    start = URL(url)

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if request.method not in ("GET", "HEAD"):
            why = None
            if request.url.host != start.host:
                why = "another host"
            elif start.scheme == "https" and request.url.scheme != "https":
                why = "unencrypted (http), from an https page"
            if why is not None:
                there = url_without_query(str(request.url))
                raise LoginError(
                    f"login: {url_without_query(url)} redirects the login fields (a 307 or "
                    f"308 sends them on) to {there}, {why}; if that is the site's own "
                    f"sign-in, give `submit_url: {there}`",
                    transient=False,
                )
        return await handler(request)

    return middleware


#: the answers to a login's submission that refuse it (4xx but 429, which is retried)
_REFUSALS = tuple(status for status in range(400, 500) if status != 429)


def _origin(url: str) -> str:
    """The `Origin` header a browser sends for a request from the page at `url`: its scheme,
    host and port (RFC 6454), the port only when it is not the scheme's default."""
    from yarl import URL

    return str(URL(url).origin())


def _page_text(response: Response) -> str:
    """What an HTML answer says, for a message: its title and visible text (no scripts or
    styles), whitespace collapsed, secrets masked, cut to 200 characters; an answer that is
    not HTML gives its start (`_snippet`)."""
    from kpi_collector.collect.forms import FormProblem, parse_html

    if not response.is_html:
        return _snippet(response.body, response.headers.get("Content-Type"))
    try:
        doc = parse_html(_as_browser_reads(response)[: _BODY_SNIPPET * 64], response.url)
    except FormProblem:
        return ""
    for hidden in doc.xpath("//script|//style|//noscript|//template"):
        hidden.drop_tree()
    # each text node apart: `<h1>Forbidden</h1><p>CSRF...` reads as two phrases, not one word
    text = " ".join(printable(" ".join(doc.itertext())).split())
    return redact_cut(text, _BODY_SNIPPET)


#: at most this many refreshes in a row are followed
MAX_REFRESHES = 5
_ASCII_SPACE = " \t\n\f\r"


def refresh_content(content: str) -> str | None:
    """The URL text a `<meta http-equiv="refresh">`'s `content` names, read step by step as
    the HTML standard's "shared declarative refresh steps" read it: "" when it names none
    (`300`: a reload), None when it is not a refresh at all (`soon; url=/a`, `0a; url=/b`),
    which a browser passes over for the next such element. `url=` is optional, and a quote
    before the URL ends at its next quote (`'/next' and more` is `/next`)."""
    size, at = len(content), 0

    def spaces(at: int) -> int:
        while at < size and content[at] in _ASCII_SPACE:
            at += 1
        return at

    at = spaces(at)
    digits = at
    while at < size and content[at] in "0123456789":
        at += 1
    if at == digits and (at == size or content[at] != "."):
        return None  # no seconds first
    while at < size and content[at] in "0123456789.":
        at += 1
    if at < size:
        if content[at] not in ";," + _ASCII_SPACE:
            return None
        at = spaces(at)
        if at < size and content[at] in ";,":
            at += 1
        at = spaces(at)
    if at == size:
        return ""
    text = content[at:]  # what is parsed when `url` is not followed by `=`
    if content[at] in "uU":
        if content[at + 1 : at + 3].lower() != "rl":
            return text.strip(_URL_TRIM)
        after = spaces(at + 3)
        if after == size or content[after] != "=":
            return text.strip(_URL_TRIM)
        at = spaces(after + 1)
    quote = content[at] if at < size and content[at] in "'\"" else ""
    text = content[at + len(quote) :]
    if quote and quote in text:
        text = text[: text.index(quote)]
    return text.strip(_URL_TRIM)


#: what the URL parser trims from both ends: C0 controls and space
_URL_TRIM = "".join(map(chr, range(0x21)))


def refresh_url(content: str | None, base_url: str) -> str | None:
    """The absolute http(s) URL a `<meta http-equiv="refresh" content="N; url=...">` sends
    on to (`refresh_content`), resolved against `base_url`; None when `content` is absent,
    is no refresh, names no URL (`content="300"` only reloads the page), or names one that
    is not http(s). A browser waits N seconds first; a collector has nothing to wait for.
    Finding the element is the parsed page's part (`extract.HtmlDocument.refresh_url`)."""
    target = refresh_content(content) if content is not None else None
    if not target:
        return None
    absolute = urljoin(base_url, target)
    return absolute if is_http_url(absolute) else None


def refresh_error(chain: list[str]) -> HttpError:
    """The error for `<meta http-equiv=refresh>` hops that go in a circle or on too long;
    `chain` is every URL read, the one the last refresh named included."""
    start, last = url_without_query(chain[0]), shown_url(chain[-1])
    hops = len(chain) - 1
    if chain[-1] in chain[:-1]:
        return HttpError(
            f"refresh loop: {start} sends on with <meta http-equiv=refresh> to {last}, where "
            f"it had been (after {hops} hop{'s' if hops != 1 else ''}); check the URL",
            url=chain[0],
            transient=False,
        )
    return HttpError(
        f"too many refreshes: gave up after {hops} <meta http-equiv=refresh> hops from {start} "
        f"(the last to {last}); check the URL",
        url=chain[0],
        transient=False,
    )


_PASSWORD_INPUT = re.compile(rb"""type\s*=\s*["']?password""", re.IGNORECASE)


def shows_login_form(form: PlainLoginForm, response: Response) -> bool:
    """Whether an answer after a login is the login form again (the session expired, or
    the site did not keep it): an HTML page with a form that has a password input named in
    `fields:` and an input of every other name there, or of two at least (a name the login
    form never had, set by its script, may be among them; a page that only changes a
    password has other names); or the form `form:` names, with an input named in `fields:`."""
    if not response.is_html:
        return False
    if form.form is None and not _PASSWORD_INPUT.search(response.body):
        return False  # most pages: no parse needed
    from kpi_collector.collect.forms import FormProblem, controls, page_forms, parse_html

    try:
        doc = parse_html(_as_browser_reads(response), response.url)
    except FormProblem:
        return False
    if _named_form_back(form, doc):
        return True
    wanted = set(form.fields)
    for node in page_forms(doc):
        owned = controls(doc, node)
        names = {c.get("name") for c in owned}
        passwords = {
            c.get("name") for c in owned if (c.get("type") or "").strip().lower() == "password"
        }
        if passwords and (wanted <= names or (passwords & wanted and len(wanted & names) >= 2)):
            return True
    return False


def _named_form_back(form: PlainLoginForm, doc: Any) -> bool:
    """Whether `doc` holds the form `form:` names with an input of a name in `fields:`: a
    login without a password field (an access code, a PIN in a text input) is known by it."""
    if form.form is None:
        return False
    from lxml.cssselect import CSSSelector

    from kpi_collector.collect.forms import controls, page_forms

    forms = page_forms(doc)
    for node in CSSSelector(form.form)(doc):
        if node in forms and any(c.get("name") in form.fields for c in controls(doc, node)):
            return True
    return False


def _check_login(form: PlainLoginForm, filled: FilledForm, result: Response) -> None:
    """Raise LoginError unless the answer to a login looks logged in: `failure:` absent,
    `success:` present, and the login form not back (a form with a password field, or
    what `form:` names)."""
    from kpi_collector.collect.forms import (
        FormProblem,
        control_type,
        controls,
        page_forms,
        page_title,
        parse_html,
    )

    try:
        answer = parse_html(_as_browser_reads(result), result.url)
    except FormProblem:
        answer = parse_html("<html></html>", result.url)
    landed = url_without_query(result.url)
    if form.failure is not None and _matches(answer, form.failure):
        raise LoginError(
            f"login refused: {landed} shows `failure:` {form.failure!r}; {_sent(filled)}",
            transient=False,
        )
    if form.success is not None and _matches(answer, form.success):
        return
    # `type` is read as the standard reads it: `type=PASSWORD` is a password input too
    came_back = _named_form_back(form, answer) or any(
        control_type(field) == "password"
        for node in page_forms(answer)
        for field in controls(answer, node)
    )
    if came_back:
        raise LoginError(
            f"login refused: the login form came back from {landed}; {_sent(filled)}",
            transient=False,
        )
    if form.success is not None:
        title = redact(page_title(answer))
        raise LoginError(
            f"the login went through, but `success:` {form.success!r} matched nothing on "
            f"{landed} ({'title ' + repr(title) if title else 'no title'}); check the selector",
            transient=False,
        )


def _as_browser_reads(response: Response) -> str:
    """The answer's text as a browser decodes it (`Response.html`), for `success:`,
    `failure:` and the login form's return; compressed bytes without their header read as
    UTF-8 (they match nothing either way)."""
    try:
        return response.html()
    except ExtractError:
        return response.text()


def _sent(filled: FilledForm) -> str:
    """Which fields a login sent, by name only, and which of them were empty."""
    names = ", ".join(filled.names) or "nothing"
    text = f"sent {filled.method} with {names}"
    if filled.submitter is None:
        text += " (no submit button)"
    if filled.empty:
        text += f"; left empty: {', '.join(filled.empty)} (give them in `fields:`)"
    else:
        text += "; check the values in `fields:`"
    if filled.missing:
        text += (
            f"; the form has no input named {', '.join(filled.missing)} (did it change? its "
            f"inputs: {', '.join(filled.inputs) or 'none'})"
        )
    return text


def _matches(doc: Any, selector: str) -> bool:
    from lxml.cssselect import CSSSelector

    return bool(CSSSelector(selector)(doc))


def _form_body(filled: FilledForm) -> tuple[Any, dict[str, str]]:
    """The request body for a filled form in its encoding type and charset (what the
    charset cannot hold as `&#NNNN;`, as a browser sends it), and its headers."""
    from urllib.parse import urlencode

    entries, codec = filled.entries, filled.codec
    if filled.enctype == "multipart/form-data":
        import aiohttp

        body = aiohttp.FormData(quote_fields=False, default_to_multipart=True, charset=codec)
        for name, value in entries:
            body.add_field(filled.encode(name).decode(codec), filled.encode(value).decode(codec))
        return body, {}
    if filled.enctype == "text/plain":
        text = b"".join(filled.encode(f"{name}={value}\r\n") for name, value in entries)
        return text, {"Content-Type": f"text/plain;charset={filled.charset}"}
    form = urlencode(entries, encoding=codec, errors="xmlcharrefreplace")
    return form.encode("ascii"), {"Content-Type": "application/x-www-form-urlencoded"}


#: the redirects aiohttp follows
_FOLLOWED = frozenset({301, 302, 303, 307, 308})


def _as_written(follow: bool, sent: str = "") -> aiohttp.ClientMiddlewareType:
    """An aiohttp middleware (it sees every request of a redirect chain) that sends each URL
    with its escapes as written (`wire_url`): the first as given, a redirect's as its
    `Location` says (the sessions take it unrequoted), as a browser follows it. `sent`: the
    URL as `wire_url` already made it for the first request (read again only when it
    changed, by `params`). A `Location` to be `follow`ed that is no URL (a port past
    65535, a host never closed) is an InvalidUrlRedirectClientError naming it, before
    aiohttp reads it unchecked."""
    import aiohttp
    from yarl import URL

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        written = str(request.url)
        if written != sent:
            try:
                wired = wire_url(written)
            except ValueError:
                raise aiohttp.InvalidUrlRedirectClientError(written, "no valid URL") from None
            if wired.raw_path_qs != request.url.raw_path_qs or wired.host != request.url.host:
                request.url = wired
        response = await handler(request)
        location = response.headers.get("Location") if follow else None
        if location and response.status in _FOLLOWED:
            try:
                URL(urljoin(str(response.url), location)).port  # noqa: B018 (validates)
            except ValueError:
                response.release()
                raise aiohttp.InvalidUrlRedirectClientError(location, "no valid URL") from None
        return response

    return middleware


def _query_credentials(url: str) -> dict[str, str]:
    """The query parameters of `url` itself that are credentials: named as one
    (`api_key=`, `token=`, `sig=`...) or holding a value known as secret (a `${VAR}`'s),
    what `redact` masks in `?name=value`. {} for most URLs, whose query holds none, and
    for text that is no URL (aiohttp says why)."""
    if "?" not in url:  # no query: no parse of every page's URL
        return {}
    try:
        query = urlsplit(url).query
    except ValueError:
        return {}
    if not query:
        return {}
    from urllib.parse import parse_qsl

    return {
        name: value
        for name, value in parse_qsl(query)
        if value and redact(f"?{name}={value}") != f"?{name}={value}"
    }


def _same_origin_credentials(
    url: str, headers: Mapping[str, str], params: Mapping[str, str]
) -> aiohttp.ClientMiddlewareType:
    """An aiohttp middleware (it sees every request of a redirect chain) that keeps the
    configured headers (auth included) and query parameters (`params`, and the credentials
    in `url`'s own query, `_query_credentials`) from any origin but `url`'s.

    aiohttp itself drops only `Authorization` on a redirect to another origin; an API key in
    `X-Key`, a `headers:` value or a query parameter the first server copies into its
    `Location` would follow. Same origin: scheme, host and port (RFC 6454 section 4)."""
    from yarl import URL

    origin = URL(url).origin()
    names = {name.lower() for name in headers}
    values = {value for value in params.values() if value}

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if request.url.origin() != origin:
            for name in [n for n in request.headers if n.lower() in names]:
                del request.headers[name]
            kept = [(k, v) for k, v in request.url.query.items() if v not in values]
            if len(kept) != len(request.url.query):
                request.url = request.url.with_query(kept)
        return await handler(request)

    return middleware


@dataclass(slots=True)
class _Reading:
    """How far an answer came: its `status` once its head came (None before), the body
    size its `Content-Length` `declared`, and the `size` of the body read so far (bytes)."""

    status: int | None = None
    declared: int | None = None
    size: int = 0


class _BodyTimeout(TimeoutError):
    """The deadline passed while an answer's body was coming (`reading` says how far)."""

    def __init__(self, reading: _Reading) -> None:
        super().__init__()
        self.reading = reading


async def _read_capped(
    resp: aiohttp.ClientResponse, max_bytes: int, reading: _Reading | None = None
) -> bytes:
    """The body, read as a stream, stopping as soon as it passes `max_bytes`, then its
    `Content-Encoding` undone in bounded steps (`decoding.decode_body`), its output capped
    at `max_bytes` too. `reading.size` follows the bytes read, for a timeout's message.

    Raises: HttpError (terminal) when the body is larger than `max_bytes` or its coding's
    data is not valid; (transient) when that data is cut before its end.
    """
    declared = resp.content_length
    if declared is not None and declared > max_bytes and not resp.headers.get("Content-Encoding"):
        raise _too_large(str(resp.url), max_bytes, declared)
    # the chunks as they arrived (each at most aiohttp's read buffer), joined once at the end
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.readany():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(str(resp.url), max_bytes)
        chunks.append(chunk)
        if reading is not None:
            reading.size = size
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    # two `Content-Encoding` lines are one list, in the order they came (RFC 9110 5.3)
    coding = ", ".join(resp.headers.getall("Content-Encoding", ()))
    if not coding:
        return body
    from kpi_collector.collect.decoding import DecodingError, TooLargeError, decode_body

    try:
        return decode_body(body, coding, max_bytes)
    except TooLargeError:
        raise _too_large(str(resp.url), max_bytes) from None
    except DecodingError as exc:
        said = coding if len(coding) <= 60 else coding[:59] + "…"
        raise HttpError(
            f"the answer from {url_without_query(str(resp.url))} says `Content-Encoding: "
            f"{printable(said)}` but {exc}",
            url=str(resp.url),
            transient=exc.cut,
        ) from None


class _TooLarge(HttpError):
    """An answer past `max_bytes` (as it came, or decoded)."""


def _too_large(url: str, max_bytes: int, declared: int | None = None) -> HttpError:
    from pydantic import ByteSize  # an error's wording only

    size = ByteSize(max_bytes).human_readable()
    said = f" (it says {ByteSize(declared).human_readable()})" if declared is not None else ""
    return _TooLarge(
        f"the answer from {url_without_query(url)} is larger than max_bytes = {size}{said}; "
        "stopped reading it. If the page is really that large, raise `max_bytes` for this source",
        url=url,
        transient=False,
    )


def redirect_error(chain: list[str]) -> HttpError:
    """The error for a request that was redirected too often: a loop when a URL repeats.

    `chain` is every URL asked for, in order, the one the last redirect pointed to included.
    """
    start = url_without_query(chain[0]) if chain else "the URL"
    hops = max(len(chain) - 1, 0)
    seen: set[str] = set()
    for url in chain:
        if url in seen:
            return HttpError(
                f"redirect loop: {start} was redirected {hops} times and came back to "
                f"{shown_url(url)}; the server sends it in a circle, check the URL "
                "(or the login, when the loop goes through a login page)",
                url=chain[0],
                transient=False,
            )
        seen.add(url)
    last = shown_url(chain[-1]) if chain else "?"
    return HttpError(
        f"too many redirects: gave up after {hops} hops from {start} (the last to {last}); "
        "check the URL",
        url=chain[0] if chain else "",
        transient=False,
    )


#: a header's name (RFC 9110 5.1: a token)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: what no header value may hold (RFC 9110 5.5): C0 controls but tab, and DEL
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: the TLS handshake's reasons when the other end answered in plain HTTP (OpenSSL's names)
_PLAIN_HTTP = (
    "WRONG_VERSION_NUMBER",
    "RECORD_LAYER_FAILURE",
    "HTTP_REQUEST",
    "PACKET_LENGTH_TOO_LONG",
)


def _connection_error(url: str, exc: BaseException, timeout: float) -> HttpError:
    import aiohttp

    if isinstance(exc, _BodyTimeout):
        came = exc.reading
        if came.declared is not None:
            much = f"{came.size:,} of the {came.declared:,} bytes its Content-Length announced"
        else:
            much = f"{came.size:,} bytes of its body, not its end,"
        message = (
            f"timed out after {timeout:g}s reading the answer from {url_without_query(url)} "
            f"(HTTP {came.status}): {much} had come"
        )
    elif isinstance(exc, asyncio.TimeoutError):
        message = f"timed out after {timeout:g}s waiting for {url_without_query(url)}"
    elif isinstance(exc, aiohttp.ClientSSLError):
        # the same certificate, the same handshake next time: no retry helps
        return HttpError(_tls_message(url, exc), url=url, transient=False)
    elif isinstance(exc, aiohttp.ClientPayloadError):
        message = f"the answer from {url_without_query(url)} was cut short: {_cut(exc)}"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        # it took the request and hung up (restarting, a proxy's idle cut, a crash); cut in
        # the middle of its head, aiohttp's message is the half-read head's repr
        midway = not isinstance(exc.message, str)
        message = f"{url_without_query(url)} closed the connection " + (
            "in the middle of its answer's headers" if midway else "without answering"
        )
    elif isinstance(exc, aiohttp.ClientConnectorDNSError) and is_unknown_host(exc.os_error):
        # the DNS said the name does not exist: a typo, or a host gone; a retry asks the same
        return unknown_host_error(url, exc.host)
    else:
        message = f"cannot reach {url_without_query(url)}: {redact(str(exc)) or type(exc).__name__}"
    return HttpError(message, url=url, transient=True)


def unknown_host_error(url: str, host: str) -> HttpError:
    """The terminal error for `url` whose `host` (its own, or where it redirects) does not
    exist (`is_unknown_host`)."""
    where = url_without_query(url)
    # a name as aiohttp asks for it (`xn--bcher-kva.example`) or as written (`bücher.example`)
    asked, own = _host_forms(host), _host_forms(urlsplit(url).hostname or "")
    if asked[0] != own[0]:
        return HttpError(
            f"cannot reach {where}: it redirects to {printable(asked[1])}, no such host (the "
            "name does not resolve); check the URL",
            url=url,
            transient=False,
        )
    return HttpError(
        f"cannot reach {where}: no such host {printable(asked[1])} (the name does not "
        "resolve); check the host name in the URL",
        url=url,
        transient=False,
    )


def _host_forms(host: str) -> tuple[str, str]:
    """(the host as DNS is asked for it, in ASCII: `xn--bcher-kva.example`; as a reader
    writes it: `bücher.example`), both in lower case; the host as it is, lowered, twice
    when it is no valid name."""
    from yarl import URL

    try:
        built = URL.build(scheme="http", host=host)
    except ValueError:
        return host.lower(), host.lower()
    return (built.raw_host or host).lower(), (built.host or host).lower()


def is_unknown_host(error: BaseException) -> bool:
    """Whether a failed name lookup says the name does not exist (getaddrinfo's EAI_NONAME or
    EAI_NODATA; c-ares' ENOTFOUND or ENODATA under aiohttp's resolver of aiodns), not that
    it could not be asked now (EAI_AGAIN: no DNS server answered, the network is not up)."""
    import socket

    if isinstance(error, socket.gaierror):
        gone = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
        return error.errno in gone
    cause = error.__cause__
    # aiodns.error.DNSError(code, text); c-ares: ARES_ENODATA = 1, ARES_ENOTFOUND = 4
    codes: tuple[Any, ...] = cause.args if type(cause).__name__ == "DNSError" and cause else ()
    return bool(codes) and codes[0] in (1, 4)


_RECEIVED = re.compile(r"received (\d+) of (\d+) bytes")


def _cut(exc: aiohttp.ClientPayloadError) -> str:
    """How a body ended before its end, from aiohttp's payload error: the bytes that came
    of those `Content-Length` announced, or a chunked body without its last chunk."""
    said = str(getattr(exc.__cause__, "message", "") or exc)
    found = _RECEIVED.search(said)
    if found is not None:
        came, announced = int(found[1]), int(found[2])
        return (
            f"{came:,} of the {announced:,} bytes its Content-Length announced came before "
            "the connection closed"
        )
    if "transfer length" in said:
        return "the connection closed before its last chunk"
    return printable(redact(said))[:200]


def _tls_message(url: str, exc: aiohttp.ClientSSLError) -> str:
    """What a failed TLS handshake means for the user: a certificate this machine does not
    trust (why, as OpenSSL says it, and the two ways out), or a port that does not speak
    TLS at all (an https URL for an http server)."""
    import aiohttp

    where = f"cannot reach {url_without_query(url)}"
    host = f"{exc.host}:{exc.port}" if exc.port is not None else exc.host
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        why = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or str(cert)
        return (
            f"{where}: the TLS certificate of {host} is not valid ({printable(str(why)).rstrip('.')}); "
            "fix the server's certificate, or trust the CA that signed it with "
            "SSL_CERT_FILE=/path/to/ca.pem"
        )
    reason = str(getattr(exc.os_error, "reason", None) or "")
    if reason in _PLAIN_HTTP:
        said = reason.lower().replace("_", " ")
        parts = urlsplit(url)
        asked = (_host_forms(parts.hostname or "")[0], parts.port or 443)
        if parts.scheme != "https" or asked != (_host_forms(exc.host)[0], exc.port):
            # not the URL's own: an http URL (or another host) redirected to https there
            return (
                f"{where}: it redirects to https://{host}, which does not answer in TLS "
                f"({said}); the server's redirect is wrong, or set the URL to the page meant"
            )
        return f"{where}: {host} does not answer in TLS ({said}); is the URL http://, not https://?"
    said = reason.lower().replace("_", " ") if reason else printable(str(exc.os_error))
    return f"{where}: the TLS handshake with {host} failed ({said})"


def _unfollowed_error(response: Response) -> HttpError:
    """The terminal error for a 3xx answer the redirects left as it is: a 304 to a request
    that asked for no cached copy, a redirect without a `Location`, or one to a status no
    client follows (300, 305, ...)."""
    status, where = response.status, url_without_query(response.url)
    location = response.headers.get("Location", "").strip()
    if status == 304:
        message = (
            f"HTTP 304 (not modified) from {where}, though the request asked for no cached "
            "copy: the server, or a cache in front of it, answers wrongly"
        )
    elif not location:
        message = (
            f"HTTP {status} from {where}: a redirect without a `Location` to follow; the "
            "server's answer is incomplete, check the URL"
        )
    else:
        target = shown_url(urljoin(response.url, location))
        message = (
            f"HTTP {status} from {where}: a redirect to {target}, which is not followed "
            "(only 301, 302, 303, 307 and 308 are); set the URL to the page meant"
        )
    return HttpError(message, status=status, url=response.url, transient=False)


def _status_error(
    response: Response, *, credentials: bool = True, left_behind: str | None = None
) -> HttpError:
    """The HttpError for a 4xx or 5xx `response`. `left_behind`: the URL asked for, when the
    request had configured credentials, which a redirect to another origin leaves behind
    (`_same_origin_credentials`): a 401 or 403 there says so, not "wrong credentials"."""
    from yarl import URL

    status = response.status
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    hints = _STATUS_HINTS if credentials else _HINTS_WITHOUT_CREDENTIALS
    hint = hints.get(status, "server error" if status >= 500 else "request refused")
    # 999 and the like: no server error, and the same refusal comes back on a retry
    defined = status < 600
    if not defined:
        hint = UNDEFINED_STATUS
    if (
        status in (401, 403)
        and left_behind is not None
        and URL(left_behind).origin() != URL(response.url).origin()
    ):
        hint = (
            f"{'unauthorized' if status == 401 else 'forbidden'}, after a redirect from "
            f"{url_without_query(left_behind)} to another origin, where the configured "
            "credentials are not sent; if they are meant for it, set the URL to "
            f"{url_without_query(response.url)}"
        )
    message = f"HTTP {status} from {url_without_query(response.url)}: {hint}"
    if retry_after is not None and (status == 429 or status >= 500):
        message += f" (retry after {wait_text(retry_after)})"
    # an HTML error page by what it says (a CDN's block page is kilobytes of styles first)
    body = _page_text(response)
    if body:
        message += f" — {body}"
    return HttpError(
        message,
        status=status,
        url=response.url,
        retry_after=retry_after,
        transient=None if defined else False,
    )
