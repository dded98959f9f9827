"""What HTTP destinations share: one request through the run's HTTP layer, and its failures
turned into a `DeliveryError` that names the service (never the secret URL), says whether a
retry can help and how to fix it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

from kpi_collector.collect import jsontext
from kpi_collector.destinations.base import delivery_error
from kpi_collector.errors import DeliveryError, HttpError
from kpi_collector.secrets import redact

if TYPE_CHECKING:
    from kpi_collector.collect.http import Auth, HttpSession, Response

#: every status comes back to the caller, which knows what the service means by it
ANY_STATUS = tuple(range(300, 600))
_HINTS = {
    400: "the service refused the request",
    401: "unauthorized: check the token",
    403: "forbidden: check the token and its permissions",
    404: "not found: check the URL or id in the config",
    410: "gone: the target was deleted or archived",
    413: "the message is too large",
    429: "rate limited",
}


class Sender(Protocol):
    """Where a request goes out from: a `Delivery` (the run's pool) or, for a message sent
    outside a delivery (an alert), an `Outbox` (`destinations._text`)."""

    def http(self, *, timeout: float = ..., auth: Auth | None = ...) -> HttpSession: ...


def origin(url: str) -> str:
    """scheme://host[:port] — the part of a URL that is safe to show."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


#: redirects that keep the method and the body (RFC 9110 §15.4.8, §15.4.9); a 301 sends a
#: POST on as a GET without its body
KEEPS_BODY = (307, 308)
#: redirects after a request was taken, to the page with its result (Post/Redirect/Get)
SEE_OTHER = (302, 303)
MAX_REDIRECTS = 5


async def send(
    via: Sender,
    method: str,
    url: str,
    *,
    service: str,
    timeout: float,
    json_body: Any = None,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    auth: Auth | None = None,
) -> Response:
    """One request; any HTTP status returns, a connection failure raises a transient error
    whose `maybe_sent` is True (a timeout or a dropped connection may come after the service
    took the request: see `maybe_sent`).

    A GET follows redirects. A request with a body: a 302 or 303 after it is Post/Redirect/Get
    (the receiver took it, a Google Apps Script web app answers so): the page it points to is
    the answer, fetched with a GET without the credentials and headers. A 307 or 308 is
    followed with the body on its own host (http may become https). A 301 (moved for good:
    not taken; followed, the body would be dropped and a receiver may take the GET as an
    empty delivery) and a 307/308 to another host (which would get the body's signature and
    the configured headers) raise a terminal error naming where the redirect points (its
    origin: the path may hold a secret)."""
    session = via.http(timeout=timeout, auth=auth)
    reads = method in ("GET", "HEAD")
    target = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response = await session.request(
                method,
                target,
                json_body=json_body,
                data=data,
                headers=dict(headers or {}),
                ok=ANY_STATUS,
                follow_redirects=reads,
            )
        except HttpError as exc:
            error = delivery_error(
                f"cannot reach {service} at {origin(url)}: {_scrub(str(exc), target)}",
                transient=True,
            )
            error.maybe_sent = True  # type: ignore[attr-defined]
            raise error from None
        location = response.headers.get("Location")
        if reads or not 300 <= response.status < 400 or not location:
            return response
        moved = urljoin(target, location)
        if response.status in SEE_OTHER:
            return await _result_page(session, moved, service=service, url=url)
        problem = _unfollowed(response.status, method, target, moved)
        if problem:
            raise delivery_error(
                f"{service} at {origin(url)} answered HTTP {response.status}, a redirect to "
                f"{origin(moved)}: {problem}, so nothing was delivered; put the URL it "
                "redirects to in the config",
                transient=False,
            )
        target = moved
    raise delivery_error(
        f"{service} at {origin(url)} redirected more than {MAX_REDIRECTS} times; put the URL "
        "it ends at in the config",
        transient=False,
    )


async def _result_page(session: HttpSession, page: str, *, service: str, url: str) -> Response:
    """The page a Post/Redirect/Get receiver points to after taking a request, read with a GET
    that carries none of the request's credentials or headers."""
    try:
        return await session.request(
            "GET", page, ok=ANY_STATUS, credentials=False, follow_redirects=True
        )
    except HttpError as exc:
        raise delivery_error(
            f"{service} at {origin(url)} took the request and pointed to {origin(page)}, which "
            f"did not answer: {_scrub(str(exc), page)}",
            transient=True,
        ) from None


def _unfollowed(status: int, method: str, url: str, moved: str) -> str | None:
    """Why a request with a body must not follow this redirect, or None when it may."""
    if status not in KEEPS_BODY:
        return f"followed, the {method} would arrive as a GET without its body"
    before, after = urlsplit(url), urlsplit(moved)
    upgrade = (before.scheme, after.scheme) in (
        ("http", "http"),
        ("http", "https"),
        ("https", "https"),
    )
    if not upgrade or before.hostname != after.hostname:
        return "another host (or a downgrade to http), which would get the body and its headers"
    return None


def maybe_sent(error: BaseException) -> bool:
    """Whether the request that failed with `error` may have been carried out all the same: no
    answer came (a timeout, a dropped connection: `send`), or a 5xx that a proxy may give
    after the service took it (`status_error`). A message sent again after such a failure
    may be a duplicate."""
    return bool(getattr(error, "maybe_sent", False))


#: statuses that refuse the request itself (RFC 9110: 400, 413 content too large, 422)
REFUSED = frozenset({400, 413, 422})


def status_error(
    response: Response,
    *,
    service: str,
    detail: str | None = None,
    hint: str | None = None,
    retry_after: float | None = None,
) -> DeliveryError:
    """The DeliveryError for an answer that is not a success: 429 and 5xx are transient."""
    from kpi_collector.collect.http import retry_after_seconds

    status = response.status
    transient = status in (408, 425, 429) or status >= 500
    if retry_after is None:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    default = "server error, will retry" if status >= 500 else "request refused"
    message = f"{service} answered HTTP {status}"
    if detail:
        message += f" ({detail})"
    message += f": {hint or _HINTS.get(status, default)}"
    if status == 429 and retry_after is not None:
        message += f" (retry after {retry_after:g}s)"
    error = delivery_error(
        redact(message),
        transient=transient,
        retry_after=retry_after,
        refused=status in REFUSED,  # this payload, never any: later periods must still go
        credentials=status in (401, 403),
    )
    error.maybe_sent = status >= 500  # type: ignore[attr-defined]
    return error


def error_detail(response: Response, *keys: str) -> str | None:
    """A short description of an error body: the given JSON keys, or the start of the text,
    read in the charset the answer declares (`collect.http.body_text`)."""
    from kpi_collector.collect.http import body_text

    text = body_text(response.body, response.headers.get("Content-Type")).strip()
    try:
        body = jsontext.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        found = [f"{body[k]}" for k in keys if body.get(k) not in (None, "")]
        if found:
            return redact(" ".join(found))[:300]
    if text and not text.startswith("<"):
        return redact(" ".join(text.split()))[:200]
    return None


#: a JSON answer's `status` that says the receiver failed (`{"status": "error"}`)
_FAILED_STATUS = frozenset({"error", "fail", "failed", "failure"})


def failed_success(response: Response, *keys: str) -> str | None:
    """What a 2xx answer that delivered nothing came with, or None when it says nothing of
    the kind: an HTML page (a proxy's or single sign-on's sign-in page in front of the
    service), or a JSON object that says it failed — `"ok": false` (Slack-style bots and
    workflow triggers), `"success": false`, a `status` or `result` of error, fail, failed or
    failure, an `error` that is there (a text, an object, true: not null, false or empty).
    A Google Apps Script web app answers every request with 200 (its script cannot set a
    status), and its common form writes `{"result": "error", "error": ...}` when it failed.
    `keys` name the body's fields that tell why (`error_detail`)."""
    from kpi_collector.collect.http import body_text

    text = body_text(response.body, response.headers.get("Content-Type")).strip()
    if response.is_html or text[:15].lower().startswith(("<!doctype html", "<html")):
        return "an HTML page"
    try:
        body = jsontext.loads(text) if text.startswith("{") else None
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    status, result, error = body.get("status"), body.get("result"), body.get("error")
    for key, failed in (
        ("ok", body.get("ok") is False),
        ("success", body.get("success") is False),
        ("status", isinstance(status, str) and status.lower() in _FAILED_STATUS),
        ("result", isinstance(result, str) and result.lower() in _FAILED_STATUS),
        ("error", error not in (None, False, "", {}, []) and body.get("ok") is not True),
    ):
        if failed:
            said = f"{key}: {json.dumps(body[key])}"
            detail = error_detail(response, *keys)
            return f"{said} ({detail})" if detail else said
    return None


def check_success(
    response: Response, *, service: str, fix: str, keys: tuple[str, ...] = ()
) -> None:
    """Raise a terminal DeliveryError (the delivery stays pending) when the 2xx `response`
    delivered nothing (`failed_success`), saying what came and `fix`."""
    came = failed_success(response, *keys)
    if came is not None:
        raise delivery_error(
            f"{service} answered HTTP {response.status} with {came}, not {service}'s success: "
            f"nothing was delivered; {fix}",
            transient=False,
        )


def _scrub(text: str, url: str) -> str:
    """Remove a (secret) URL from a message, in every form the HTTP layer may have printed."""
    parts = urlsplit(url)
    for form in (url, f"{parts.scheme}://{parts.netloc}{parts.path}", parts.path):
        if form and form not in ("/", ""):
            text = text.replace(form, "" if form == parts.path else origin(url))
    return redact(text)
