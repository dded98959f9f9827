"""`type: notion`: a Notion database, one page per period (wide: a Number property per KPI,
named by the KPI's title) or per KPI and period (`layout: long`), through the official client
(notion-client 3.x, API version 2025-09-03: a database holds data sources, pages live in one).

    - {type: notion, token: "${NOTION_TOKEN}", database: 0123456789abcdef0123456789abcdef, every: day}

Writes are idempotent: each page carries the period key in a `Period` text property, and the
data source is queried for it before writing, so a re-run — or the run after a crash between
Notion's answer and the store recording it — updates the page instead of adding a second one.
Missing properties are added to the data source; requests are paced to Notion's average of
three per second.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator, model_validator

from kpi_collector.destinations._http import origin
from kpi_collector.destinations.base import (
    Delivery,
    TableDestination,
    delivery_error,
    refuse_name_collision,
)
from kpi_collector.errors import DeliveryError
from kpi_collector.secrets import Secret, redact

if TYPE_CHECKING:
    from notion_client import AsyncClient

NOTION_VERSION = "2025-09-03"
# Notion API "Request limits", size limits: a rich text object's text.content holds at most
# 2000 characters, and any array of rich text objects at most 100 elements (beyond either:
# 400 validation_error "... should be ≤ `2000`")
TEXT_CONTENT_LIMIT = 2000
RICH_TEXT_ITEMS = 100
# ... and a request's payload at most 500KB overall (read as 500,000 bytes); a wide page or a
# schema update over it is split over several requests of at most PAYLOAD_BUDGET bytes of
# JSON (room left for what the client adds around the properties)
PAYLOAD_LIMIT = 500_000
PAYLOAD_BUDGET = PAYLOAD_LIMIT - 4_000
_ID = re.compile(
    r"([0-9a-f]{32})|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", re.I
)
_NUMBER_FORMATS = {"USD": "dollar", "EUR": "euro", "GBP": "pound", "JPY": "yen"}
_HINTS = {
    "unauthorized": "Notion refused the token: check `token` (an integration secret, ntn_...)",
    "restricted_resource": (
        "the integration may not do this: give it the read, update and insert content capabilities"
    ),
    "object_not_found": (
        "the database was not found or is not shared with the integration: open it in Notion, "
        "••• → Connections, and add the integration"
    ),
    "validation_error": "Notion refused the request",
    "invalid_request": "Notion refused the request",
    "rate_limited": "rate limited by Notion",
    "conflict_error": "a conflicting edit in Notion",
    "internal_server_error": "Notion had an internal error",
    "service_unavailable": "Notion is unavailable",
    "gateway_timeout": "Notion timed out",
}
_TRANSIENT = {
    "rate_limited",
    "conflict_error",
    "internal_server_error",
    "service_unavailable",
    "gateway_timeout",
}


#: the object each endpoint answers with (the "object" of its JSON)
_OBJECTS = {
    "databases.retrieve": "database",
    "data_sources.retrieve": "data_source",
    "data_sources.update": "data_source",
    "data_sources.query": "list",
    "pages.create": "page",
    "pages.update": "page",
}


def notion_id(value: str) -> str:
    """The 32-hex id in a Notion id, dashed UUID or page/database URL."""
    matches = _ID.findall(value.split("?")[0])
    if not matches:
        raise ValueError(f"{value!r} is not a Notion database id or URL")
    found = next(m[0] or m[1] for m in reversed(matches))
    return found.replace("-", "").lower()


class Notion(TableDestination):
    type: ClassVar[str] = "notion"
    name_kind: ClassVar[str] = "property"
    name_fix: ClassVar[str] = "give one of them another title in `kpis:`"

    token: Secret
    database: str
    data_source: str | None = None  # id or name, when the database has several data sources
    api_url: str = "https://api.notion.com"
    date_property: str = "Date"
    period_property: str = "Period"
    kpi_property: str = "KPI"  # long layout: the KPI id
    value_property: str = "Value"  # long layout: the value
    requests_per_second: float = Field(default=3.0, gt=0)

    @field_validator("database")
    @classmethod
    def _database_id(cls, value: str) -> str:
        return notion_id(value)

    @model_validator(mode="after")
    def _own_properties(self) -> Notion:
        """The properties this destination writes besides the KPIs' are four: two of one
        name were one property, each page's date written over by its period (or its KPI
        by its value) without a word."""
        keys = ["date_property", "period_property"]
        if self.layout == "long":
            keys += ["kpi_property", "value_property"]
        seen: dict[str, str] = {}
        for key in keys:
            name = getattr(self, key)
            if name in seen:
                raise ValueError(
                    f"{seen[name]} and {key} are both {name!r}: each needs a property of its own"
                )
            seen[name] = key
        return self

    # the client ----------------------------------------------------------------------------

    @asynccontextmanager
    async def client(self) -> AsyncIterator[_Api]:
        from notion_client import AsyncClient

        client = AsyncClient(
            auth=self.token.get(),
            base_url=self.api_url.rstrip("/"),
            notion_version=NOTION_VERSION,
            timeout_ms=int(self.timeout * 1000),
            retry=False,  # the delivery engine retries, with Retry-After
            logger=logging.getLogger(__name__),
            log_level=logging.CRITICAL,
        )
        try:
            yield _Api(client, self.requests_per_second, origin(self.api_url))
        finally:
            await client.aclose()

    # delivering ----------------------------------------------------------------------------

    def kpi_names(self, kpis: Sequence[str], titles: Mapping[str, str]) -> dict[str, str]:
        """wide: {kpi: property}, the property named by the KPI's title (else its id); long
        names nothing by KPI (one row per KPI)."""
        if self.layout == "long":
            return {}
        return {kpi: titles.get(kpi) or kpi for kpi in kpis}

    def reserved_names(self) -> frozenset[str]:
        """wide: the date and period properties (the title property is checked by type)."""
        return frozenset({self.date_property, self.period_property})

    async def deliver(self, delivery: Delivery) -> None:
        refuse_name_collision(self, delivery)  # the config's own KPIs are checked at load
        async with self.client() as api:
            source = await self.resolve_data_source(api)
            source = await self.ensure_properties(api, source, delivery)
            title = _title_property(source)
            existing = await api.query(
                source["id"], self._text_filter(self.period_property, delivery.row_period)
            )
            if self.layout == "wide":
                await self._write_wide(api, delivery, source["id"], title, existing)
                return
            pages = {_plain(p["properties"].get(self.kpi_property)): p for p in existing}
            # after the pages an earlier attempt (cut short by a 429, say) wrote; pages are
            # found by KPI, so when the KPIs changed since, writing them all again is harmless
            for index, kpi in delivery.unsent(delivery.ordered, idempotent=True):
                properties = self._long_properties(delivery, kpi, title)
                page = pages.get(kpi)
                if page is not None:
                    await api.update_page(page["id"], properties)
                else:
                    await api.create_page(source["id"], properties)
                await delivery.checkpoint(index + 1)

    async def resolve_data_source(self, api: _Api) -> dict[str, Any]:
        """The database's data source (API 2025-09-03: rows live in data sources)."""
        database = await api.call("databases.retrieve", database_id=self.database)
        sources = database.get("data_sources") or []
        if not sources:
            raise delivery_error(
                "the Notion database has no data source: is `database` a database id?",
                transient=False,
            )
        if self.data_source:
            wanted = self.data_source
            try:
                wanted_id: str | None = notion_id(wanted)
            except ValueError:
                wanted_id = None
            match = [
                s
                for s in sources
                if s.get("name") == wanted or s["id"].replace("-", "") == wanted_id
            ]
            if not match:
                names = ", ".join(repr(s.get("name")) for s in sources)
                raise delivery_error(
                    f"the Notion database has no data source {wanted!r}; it has {names}",
                    transient=False,
                )
            chosen = match[0]
        elif len(sources) > 1:
            names = ", ".join(repr(s.get("name")) for s in sources)
            raise delivery_error(
                f"the Notion database has several data sources ({names}): choose one with "
                "`data_source: NAME`",
                transient=False,
            )
        else:
            chosen = sources[0]
        source: dict[str, Any] = await api.call(
            "data_sources.retrieve", data_source_id=chosen["id"]
        )
        return source

    def wanted_properties(self, delivery: Delivery) -> dict[str, dict[str, Any]]:
        """Property name → its schema, for every property this delivery writes."""
        wanted: dict[str, dict[str, Any]] = {
            self.date_property: {"date": {}},
            self.period_property: {"rich_text": {}},
        }
        if self.layout == "long":
            wanted[self.kpi_property] = {"rich_text": {}}
            wanted[self.value_property] = {"number": {"format": "number_with_commas"}}
            return wanted
        for kpi in delivery.ordered:
            unit = (delivery.unit(kpi) or "").upper()
            fmt = _NUMBER_FORMATS.get(unit, "number_with_commas")
            wanted[delivery.title(kpi)] = {"number": {"format": fmt}}
        return wanted

    async def ensure_properties(
        self, api: _Api, source: dict[str, Any], delivery: Delivery
    ) -> dict[str, Any]:
        """Add missing properties to the data source; a property of another type is an error."""
        have: dict[str, Any] = source.get("properties") or {}
        missing: dict[str, Any] = {}
        for name, schema in self.wanted_properties(delivery).items():
            kind = next(iter(schema))
            if name not in have:
                missing[name] = schema
            elif have[name].get("type") != kind:
                raise delivery_error(
                    f"the Notion property {name!r} is a {have[name].get('type')} property, not "
                    f"{kind}: rename it in Notion or give the KPI another title",
                    transient=False,
                )
        # many new KPIs at once: within Notion's 500KB per request, in several updates
        for part in split_properties(missing, {}, what="the new Notion properties"):
            source = await api.call(
                "data_sources.update", data_source_id=source["id"], properties=part
            )
        return source

    async def _write_wide(
        self,
        api: _Api,
        delivery: Delivery,
        source_id: str,
        title: str,
        existing: list[dict[str, Any]],
    ) -> None:
        """The period's page: created (or, when the period has one, updated: the first, if
        someone duplicated it) with every KPI's property. A row whose properties are over
        Notion's 500KB per request goes out as the page's first request and updates of the
        same page, each with the title, date and period and a share of the KPIs; a retry
        goes on after the requests done (they are upserts: when the page is gone, all again).
        """
        properties = self._wide_properties(delivery, title)
        fixed = {name: properties.pop(name) for name in (title, *self._common(delivery))}
        parts = split_properties(properties, fixed, what="one Notion row (`layout: wide`)")
        page_id: str | None = existing[0]["id"] if existing else None
        if page_id is None:
            delivery.progress = 0  # the page an earlier attempt began is gone: from the start
        for index, part in delivery.unsent(parts, idempotent=True):
            if page_id is None:
                page_id = str((await api.create_page(source_id, part))["id"])
            else:
                await api.update_page(page_id, part)
            if len(parts) > 1:
                await delivery.checkpoint(index + 1)

    # page properties ----------------------------------------------------------------------

    def _date(self, delivery: Delivery) -> dict[str, Any]:
        if delivery.every == "run":
            return {"start": delivery.now.astimezone(delivery.tz).isoformat(timespec="seconds")}
        return {"start": delivery.period_start.isoformat()}

    def _title_text(self, delivery: Delivery) -> str:
        if delivery.every == "run":
            return f"{delivery.now.astimezone(delivery.tz):%Y-%m-%d %H:%M}"
        return delivery.period_start.isoformat()

    def _common(self, delivery: Delivery) -> dict[str, Any]:
        return {
            self.date_property: {"date": self._date(delivery)},
            self.period_property: {"rich_text": _text(delivery.row_period)},
        }

    def _wide_properties(self, delivery: Delivery, title: str) -> dict[str, Any]:
        properties = {title: {"title": _text(self._title_text(delivery))}, **self._common(delivery)}
        for kpi in delivery.ordered:
            properties[delivery.title(kpi)] = {"number": delivery.values[kpi]}
        return properties

    def _long_properties(self, delivery: Delivery, kpi: str, title: str) -> dict[str, Any]:
        return {
            title: {"title": _text(delivery.title(kpi))},
            **self._common(delivery),
            self.kpi_property: {"rich_text": _text(kpi)},
            self.value_property: {"number": delivery.values[kpi]},
        }

    @staticmethod
    def _text_filter(prop: str, value: str) -> dict[str, Any]:
        return {"property": prop, "rich_text": {"equals": value}}


class _Api:
    """The Notion client paced to a request rate, its errors turned into DeliveryErrors."""

    def __init__(self, client: AsyncClient, per_second: float, where: str) -> None:
        from kpi_collector.collect.retry import Pacer

        self.client = client
        self.pacer = Pacer(per_second)  # Notion allows about three requests a second
        self.where = where

    async def call(self, endpoint: str, **kwargs: Any) -> Any:
        """The answer of one endpoint ("pages.create"): the object it gives (`_OBJECTS`), else
        a DeliveryError — Notion's error object passed on in a 200 (by a gateway) is that
        error, and an answer that is no such object is no success: read as one, a query's
        would be "no page for this period" and write the period's row twice."""
        group, _, method = endpoint.partition(".")
        function = getattr(getattr(self.client, group), method)
        await self.pacer.turn()
        try:
            answer = await function(**kwargs)
        except DeliveryError:
            raise
        except Exception as exc:
            raise self._error(exc) from None
        kind = answer.get("object") if isinstance(answer, dict) else None
        if kind == _OBJECTS[endpoint]:
            return answer
        if kind == "error":
            code = str(answer.get("code") or "")
            message = redact(str(answer.get("message") or ""))[:300]
            raise delivery_error(
                f"Notion answered HTTP 200 with its error object {code}: "
                f"{_HINTS.get(code) or 'error'} — {message}",
                transient=code in _TRANSIENT,
            )
        came = f"a {kind!r} object" if kind else "no Notion object"
        raise delivery_error(
            f"Notion at {self.where} answered {endpoint} with {came}, not a success: nothing "
            "is taken as written; check api_url (and that no proxy stands between)",
            transient=False,
        )

    async def query(self, data_source_id: str, filter_: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page of the data source that matches `filter_` (following the cursor)."""
        pages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "data_source_id": data_source_id,
                "filter": filter_,
                "page_size": 100,
            }
            if cursor:
                kwargs["start_cursor"] = cursor
            answer = await self.call("data_sources.query", **kwargs)
            pages += [r for r in answer.get("results", []) if r.get("object") == "page"]
            cursor = answer.get("next_cursor")
            if not answer.get("has_more") or not cursor:
                return pages

    async def create_page(self, data_source_id: str, properties: dict[str, Any]) -> Any:
        parent = {"type": "data_source_id", "data_source_id": data_source_id}
        return await self.call("pages.create", parent=parent, properties=properties)

    async def update_page(self, page_id: str, properties: dict[str, Any]) -> Any:
        return await self.call("pages.update", page_id=page_id, properties=properties)

    def _error(self, exc: Exception) -> DeliveryError:
        import httpx
        from notion_client import APIResponseError
        from notion_client.errors import HTTPResponseError, RequestTimeoutError

        if isinstance(exc, RequestTimeoutError):
            return delivery_error(f"Notion at {self.where} timed out", transient=True)
        if isinstance(exc, httpx.TransportError):
            reason = redact(str(exc)) or type(exc).__name__
            return delivery_error(f"cannot reach Notion at {self.where}: {reason}", transient=True)
        if isinstance(exc, HTTPResponseError):
            from kpi_collector.collect.http import retry_after_seconds

            code = str(getattr(exc.code, "value", exc.code))
            status = exc.status
            retry_after = retry_after_seconds(exc.headers.get("retry-after"))
            transient = code in _TRANSIENT or status in (408, 429) or status >= 500
            message = str(getattr(exc, "message", "") or exc)
            # a size limit ("... should be ≤ `2000`") or 413: this payload, never any
            too_large = status == 413 or (code == "validation_error" and "should be ≤" in message)
            hint = "over one of Notion's size limits" if too_large else _HINTS.get(code)
            text = f"Notion answered HTTP {status}"
            if isinstance(exc, APIResponseError):
                text += f" {code}: {hint or 'error'} — {redact(str(exc))[:300]}"
            else:
                text += ": " + ("server error" if status >= 500 else "request refused")
            if retry_after is not None and status == 429:
                text += f" (retry after {retry_after:g}s)"
            return delivery_error(
                text,
                transient=transient,
                retry_after=retry_after,
                refused=too_large,
                credentials=status in (401, 403),
            )
        return delivery_error(
            f"Notion client: {type(exc).__name__}: {redact(str(exc))}", transient=False
        )


def split_properties(
    properties: dict[str, Any], fixed: dict[str, Any], *, what: str, budget: int = PAYLOAD_BUDGET
) -> list[dict[str, Any]]:
    """`properties` in order over as few dicts as fit Notion's 500KB per request: each is
    `fixed` and a share of `properties`, at most `budget` bytes of JSON (as sent: ASCII-escaped
    with the default separators). Raises DeliveryError(refused) when `fixed` and one property
    alone are over it (naming `what`)."""

    def size(value: dict[str, Any]) -> int:
        return len(json.dumps(value).encode())

    base = size({"parent": {"type": "data_source_id", "data_source_id": "0" * 36}, **fixed})
    parts: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    used = base
    for name, value in properties.items():
        extra = size({name: value}) - 2 + 2  # the entry, and its ", " in the object
        if base + extra > budget:
            raise delivery_error(
                f"{what}: the property {name!r} alone is {extra:,} bytes, over Notion's "
                f"{PAYLOAD_LIMIT:,} bytes per request: shorten the KPI's title, or use "
                "`layout: long` (a page per KPI)",
                transient=False,
                refused=True,
            )
        if current and used + extra > budget:
            parts.append({**fixed, **current})
            current, used = {}, base
        current[name] = value
        used += extra
    parts.append({**fixed, **current})
    return parts


def text_chunks(content: str, limit: int = TEXT_CONTENT_LIMIT) -> list[str]:
    """`content` in pieces of at most `limit` characters as Notion counts them: UTF-16 code
    units, as JavaScript does (an emoji past U+FFFF is 2), never cutting a character."""
    chunks: list[str] = []
    start = size = 0
    for index, char in enumerate(content):
        width = 2 if ord(char) > 0xFFFF else 1
        if size + width > limit:
            chunks.append(content[start:index])
            start, size = index, 0
        size += width
    chunks.append(content[start:])
    return chunks


def _text(content: str) -> list[dict[str, Any]]:
    """`content` as rich text objects of at most 2000 characters each (Notion's limit per
    object, in UTF-16 units: `text_chunks`; the property's plain text is their concatenation,
    so nothing is cut). Raises DeliveryError(refused) past 100 objects (200,000 characters),
    Notion's array limit."""
    chunks = text_chunks(content)
    if len(chunks) > RICH_TEXT_ITEMS:
        raise delivery_error(
            f"a Notion text of {len(content):,} characters is over Notion's "
            f"{RICH_TEXT_ITEMS * TEXT_CONTENT_LIMIT:,} per property ({RICH_TEXT_ITEMS} rich "
            f"text objects of {TEXT_CONTENT_LIMIT:,}): shorten the KPI's title or id",
            transient=False,
            refused=True,
        )
    return [{"type": "text", "text": {"content": chunk}} for chunk in chunks]


def _plain(prop: dict[str, Any] | None) -> str:
    """The plain text of a title or rich_text property value."""
    if not prop:
        return ""
    parts = prop.get(prop.get("type", ""), []) or []
    return "".join(p.get("plain_text") or p.get("text", {}).get("content", "") for p in parts)


def _title_property(source: dict[str, Any]) -> str:
    for name, prop in (source.get("properties") or {}).items():
        if prop.get("type") == "title":
            return str(name)
    raise delivery_error("the Notion data source has no title property", transient=False)
