"""`type: google_analytics`: a GA4 property's users, active users (1, 7 and 28 days), sessions,
page views and key events (formerly conversions) of each day, from the Google Analytics Data
API v1 `properties.runReport` (developers.google.com/analytics/devguides/reporting/data/v1).
A service account signs in with its JSON key through google-auth (the OAuth 2.0 JWT bearer
grant at the key's `token_uri`); backfill gives each past day.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from kpi_collector.collect import jsontext
from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError, HttpError, KpiError, SourceError
from kpi_collector.secrets import Secret, redact, remember
from kpi_collector.sources._service import ServiceSource, day_end, service_message, service_zone
from kpi_collector.sources.base import Observation, SourceContext

if TYPE_CHECKING:
    from kpi_collector.collect.http import HttpSession

#: our metric -> the Data API metric (API schema: developers.google.com/analytics/devguides/
#: reporting/data/v1/api-schema). `users` is what GA4's reports call Users (activeUsers);
#: GA4 renamed conversions to key events in 2024 (`keyEvents`).
METRICS = {
    "users": "activeUsers",
    "total_users": "totalUsers",
    "active_users_1_day": "active1DayUsers",
    "active_users_7_days": "active7DayUsers",
    "active_users_28_days": "active28DayUsers",
    "sessions": "sessions",
    "page_views": "screenPageViews",
    "conversions": "keyEvents",
}
SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
#: rows asked per runReport call; the API may give fewer, and says how many in `rowCount`
ROWS_PER_PAGE = 10_000
_FILTER_KEYS = {"filter", "andGroup", "orGroup", "notExpression"}


class GoogleAnalytics(ServiceSource):
    type: ClassVar[str] = "google_analytics"
    service_name: ClassVar[str] = "Google Analytics"
    known_metrics: ClassVar[tuple[str, ...]] = tuple(METRICS)
    default_metrics: ClassVar[tuple[str, ...]] = (
        "users",
        "active_users_7_days",
        "active_users_28_days",
        "sessions",
        "page_views",
        "conversions",
    )
    credentials: ClassVar[Mapping[str, str]] = {"credentials_json": "GA_CREDENTIALS"}
    #: every metric is one whole day's (the 7- and 28-day ones of the days ending then):
    #: the run stores them with that day's end
    complete_days: ClassVar[bool] = True

    property_id: str = Field(description="the GA4 property's id (Admin → Property details)")
    credentials_json: Secret | None = Field(
        default=None, description="the service account's JSON key itself (${GA_CREDENTIALS})"
    )
    credentials_file: str | None = Field(
        default=None, description="a path to the JSON key file, relative to kpi.yaml"
    )
    dimension_filter: dict[str, Any] | None = Field(
        default=None,
        description="a Data API FilterExpression, e.g. a hostName or pagePath filter",
    )
    api_url: str = "https://analyticsdata.googleapis.com"

    @field_validator("property_id", mode="before", json_schema_input_type=str | int)
    @classmethod
    def _property(cls, value: Any) -> str:
        text = str(value).strip().removeprefix("properties/")
        if not text.isdigit():
            raise ValueError(
                f"{value!r} is not a GA4 property id (digits, e.g. 123456789; not a G-XXXX "
                "measurement id)"
            )
        return text

    @field_validator("dimension_filter")
    @classmethod
    def _filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and (len(value) != 1 or not set(value) <= _FILTER_KEYS):
            raise ValueError(
                "a FilterExpression has exactly one of filter, andGroup, orGroup, notExpression, "
                'e.g. {filter: {fieldName: hostName, stringFilter: {value: "www.example.com"}}}'
            )
        return value

    @model_validator(mode="after")
    def _one_key(self) -> GoogleAnalytics:
        if (self.credentials_json is None) == (self.credentials_file is None):
            raise ValueError(
                "give exactly one of `credentials_json:` (the JSON key, e.g. ${GA_CREDENTIALS}) and "
                "`credentials_file:` (a path to it)"
            )
        return self

    # signing in -------------------------------------------------------------------------------

    def service_account(self, base_dir: Path) -> dict[str, Any]:
        """The service account key: a dict with `type: service_account`, `client_email`,
        `private_key` and `token_uri`. Raises SourceError naming the key to fix."""
        where = "`credentials_json:`"
        if self.credentials_file is not None:
            path = Path(self.credentials_file).expanduser()
            path = path if path.is_absolute() else base_dir / path
            where = f"`credentials_file:` ({path})"
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise SourceError(f"cannot read {where}: {exc.strerror}", transient=False) from None
        else:
            assert self.credentials_json is not None
            text = self.credentials_json.get()
        try:
            info = jsontext.loads(text)
        except ValueError:
            raise SourceError(
                f"{where} of source {self.name!r} is not a service account JSON key",
                transient=False,
            ) from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise SourceError(
                f'{where} of source {self.name!r} is not a service account key ("type": '
                '"service_account"; create one under IAM → Service accounts → Keys)',
                transient=False,
            )
        if isinstance(info.get("private_key"), str):
            remember(info["private_key"])
        return info

    async def access_token(self, ctx: SourceContext) -> Secret:
        """An OAuth 2.0 access token for the service account: google-auth signs the JWT
        assertion and exchanges it at the key's `token_uri`; its HTTP requests go through
        the run's HTTP layer (timeouts, retries, answer cap)."""
        from google.auth import exceptions as auth_errors
        from google.oauth2 import service_account

        info = self.service_account(ctx.base_dir)
        try:
            signer = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        except (ValueError, KeyError) as exc:
            raise SourceError(
                f"the service account key of source {self.name!r} is incomplete "
                f"({redact(str(exc))[:100]})",
                transient=False,
            ) from None
        session = ctx.http()
        try:
            transport = _Transport(session, asyncio.get_running_loop())
            await asyncio.to_thread(signer.refresh, transport)
        except auth_errors.RefreshError as exc:
            raise SourceError(
                f"Google refused the service account's sign-in ({redact(str(exc))[:200]}): "
                f"{self.credential_hint()}",
                transient=bool(getattr(exc, "retryable", False)),
            ) from None
        except auth_errors.TransportError as exc:
            if isinstance(exc.__cause__, KpiError):
                raise exc.__cause__ from None
            raise SourceError(
                f"cannot reach Google's token endpoint: {redact(str(exc))[:200]}", transient=True
            ) from None
        finally:
            await session.close()
        return Secret(str(signer.token))

    # the report -----------------------------------------------------------------------------

    def http_error(self, response: Response) -> HttpError:
        status = _status(response.body)
        message = service_message(response.body, response.headers.get("Content-Type"))
        if status == "PERMISSION_DENIED" and "SERVICE_DISABLED" in _reasons(response.body):
            text = (
                f"Google Analytics refused the request (HTTP 403: {message}): enable the Google "
                "Analytics Data API in the service account's Cloud project (APIs & Services)"
            )
            return HttpError(redact(text), status=response.status, url=response.url)
        if status == "PERMISSION_DENIED":
            text = (
                f"Google Analytics refused property {self.property_id} (HTTP 403: {message}): add "
                "the service account's client_email as a Viewer of the property (Admin → Property "
                f"access management), and check `property_id:` of source {self.name!r}"
            )
            return HttpError(redact(text), status=response.status, url=response.url)
        if status == "INVALID_ARGUMENT" and self.dimension_filter is not None:
            text = f"Google Analytics refused the report (HTTP 400: {message}): check `dimension_filter:` of source {self.name!r}"
            return HttpError(redact(text), status=response.status, url=response.url)
        return super().http_error(response)

    def rate_limited(self, response: Response, wait: float) -> HttpError:
        error = super().rate_limited(response, wait)
        if "per day" not in service_message(response.body, response.headers.get("Content-Type")):
            return error
        return HttpError(
            f"{error} (GA4's daily quotas reset at midnight Pacific Time)",
            status=response.status,
            url=response.url,
            retry_after=wait,
            transient=True,
        )

    async def _report(
        self, ctx: SourceContext, first: date, last: date, *, by_day: bool
    ) -> tuple[list[tuple[str | None, dict[str, float]]], ZoneInfo | None]:
        """(YYYYMMDD or None, {metric: value}) for each row of a report over [first, last]
        (dates of the property's time zone), and that zone as the answer names it
        (`metadata.timeZone`; None when it names none)."""
        token = await self.access_token(ctx)
        client = self.client(ctx)
        # the token exists only now: this run's session carries it
        client.http = ctx.http(auth=Auth(bearer=token), headers=self.headers())
        wanted = self.wanted()
        body: dict[str, Any] = {
            "dateRanges": [{"startDate": first.isoformat(), "endDate": last.isoformat()}],
            "metrics": [{"name": METRICS[m]} for m in wanted],
            "limit": ROWS_PER_PAGE,
        }
        if by_day:
            body["dimensions"] = [{"name": "date"}]
            body["orderBys"] = [{"dimension": {"dimensionName": "date"}}]
        if self.dimension_filter is not None:
            body["dimensionFilter"] = self.dimension_filter
        path = f"/v1beta/properties/{self.property_id}:runReport"
        rows: list[tuple[str | None, dict[str, float]]] = []
        zone: ZoneInfo | None = None
        while True:
            data = await client.json(path, method="POST", json_body={**body, "offset": len(rows)})
            page = (data.get("rows") or []) if isinstance(data, dict) else None
            if not isinstance(page, list) or not isinstance(data, dict):
                raise ExtractError("Google Analytics: the report's `rows` are not a list")
            for row in page:
                rows.append(_row(row, wanted, by_day))
            zone = zone or _zone(data.get("metadata"))
            total = data.get("rowCount", len(rows))
            if isinstance(total, bool) or not isinstance(total, int | str):
                raise ExtractError("Google Analytics: the report's `rowCount` is not a number")
            try:
                total = int(total)
            except ValueError:
                raise ExtractError(
                    "Google Analytics: the report's `rowCount` is not a number"
                ) from None
            if len(rows) >= total:
                return rows, zone
            if not page:
                # the rest of the report would be left out unsaid: days without a value
                raise ExtractError(
                    f"Google Analytics gave {len(rows)} of the report's {total} rows, then no more"
                )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        """Yesterday's figures: the last day complete both in the config's time zone and in
        the property's (whose dates the report counts in). One report by `date` over the
        config's yesterday and the day before; the answer names the property's time zone,
        and where that is behind the config's, the config's yesterday is still under way
        there: the day before is read instead."""
        yesterday = ctx.today - timedelta(days=1)
        rows, zone = await self._report(ctx, yesterday - timedelta(days=1), yesterday, by_day=True)
        if zone is not None and ctx.now.astimezone(zone).date() <= yesterday:
            yesterday = ctx.now.astimezone(zone).date() - timedelta(days=1)
            ctx.describes(yesterday)  # the run stamps the day before so
        by_day = {_day(text): values for text, values in rows}
        if yesterday not in by_day:
            raise ExtractError(
                f"Google Analytics has no data for {yesterday} in property {self.property_id}"
                + (" (no event matched `dimension_filter:`)" if self.dimension_filter else "")
            )
        return by_day[yesterday]

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Each day's figures from `since` to yesterday, in one report by `date` (paged by
        `offset` when the API gives fewer rows than `rowCount`); a day without data gets no
        value. `active_users_7_days` and `_28_days` of a day are those of the days ending then.
        A day still under way in the property's time zone (behind the config's) is left out."""
        yesterday = ctx.today - timedelta(days=1)
        if since > yesterday:
            return
        rows, zone = await self._report(ctx, since, yesterday, by_day=True)
        today = ctx.now.astimezone(zone).date() if zone is not None else ctx.today
        for day_text, values in rows:
            day = _day(day_text)
            if day >= today:
                continue
            for metric, value in values.items():
                yield Observation(metric, value, day_end(day, ctx.tz))


class _Transport:
    """google-auth's `transport.Request` over the run's HTTP session: google-auth calls it from
    a worker thread; the request runs on the event loop."""

    def __init__(self, session: HttpSession, loop: asyncio.AbstractEventLoop) -> None:
        self.session = session
        self.loop = loop

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        from google.auth import exceptions as auth_errors

        request = self.session.request(
            method, url, headers=dict(headers or {}), data=body, ok=(400, 401, 403)
        )
        try:
            response = asyncio.run_coroutine_threadsafe(request, self.loop).result()
        except KpiError as exc:
            raise auth_errors.TransportError(str(exc)) from exc
        return _TransportResponse(response)


class _TransportResponse:
    def __init__(self, response: Response) -> None:
        self.status = response.status
        self.headers = dict(response.headers)
        self.data = response.body


def _row(row: Any, wanted: list[str], by_day: bool) -> tuple[str | None, dict[str, float]]:
    values = row.get("metricValues") if isinstance(row, dict) else None
    if not isinstance(values, list) or len(values) != len(wanted):
        raise ExtractError("Google Analytics: a row's `metricValues` do not match the report")
    numbers = {}
    for metric, item in zip(wanted, values, strict=True):
        try:
            numbers[metric] = float(item["value"])
        except (KeyError, TypeError, ValueError):
            raise ExtractError(f"Google Analytics: {metric} is not a number in a row") from None
    day = None
    if by_day:
        dims = row.get("dimensionValues") or []
        day = str(dims[0].get("value")) if dims and isinstance(dims[0], dict) else None
    return day, numbers


def _day(text: str | None) -> date:
    if text is None or not re.fullmatch(r"\d{8}", text):
        raise ExtractError(f"Google Analytics: {text!r} is not a date like 20260131")
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _zone(metadata: Any) -> ZoneInfo | None:
    """The property's time zone from a report's `metadata.timeZone` ("America/Los_Angeles")."""
    return service_zone(metadata.get("timeZone") if isinstance(metadata, dict) else None)


def _status(body: bytes) -> str:
    try:
        error = jsontext.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return str(error.get("status", "")) if isinstance(error, dict) else ""


def _reasons(body: bytes) -> set[str]:
    """The `reason`s of the `details` of a Google API error body (`SERVICE_DISABLED`...)."""
    try:
        details = jsontext.loads(body)["error"].get("details") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()
    return {str(d.get("reason")) for d in details if isinstance(d, dict) and d.get("reason")}
