"""The one HTTP layer every source uses: a shared connection pool with global and per-host
limits, auth, retries with backoff for transient failures, redirects, cookies and login forms.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from kpi_collector._version import __version__
from kpi_collector.collect.retry import BACKOFF, retrying
from kpi_collector.errors import ExtractError, HttpError, LoginError
from kpi_collector.secrets import Secret, redact, reveal

if TYPE_CHECKING:
    import aiohttp

    from kpi_collector.collect.forms import FilledForm

USER_AGENT = f"kpi-collector/{__version__} (+KPI collection bot; python-aiohttp)"
_BODY_SNIPPET = 200


class Auth(BaseModel):
    """How a source proves who it is; exactly one of the four ways (else a ValueError, which
    config loading turns into a ConfigError):

    - `bearer`: a token sent as `Authorization: Bearer <token>` (RFC 6750);
    - `basic`: (user, password) sent as `Authorization: Basic ...` (RFC 7617);
    - `header`: headers to send as they are, e.g. {"X-Api-Key": "${KEY}"};
    - `query`: query parameters to add to every URL, e.g. {"api_key": "${KEY}"}.

    Values are Secrets (`${ENV}` references), never shown in errors or output.
    """

    model_config = ConfigDict(extra="forbid")
    bearer: Secret | None = None
    basic: tuple[str | Secret, Secret] | None = None  # (user, password); a secret user too
    header: dict[str, Secret] | None = None
    query: dict[str, Secret] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Auth:
        given = [k for k in ("bearer", "basic", "header", "query") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of bearer, basic, header, query")
        return self

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
        elif self.query is not None:
            params.update({k: v.get() for k, v in self.query.items()})


class LoginForm(BaseModel):
    """A login form to fill before reading a page: the page at `url` holds the form, `fields`
    are the inputs to fill by name (secrets allowed, e.g. {"username": "me", "password":
    "${PASS}"}); the form's other inputs (hidden CSRF tokens) are posted as the page gave
    them. The optional CSS checks tell success from failure (see `HttpSession.login`)."""

    model_config = ConfigDict(extra="forbid")
    url: str
    fields: dict[str, Secret]
    form: str | None = None  # CSS selector of the form; default: the one with a password input
    submit: str | None = None  # the submit button to press (name, label or CSS); default: the first
    submit_url: str | None = None  # where to send it, when the form's action is not right
    success: str | None = None  # CSS selector that is present only when logged in
    failure: str | None = None  # CSS selector that is present only when the login failed

    @field_validator("form", "success", "failure")
    @classmethod
    def _css(cls, value: str | None) -> str | None:
        if value is not None:
            from lxml.cssselect import CSSSelector

            try:
                CSSSelector(value)
            except Exception as exc:  # SelectorSyntaxError, ExpressionError (unsupported)
                raise ValueError(f"{value!r} is not a CSS selector: {exc}") from None
        return value


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

    def json(self) -> Any:
        """The body parsed as JSON; ExtractError (terminal, naming the URL without its query
        and the start of the body) when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ExtractError(
                f"the answer from {url_without_query(self.url)} is not valid JSON ({exc}): {_snippet(self.body)}"
            ) from None

    @property
    def links(self) -> dict[str, str]:
        """The `Link` header as {rel: url} (GitHub-style pagination)."""
        out: dict[str, str] = {}
        for part in self.headers.get("Link", "").split(","):
            if ";" not in part:
                continue
            url, *params = part.split(";")
            for param in params:
                key, _, value = param.strip().partition("=")
                if key == "rel":
                    out[value.strip('"')] = url.strip().strip("<>")
        return out


def is_http_url(url: str) -> bool:
    """Whether `url` is an http(s) URL with a host (what every HTTP source and destination takes)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def url_without_query(url: str) -> str:
    """The URL without its query string and fragment (where credentials may hide)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _snippet(body: bytes) -> str:
    text = " ".join(body[:_BODY_SNIPPET].decode("utf-8", errors="replace").split())
    return redact(text) + ("…" if len(body) > _BODY_SNIPPET else "")


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Parse `Retry-After` (seconds or an HTTP date) into seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


_STATUS_HINTS = {
    401: "unauthorized: the credentials are missing or wrong",
    403: "forbidden: the credentials do not allow this",
    404: "not found: check the URL or the name in the config",
    407: "proxy authentication required",
    429: "rate limited",
}
#: the same, for a request without `auth:` or a login: no credentials to blame
_HINTS_WITHOUT_CREDENTIALS = {**_STATUS_HINTS, 403: "forbidden"}


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
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    def session(
        self,
        *,
        timeout: float = 20.0,
        retries: int = 2,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: bool = False,
    ) -> HttpSession:
        """A view of the pool for one source: its timeout, retries, auth and, if asked, cookies."""
        return HttpSession(
            self,
            timeout=timeout,
            retries=retries,
            auth=auth,
            headers=dict(headers or {}),
            cookies=cookies,
        )

    async def close(self) -> None:
        """Close the pool and its connections; the next request opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._connector = None


class HttpSession:
    """Requests for one source. Transient failures are retried; terminal ones raise at once."""

    def __init__(
        self,
        client: HttpClient,
        *,
        timeout: float,
        retries: int,
        auth: Auth | None,
        headers: dict[str, str],
        cookies: bool,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.retries = retries
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
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                headers={"User-Agent": USER_AGENT},
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
    ) -> Response:
        """Send a request, retrying transient failures; raise HttpError for a non-success.

        `params` are added to the query string (values turned into strings), `headers` to
        the session's; `json_body` is sent as JSON, `data` as a form or raw body. Each attempt
        has the session's `timeout` in seconds. A status below 400 returns; `ok` lists more
        statuses the caller handles itself (they return, not raise). Connection errors,
        timeouts, 5xx and 429 are transient: retried `retries` times (after the
        `Retry-After` of the answer; one longer than `collect.retry`'s limit raises at once),
        then raised as HttpError with `transient=True`; other 4xx raise at
        once (terminal). Messages name the URL without its query string.
        """
        import aiohttp

        all_headers = {**self.headers, **(headers or {})}
        all_params = {k: str(v) for k, v in (params or {}).items()}
        if self.auth is not None:
            self.auth.apply(all_headers, all_params)

        async def attempt() -> Response:
            try:
                response = await self._once(method, url, all_params, all_headers, json_body, data)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise _connection_error(url, exc, self.timeout) from None
            if response.status < 400 or response.status in ok:
                return response
            raise _status_error(response, credentials=self.auth is not None or self._cookies)

        return await retrying(attempt, retries=self.retries, backoff=self.client.backoff)

    async def _once(
        self,
        method: str,
        url: str,
        params: dict[str, str],
        headers: dict[str, str],
        json_body: Any,
        data: Any,
    ) -> Response:
        import aiohttp

        session = self._aiohttp()
        async with session.request(
            method,
            url,
            params=params or None,
            headers=headers or None,
            json=json_body,
            data=data,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        ) as resp:
            body = await resp.read()
            return Response(resp.status, str(resp.url), resp.headers, body)

    async def get(self, url: str, **kwargs: Any) -> Response:
        """`request("GET", url, ...)`: same keywords, same errors."""
        return await self.request("GET", url, **kwargs)

    async def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET `url` and parse the answer as JSON: HttpError as `request`, ExtractError
        when the body is not JSON."""
        return (await self.request("GET", url, **kwargs)).json()

    async def login(self, form: LoginForm) -> Response:
        """Fill and send a login form as a browser does (see `collect.forms`), keeping the
        session's cookies; LoginError when it is refused, saying how it was refused."""
        from kpi_collector.collect.forms import FormProblem, fill, find_form, parse_html

        page = await self.get(form.url)
        where = url_without_query(page.url)
        try:
            doc = parse_html(page.text(), page.url)
            node = find_form(doc, form.form)
            filled = fill(
                doc,
                node,
                page_url=page.url,
                fields={key: reveal(value) or "" for key, value in form.fields.items()},
                submit=form.submit,
                action=urljoin(page.url, form.submit_url) if form.submit_url else None,
            )
        except FormProblem as exc:
            raise LoginError(f"login: {exc} on {where}", transient=False) from None
        target = url_without_query(filled.url)
        try:
            if filled.method == "GET":
                result = await self.request("GET", filled.url)
            else:
                body, headers = _form_body(filled.entries, filled.enctype)
                result = await self.request("POST", filled.url, data=body, headers=headers)
        except HttpError as exc:
            if exc.status in (400, 401, 403, 422):
                raise LoginError(
                    f"login refused by {target} (HTTP {exc.status}); {_sent(filled)}",
                    transient=False,
                ) from None
            raise
        _check_login(form, filled, result)
        return result


def _check_login(form: LoginForm, filled: FilledForm, result: Response) -> None:
    """Raise LoginError unless the answer to a login looks logged in: `failure:` absent,
    `success:` present, and the login form not back (a form with a password field, or
    what `form:` names)."""
    from kpi_collector.collect.forms import FormProblem, page_title, parse_html

    try:
        answer = parse_html(result.text(), result.url)
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
    came_back = _matches(answer, "form input[type=password]")
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
    return text


def _matches(doc: Any, selector: str) -> bool:
    from lxml.cssselect import CSSSelector

    return bool(CSSSelector(selector)(doc))


def _form_body(entries: list[tuple[str, str]], enctype: str) -> tuple[Any, dict[str, str]]:
    """The request body for `entries` in the form's encoding type, and its headers."""
    if enctype == "multipart/form-data":
        import aiohttp

        body = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
        for name, value in entries:
            body.add_field(name, value)
        return body, {}
    if enctype == "text/plain":
        text = "".join(f"{name}={value}\r\n" for name, value in entries)
        return text.encode(), {"Content-Type": "text/plain;charset=UTF-8"}
    return entries, {}


def _connection_error(url: str, exc: BaseException, timeout: float) -> HttpError:
    import asyncio

    if isinstance(exc, asyncio.TimeoutError):
        message = f"timed out after {timeout:g}s waiting for {url_without_query(url)}"
    else:
        message = f"cannot reach {url_without_query(url)}: {redact(str(exc)) or type(exc).__name__}"
    return HttpError(message, url=url, transient=True)


def _status_error(response: Response, *, credentials: bool = True) -> HttpError:
    status = response.status
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    hints = _STATUS_HINTS if credentials else _HINTS_WITHOUT_CREDENTIALS
    hint = hints.get(status, "server error" if status >= 500 else "request refused")
    message = f"HTTP {status} from {url_without_query(response.url)}: {hint}"
    if status == 429 and retry_after is not None:
        message += f" (retry after {retry_after:.0f}s)"
    body = _snippet(response.body)
    if body:
        message += f" — {body}"
    return HttpError(message, status=status, url=response.url, retry_after=retry_after)
