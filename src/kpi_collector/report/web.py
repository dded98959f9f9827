"""`kpi serve`: the dashboard, a small Starlette app over the history store.

Pages: `/` (overview), `/kpi/{id}`, `/runs`; JSON: `/api/kpis`, `/api/kpis/{id}/series`,
`/api/runs`, `/api/annotations` (GET; POST with an access token: a note from the KPI page);
CSV: `/api/kpis.csv`, `/api/kpis/{id}/series.csv`; `/metrics` (Prometheus). Every response carries a Content-Security-Policy that
allows nothing but this server, so no request leaves the machine. With an access token, every
request must carry it (`Authorization: Bearer`, the `kpi_token` cookie, or `?token=` once,
which sets the cookie); without one, only loopback Host headers are answered (DNS rebinding).
"""

from __future__ import annotations

import csv
import hmac
import io
import ipaddress
import json
import logging
import math
from collections.abc import Callable, MutableMapping
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes, urlencode

from kpi_collector.format import spreadsheet_text
from kpi_collector.report import pages
from kpi_collector.report.data import DashboardData, OverviewDoc, SeriesDoc, shift_periods
from kpi_collector.report.metrics import CONTENT_TYPE, metrics_text
from kpi_collector.store.periods import PERIODS

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Receive, Scope, Send

    from kpi_collector.config import Config

log = logging.getLogger(__name__)
COOKIE = "kpi_token"
#: the largest body of `POST /api/annotations`, in bytes: a note is at most 200 characters
#: (store.annotations.MAX_TEXT), up to 12 bytes each as JSON escapes, with room to spare
MAX_NOTE_BODY = 16_384
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
SECURITY_HEADERS = [
    (b"content-security-policy", pages.CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


#: (request path, the exception) -> (content type, body) of the 500 answer that says why
Failure = Callable[[str, Exception], tuple[str, bytes]]


class Guard:
    """Security headers on every response; the access token or a loopback Host on every request;
    a request that fails before its answer started gets a 500 that says why (`failure`)."""

    def __init__(self, app: ASGIApp, *, token: str | None, failure: Failure | None = None) -> None:
        self.app = app
        self.token = usable_token(token)
        self.failure = failure or _failure_text

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        set_cookie: str | None = None
        if self.token is None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host and not is_loopback(name):
                await self._deny(
                    send,
                    421,
                    "This dashboard answers only on localhost. To serve it under another name "
                    "(behind a reverse proxy, say), start it with an access token: "
                    "kpi serve --token ... or KPI_DASHBOARD_TOKEN.",
                )
                return
        else:
            given = _presented(scope)
            if given is None or not hmac.compare_digest(given, self.token.encode()):
                await self._deny(
                    send, 401, "An access token is required (Authorization: Bearer …)."
                )
                return
            if _query_token(scope) is not None:
                # percent-encoded: a cookie value cannot hold `;`, `,`, spaces or non-ASCII
                value = quote(self.token, safe="")
                set_cookie = f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"

        started = False

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = list(SECURITY_HEADERS)
                if set_cookie is not None:
                    extra.append((b"set-cookie", set_cookie.encode("latin-1")))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:  # part of the answer is out: nothing to say it in
                raise
            path = scope.get("path", "")
            log.error("%s %s failed: %s", scope.get("method", "GET"), path, failure_reason(exc))
            media, body = self.failure(path, exc)
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", media.encode()),
                        (b"content-length", str(len(body)).encode()),
                        (b"cache-control", b"no-store"),
                        *SECURITY_HEADERS,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

    async def _deny(self, send: Send, status: int, text: str) -> None:
        body = text.encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="kpi"'))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, *SECURITY_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": body})


def failure_reason(exc: Exception) -> str:
    """Why a request failed, in one redacted line: "the store cannot be read: database is
    locked" for the database's own error, else the exception's type and first line."""
    from kpi_collector.secrets import redact

    orig = getattr(exc, "orig", None)
    text = str(orig or exc).strip().splitlines()
    first = redact(text[0]) if text else type(exc).__name__
    from sqlalchemy.exc import SQLAlchemyError

    from kpi_collector.errors import StoreError

    if isinstance(exc, StoreError | SQLAlchemyError):
        return f"the store cannot be read: {first} (kpi validate checks the store: setting)"
    return f"the dashboard failed on this request: {type(exc).__name__}: {first}"


def _failure_text(path: str, exc: Exception) -> tuple[str, bytes]:
    return "text/plain; charset=utf-8", failure_reason(exc).encode()


def usable_token(token: str | None) -> str | None:
    """`token` without surrounding whitespace (a line break read with it from a file: the
    `Authorization` header is trimmed the same way), or None for a blank one: an empty or
    whitespace-only token (an empty KPI_DASHBOARD_TOKEN) would let a request with an empty
    `Authorization: Bearer ` in, so it counts as no token at all (loopback only)."""
    return token.strip() if token and token.strip() else None


def _query_token(scope: Scope) -> bytes | None:
    """The `?token=` value as a browser sends a typed link: percent-escapes undone, a `+`
    kept as a `+` (base64 tokens have them; form encoding's space does not apply here)."""
    for part in scope.get("query_string", b"").split(b"&"):
        name, equals, value = part.partition(b"=")
        if name == b"token" and equals and value:  # an empty `?token=` presents nothing
            return unquote_to_bytes(value)
    return None


def _presented(scope: Scope) -> bytes | None:
    """The token a request presents, as bytes (a token is compared as its UTF-8 bytes):
    `Authorization: Bearer` (the header's bytes as sent), else `?token=` (a link, which then
    replaces the cookie: an old token's cookie must not shut out a new token's link), else
    the `kpi_token` cookie (which holds it percent-encoded)."""
    cookie = b""
    for key, value in scope["headers"]:
        if key == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
        if key == b"cookie":
            cookie = value
    link = _query_token(scope)
    if link is not None:
        return link
    for part in cookie.split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == COOKIE.encode() and value:
            return unquote_to_bytes(value)
    return None


def create_app(
    config: Config, *, token: str | None = None, data: DashboardData | None = None
) -> Starlette:
    """The dashboard app for a loaded config (`token`: require it on every request)."""
    from importlib import resources

    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import (
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        Response,
    )
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    source = data or DashboardData(config)
    token = usable_token(token)

    def period_of(request: Request, default: str = "day") -> str:
        period = request.query_params.get("period", default)
        if period not in PERIODS:
            raise HTTPException(400, f"period must be one of {', '.join(PERIODS)}")
        return period

    def since_of(request: Request) -> date | None:
        text = request.query_params.get("since")
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise HTTPException(400, "since must be a date like 2026-01-31") from None

    def known(kpi: str) -> None:
        if kpi in config.kpis or kpi in config.kpi_ids():
            return
        if not source.store.latest([kpi]):
            raise HTTPException(404, f"no KPI {kpi!r}")

    def encode(doc: Any) -> bytes:
        return pages.to_json(doc).encode()

    def dumps(doc: Any) -> Response:
        return json_response(encode(doc))

    def json_response(body: bytes) -> Response:
        return Response(body, media_type="application/json", headers={"cache-control": "no-store"})

    def overview_doc(period: str) -> OverviewDoc:
        return source.cached(("overview", period), lambda: source.overview(period))

    def series_doc(kpi: str, period: str, since: date | None) -> SeriesDoc:
        return source.cached(
            ("series", kpi, period, since), lambda: source.series(kpi, period, since)
        )

    def range_since(period: str, key: str) -> date | None:
        spans = dict(pages.RANGES[period])
        if key not in spans:
            raise HTTPException(400, f"range must be one of {', '.join(spans)}")
        count = spans[key]
        if count is None:
            return None
        return shift_periods(_today(source), period, count - 1)

    def overview(request: Request) -> Response:
        period = period_of(request)
        body = source.cached(
            ("overview.html", period), lambda: pages.overview_page(overview_doc(period))
        )
        return HTMLResponse(body, headers={"cache-control": "no-store"})

    def kpi_page(request: Request) -> Response:
        kpi = request.path_params["kpi"]
        known(kpi)
        period = period_of(request)
        key = request.query_params.get("range", pages.DEFAULT_RANGE[period])
        doc = series_doc(kpi, period, range_since(period, key))
        head = source.cached(("tile", kpi, period), lambda: source.overview(period, only=[kpi]))
        tile = head["kpis"][0] if head["kpis"] else None
        today = _today(source).isoformat() if token else None
        body = pages.kpi_page(
            doc,
            tile,
            key,
            brand=config.title,
            annotate_today=today,
            marks=pages.note_marks(head),
        )
        return HTMLResponse(body, headers={"cache-control": "no-store"})

    def runs_page(request: Request) -> Response:
        return HTMLResponse(
            pages.runs_page(source.runs(_limit(request)), brand=config.title),
            headers={"cache-control": "no-store"},
        )

    def api_kpis(request: Request) -> Response:
        period = period_of(request)
        return json_response(
            source.cached(("overview.json", period), lambda: encode(overview_doc(period)))
        )

    def api_kpis_csv(request: Request) -> Response:
        period = period_of(request)
        text = source.cached(("overview.csv", period), lambda: overview_csv(overview_doc(period)))
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="kpis-{period}.csv"',
                "cache-control": "no-store",
            },
        )

    def window(request: Request, period: str) -> date | None:
        """`since`, or `range` (30d, 1y, all, ... as on the KPI page) counted back from today."""
        since = since_of(request)
        key = request.query_params.get("range")
        return since if since is not None or key is None else range_since(period, key)

    def api_series(request: Request) -> Response:
        kpi = request.path_params["kpi"]
        known(kpi)
        period = period_of(request)
        since = window(request, period)
        key = ("series.json", kpi, period, since)
        return json_response(source.cached(key, lambda: encode(series_doc(kpi, period, since))))

    def api_series_csv(request: Request) -> Response:
        kpi = request.path_params["kpi"]
        known(kpi)
        period = period_of(request)
        doc = series_doc(kpi, period, window(request, period))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["period", "kpi", "value"])
        for point in doc["points"]:
            writer.writerow([point["period"], spreadsheet_text(kpi), _cell(point["value"])])
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": attachment(f"{kpi}-{period}.csv"),
                "cache-control": "no-store",
            },
        )

    def api_annotations(request: Request) -> Response:
        return dumps(source.notes(since_of(request)))

    async def add_annotation(request: Request) -> Response:
        """A note from the KPI page's form: only with an access token (the Guard has checked
        it), only JSON (a cross-site form cannot send it), only from this origin."""
        if token is None:
            raise HTTPException(
                403,
                "notes are written from the dashboard only when it has an access token; "
                "use kpi annotate",
            )
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, "a note must come from this dashboard's own pages")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, 'send the note as JSON: {"text": ..., "day": ...}')
        try:
            body = json.loads(await _bounded_body(request, MAX_NOTE_BODY))
        except ValueError:
            raise HTTPException(400, "the body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise HTTPException(400, 'send {"text": "v1.0 released", "day": "2026-11-20"}')
        day = _today(source)
        if body.get("day"):
            try:
                day = date.fromisoformat(str(body["day"]))
            except ValueError:
                raise HTTPException(400, "day must be a date like 2026-01-31") from None
        from kpi_collector.errors import ConfigError
        from kpi_collector.store.annotations import add_annotation as store_note

        try:
            note = store_note(source.writable_store, body["text"], day)
        except ConfigError as exc:
            raise HTTPException(400, str(exc)) from None
        doc = {"id": note.id, "day": note.day.isoformat(), "text": note.text}
        return Response(encode(doc), status_code=201, media_type="application/json")

    def api_runs(request: Request) -> Response:
        return dumps(source.runs(_limit(request)))

    def metrics(request: Request) -> Response:
        text = source.cached(("metrics",), lambda: metrics_text(source))
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    def health(request: Request) -> Response:
        return dumps({"ok": True})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return HTMLResponse(
            pages.message_page(f"{exc.status_code}", str(exc.detail), brand=config.title),
            status_code=exc.status_code,
        )

    def strip_token(request: Request) -> Response | None:
        """A page opened with `?token=`: the same address without it (the cookie is set). The
        path as the browser sent it: decoded, a KPI id's `%41` or `%3F` would change it."""
        if "token" in request.query_params:
            rest = {k: v for k, v in request.query_params.items() if k != "token"}
            raw: bytes = request.scope.get("raw_path") or b""
            own = raw.startswith(b"/") and not raw.startswith(b"//")  # never elsewhere
            path = raw.decode("latin-1") if own else quote(request.url.path)
            url = path + (f"?{urlencode(rest)}" if rest else "")
            return Response(status_code=303, headers={"location": url})
        return None

    def page(handler: Any) -> Any:
        def wrapped(request: Request) -> Response:
            return strip_token(request) or handler(request)

        return wrapped

    # `{kpi:path}`: a KPI id may hold a `/` (a metric `downloads/day`), which the links send
    # as %2F and the server hands over decoded
    static = StaticFiles(directory=str(resources.files("kpi_collector.report").joinpath("static")))
    routes = [
        Route("/", page(overview)),
        Route("/kpi/{kpi:path}", page(kpi_page)),
        Route("/runs", page(runs_page)),
        Route("/api/kpis", api_kpis),
        Route("/api/kpis.csv", api_kpis_csv),
        Route("/api/kpis/{kpi:path}/series", api_series),
        Route("/api/kpis/{kpi:path}/series.csv", api_series_csv),
        Route("/api/runs", api_runs),
        Route("/api/annotations", api_annotations, methods=["GET"]),
        Route("/api/annotations", add_annotation, methods=["POST"]),
        Route("/metrics", metrics),
        Route("/healthz", health),
        Mount("/static", static, name="static"),
    ]

    def failure(path: str, exc: Exception) -> tuple[str, bytes]:
        """The 500 answer: JSON under /api/, else a page in the dashboard's look."""
        reason = failure_reason(exc)
        if path.startswith("/api/"):
            return "application/json", encode({"error": reason})
        return "text/html; charset=utf-8", pages.message_page(
            "500", reason, brand=config.title
        ).encode()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, failure=failure)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.data = source
    return app


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The request's body, read up to `limit` bytes: HTTPException 413 past it (by its
    Content-Length, or counted as it comes when it has none), so that one request cannot fill
    the dashboard's memory."""
    from starlette.exceptions import HTTPException

    too_large = HTTPException(
        413, f"the request is larger than {limit:,} bytes: a note is one line of text"
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


#: the columns of `/api/kpis.csv`, one row per KPI in display order (empty: no value)
OVERVIEW_COLUMNS = (
    "kpi",
    "title",
    "unit",
    "period",
    "value",
    "previous_period",
    "previous",
    "previous_until",
    "change",
    "change_pct",
    "target",
    "status",
    "updated_at",
)


def overview_csv(doc: OverviewDoc) -> str:
    """The overview as CSV: `OVERVIEW_COLUMNS`, numbers as Python writes floats (exact), texts
    through `format.spreadsheet_text` (never a formula in a spreadsheet)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(OVERVIEW_COLUMNS)
    for tile in doc["kpis"]:
        row = {
            **tile,
            "kpi": tile["id"],
            "period": tile["period"],
        }
        writer.writerow(["" if row.get(c) is None else _cell(row.get(c)) for c in OVERVIEW_COLUMNS])
    return out.getvalue()


def attachment(filename: str) -> str:
    """A Content-Disposition for a download named `filename` (any characters): an ASCII
    `filename` for old clients and the exact name as `filename*` (RFC 6266, UTF-8); a header
    holds Latin-1 only, so `web.中文-day.csv` as it is would fail the response."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _cell(value: Any) -> str:
    """A CSV cell: a float as Python writes it (exact), empty where it is no finite number (a
    sum past the largest double: null in the JSON), a text through `spreadsheet_text`."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return spreadsheet_text(str(value))


def _today(data: DashboardData) -> date:
    from datetime import datetime

    return datetime.fromtimestamp(data.clock(), data.zone).date()


def _limit(request: Request) -> int:
    from starlette.exceptions import HTTPException

    try:
        limit = int(request.query_params.get("limit", "50"))
    except ValueError:
        raise HTTPException(400, "limit must be a number") from None
    return max(1, min(limit, 1000))


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without an access token (ConfigError names the fix)."""
    from kpi_collector.errors import ConfigError

    if not is_loopback(host) and not usable_token(token):
        raise ConfigError(
            f"--host {host} would expose the dashboard beyond this machine; set an access token "
            "with --token or KPI_DASHBOARD_TOKEN (or bind 127.0.0.1)"
        )


__all__ = ["check_bind", "create_app", "is_loopback"]


class ServerThread:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread: `with ServerThread(app) as url:`."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: Any = None

    def __enter__(self) -> str:
        import threading
        import time

        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()
