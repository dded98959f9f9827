"""A local Google Analytics Data API v1 (`POST /v1beta/properties/{id}:runReport`) and
Google's OAuth 2.0 token endpoint (`POST /token`, the JWT bearer grant of RFC 7523).

The token endpoint checks what Google checks: the assertion's RS256 signature against the
service account's public key, its issuer, audience, lifetime and
scope; it answers `{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}`
to a key it does not know. The report answers with the API's shapes: `dimensionHeaders`,
`metricHeaders`, `rows` of `dimensionValues`/`metricValues` (numbers as strings, dates as
YYYYMMDD), `rowCount`, `metadata`, `kind`; and its errors `{"error": {"code", "message",
"status"}}`: 401 UNAUTHENTICATED, 403 PERMISSION_DENIED (no access to the property), 400
INVALID_ARGUMENT (an unknown metric or dimension), 429 RESOURCE_EXHAUSTED (a spent quota).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import (
    FakeService,
    bearer,
    google_public_key,
    google_service_account,
    respond,
)

SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
#: the audience Google's token endpoint requires in the assertion, whatever URL it was sent to
#: (developers.google.com/identity/protocols/oauth2/service-account, "aud")
AUDIENCE = "https://oauth2.googleapis.com/token"
API_METRICS = (
    "activeUsers",
    "totalUsers",
    "active1DayUsers",
    "active7DayUsers",
    "active28DayUsers",
    "sessions",
    "screenPageViews",
    "keyEvents",
)
_DIMENSIONS = ("date", "hostName", "pagePath", "country")
_NO_ACCESS = (
    "User does not have sufficient permissions for this property. To learn more about Property "
    "ID, see https://developers.google.com/analytics/devguides/reporting/data/v1/property-id."
)
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
QUOTA_PER_DAY = "Exhausted property tokens per day per project quota."


def service_account(
    token_uri: str, email: str = "kpi-bot@acme-analytics.iam.gserviceaccount.com"
) -> dict[str, Any]:
    """A service account JSON key with a fresh RSA key, its token endpoint at `token_uri`."""
    return google_service_account(token_uri, email, "acme-analytics")


@dataclass
class FakeAnalytics(FakeService):
    #: client_email -> (private_key_id, public key PEM)
    accounts: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: property id -> the client_emails with access
    grants: dict[str, set[str]] = field(default_factory=dict)
    #: property id -> day -> hostName -> {API metric: value}
    properties: dict[str, dict[date, dict[str, dict[str, int]]]] = field(default_factory=dict)
    #: access token -> client_email
    tokens: dict[str, str] = field(default_factory=dict)
    #: the most rows one answer gives ("the API can return fewer rows than the limit")
    max_rows: int = 250_000
    #: the properties' reporting time zone (Admin → Property details), the day boundary of
    #: their dates, named in every report's `metadata.timeZone`
    time_zone: str = "Etc/UTC"
    token_requests: int = 0

    def add_account(self, info: dict[str, Any], *properties: str) -> None:
        """Know the key's public half, and give its account access to `properties`."""
        self.accounts[info["client_email"]] = (info["private_key_id"], google_public_key(info))
        for prop in properties:
            self.grants.setdefault(prop, set()).add(info["client_email"])

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self.token)
        app.router.add_post("/v1beta/properties/{rest}", self.run_report)

    async def token(self, request: web.Request) -> web.Response:
        from google.auth import jwt

        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return respond(
                400,
                {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "},
            )
        assertion = str(form.get("assertion") or "")
        try:
            claims = jwt.decode(assertion, verify=False)
            kid, key = self.accounts[claims["iss"]]
        except (ValueError, KeyError):
            return respond(
                400,
                {"error": "invalid_grant", "error_description": "Invalid grant: account not found"},
            )
        try:
            claims = jwt.decode(assertion, certs={kid: key}, audience=AUDIENCE)
        except ValueError:
            return respond(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )
        if SCOPE not in str(claims.get("scope", "")).split():
            return respond(
                400,
                {
                    "error": "invalid_scope",
                    "error_description": "Invalid OAuth scope or ID token audience provided.",
                },
            )
        token = "ya29." + secrets.token_urlsafe(40)
        self.tokens[token] = claims["iss"]
        return respond(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def run_report(self, request: web.Request) -> web.Response:
        prop, _, method = request.match_info["rest"].partition(":")
        if method != "runReport":
            return _error(404, "Method not found.", "NOT_FOUND")
        email = self.tokens.get(bearer(request) or "")
        if email is None:
            return _error(401, _UNAUTHENTICATED, "UNAUTHENTICATED")
        if email not in self.grants.get(prop, set()) or prop not in self.properties:
            return _error(403, _NO_ACCESS, "PERMISSION_DENIED")
        body: dict[str, Any] = await request.json()
        metrics = [m["name"] for m in body.get("metrics") or []]
        dims = [d["name"] for d in body.get("dimensions") or []]
        for name in metrics:
            if name not in API_METRICS:
                return _error(
                    400,
                    f"Field {name} is not a valid metric. For a list of valid dimensions and metrics, see https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema ",
                    "INVALID_ARGUMENT",
                )
        hosts = _hosts(body.get("dimensionFilter"))
        if isinstance(hosts, web.Response):
            return hosts
        (span,) = body["dateRanges"]
        first, last = date.fromisoformat(span["startDate"]), date.fromisoformat(span["endDate"])
        data = self.properties[prop]
        summed = {d: _sum(v, hosts) for d, v in data.items() if first <= d <= last}
        days = {d: v for d, v in summed.items() if v is not None}
        if dims == ["date"]:
            rows = [
                {
                    "dimensionValues": [{"value": d.strftime("%Y%m%d")}],
                    "metricValues": [{"value": str(days[d][m])} for m in metrics],
                }
                for d in sorted(days)
            ]
        elif days:
            # without a date dimension the range is one row (the fake sums its days)
            rows = [
                {
                    "metricValues": [
                        {"value": str(sum(v[m] for v in days.values()))} for m in metrics
                    ]
                }
            ]
        else:
            rows = []
        offset = int(body.get("offset", 0))
        limit = min(int(body.get("limit", 10_000)), self.max_rows)
        answer: dict[str, Any] = {
            "dimensionHeaders": [{"name": d} for d in dims],
            "metricHeaders": [{"name": m, "type": "TYPE_INTEGER"} for m in metrics],
            "metadata": {"currencyCode": "USD", "timeZone": self.time_zone},
            "kind": "analyticsData#runReport",
        }
        if rows:  # the API leaves `rows` and `rowCount` out of an empty report
            answer["rows"] = rows[offset : offset + limit]
            answer["rowCount"] = len(rows)
        return respond(200, answer)


def daily(
    first: date, last: date, **by_host: dict[str, int]
) -> dict[date, dict[str, dict[str, int]]]:
    """The same figures per host on every day of [first, last]."""
    out = {}
    day = first
    while day <= last:
        out[day] = {host: dict(figures) for host, figures in by_host.items()}
        day += timedelta(days=1)
    return out


def _hosts(expression: Any) -> set[str] | web.Response | None:
    """The hostNames a FilterExpression keeps (the fake knows exact hostName filters)."""
    if expression is None:
        return None
    item = expression.get("filter") if isinstance(expression, dict) else None
    name = item.get("fieldName") if isinstance(item, dict) else None
    if not isinstance(item, dict) or name not in _DIMENSIONS:
        return _error(
            400,
            f"Field {name} is not a valid dimension. For a list of valid dimensions and metrics, see https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema ",
            "INVALID_ARGUMENT",
        )
    return {item["stringFilter"]["value"]} if name == "hostName" else set()


def _sum(by_host: dict[str, dict[str, int]], hosts: set[str] | None) -> dict[str, int] | None:
    chosen = [v for h, v in by_host.items() if hosts is None or h in hosts]
    if not chosen:
        return None
    return {m: sum(v.get(m, 0) for v in chosen) for m in API_METRICS}


def _error(code: int, message: str, status: str) -> web.Response:
    return respond(code, {"error": {"code": code, "message": message, "status": status}})
