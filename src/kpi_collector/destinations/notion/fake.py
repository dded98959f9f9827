"""A local Notion API (version 2025-09-03) for tests: databases that hold data sources, pages
whose parent is a data source, `data_sources/{id}/query` with filters and cursors, schema
updates, and Notion's error objects — plus injected faults (503s, 429 with Retry-After, an
outage) and a hook that runs after a page is written (to kill the client mid-delivery).

Shapes follow developers.notion.com: database `data_sources: [{id, name}]`, data source
`properties: {name: {id, name, type, <type>: {...}}}`, page `parent: {type: data_source_id, ...}`,
errors `{"object": "error", "status", "code", "message", "request_id"}`.

Limits as Notion documents them ("Request limits"): an average of three requests a second with
bursts (here `rate_limit`, 30 per 10 s), beyond it 429 `rate_limited` with `Retry-After` in
whole seconds; a rich text object's `text.content` at most 2000 characters (UTF-16 units) and a rich text
array at most 100 objects, beyond them 400 `validation_error` "body failed validation: ...
should be ≤ `2000`, instead was `2001`."; and a request payload of at most 500KB overall
(here `payload_limit`, 500,000 bytes of JSON body), beyond it the same 400 `validation_error`
Notion documents for every size limit, its message in the form of Notion's validation
messages ("... should be ≤ `500000`, instead was `612345`.").
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kpi_collector.destinations._fake import rate_wait
from kpi_collector.sources._fake import BackgroundServer

VERSION = "2025-09-03"
BODY = web.RequestKey("body", dict)


def _uuid() -> str:
    return str(uuid.uuid4())


def _bare(value: str) -> str:
    return value.replace("-", "").lower()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def rich_text(content: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "text",
            "text": {"content": content, "link": None},
            "annotations": {
                "bold": False,
                "italic": False,
                "strikethrough": False,
                "underline": False,
                "code": False,
                "color": "default",
            },
            "plain_text": content,
            "href": None,
        }
    ]


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "object": "error",
        "status": status,
        "code": code,
        "message": message,
        "request_id": _uuid(),
    }
    return web.json_response(body, status=status, headers=headers)


# strictness (developers.notion.com): what Notion refuses with 400 validation_error ----------

TEXT_LIMIT = 2000  # "Request limits": a rich text object's text.content, in characters


def js_length(text: str) -> int:
    """`text.length` as Notion (JavaScript) counts it: UTF-16 code units, 2 for an emoji."""
    return len(text.encode("utf-16-le")) // 2


def strict_value(name: str, kind: str, raw: Any) -> str | None:
    """Why Notion refuses this property value (a 400 validation_error message), or None:
    a number property takes a number or null (JSON `true` is no number); a text content is at
    most 2,000 characters; a date's `start` is an ISO 8601 date or date-time."""
    at = f"body failed validation: body.properties.{name}.{kind}"
    if kind == "number" and (isinstance(raw, bool) or not isinstance(raw, int | float | None)):
        return f"{at} should be a number or `null`, instead was `{json.dumps(raw)}`."
    if kind in ("title", "rich_text") and isinstance(raw, list):
        for index, part in enumerate(raw):
            content = (part.get("text") or {}).get("content", "") if isinstance(part, dict) else ""
            if js_length(content) > TEXT_LIMIT:
                return (
                    f"{at}[{index}].text.content.length should be ≤ `{TEXT_LIMIT}`, "
                    f"instead was `{js_length(content)}`."
                )
    if kind == "date" and isinstance(raw, dict):
        for key in ("start", "end"):
            value = raw.get(key)
            if value is not None and not _iso_8601(value):
                return f"{at}.{key} should be a valid ISO 8601 date string, instead was `{value}`."
    return None


def _iso_8601(value: Any) -> bool:
    if not isinstance(value, str) or len(value) < 10 or value[4] != "-":
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_FILTER_KINDS = ("rich_text", "title", "number", "date", "select", "checkbox")


def strict_filter(condition: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """Why Notion refuses this query filter, or None: a property condition's type must be the
    property's own type (a `number` filter on a rich_text property is refused)."""
    for group in ("and", "or"):
        if group in condition:
            for inner in condition[group]:
                problem = strict_filter(inner, schema)
                if problem is not None:
                    return problem
            return None
    name = condition.get("property")
    if name not in schema:
        return None  # answered as an unknown property elsewhere
    kind = schema[name]["type"]
    used = [k for k in _FILTER_KINDS if k in condition]
    if used and used[0] != kind:
        return f"database property {kind} does not match filter {used[0]}"
    return None


@dataclass
class Fault:
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    on: str | None = None  # only for a request whose path holds this ("/query"); None: any


class FakeNotion:
    """State and faults of the fake; `with FakeNotion.serve(token) as fake:` gives `fake.url`."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.url = ""
        self.databases: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, dict[str, Any]] = {}
        self.pages: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.down = False
        self.delay = 0.0  # seconds every answer takes (a slow or hanging Notion)
        self.requests: list[tuple[float, str, str]] = []  # (monotonic time, method, path)
        self.after_write: Callable[[], None] | None = None  # runs after a page is created/updated
        self.rate_limit = (30, 10.0)  # requests per seconds (Notion: 3 a second, with bursts)
        self.rate_limited = 0  # 429s answered
        self.payload_limit = 500_000  # bytes per request body (Notion: 500KB overall)
        self.largest_body = 0  # bytes of the largest request body received
        self._times: list[float] = []
        self.lock = threading.Lock()

    # setting up -----------------------------------------------------------------------------

    def add_database(self, title: str = "KPIs", sources: tuple[str, ...] = ("KPIs",)) -> str:
        database = _uuid()
        ids = []
        for name in sources:
            source = _uuid()
            self.sources[source] = {
                "name": name,
                "database_id": database,
                "properties": {
                    "Name": {"id": "title", "name": "Name", "type": "title", "title": {}}
                },
            }
            ids.append(source)
        self.databases[database] = {"title": title, "sources": ids}
        return _bare(database)

    def source_of(self, database: str) -> str:
        return next(iter(self.databases[self._find(self.databases, database)]["sources"]))

    def fail_next(
        self,
        status: int,
        code: str,
        message: str,
        times: int = 1,
        headers: dict[str, str] | None = None,
        on: str | None = None,
    ) -> None:
        """Answer the next `times` requests (whose path holds `on`, if given) with
        Notion's error object of `status` and `code`; a `status` of 200 is an error object
        in a 200 answer (a gateway that passes an error on as a success)."""
        self.faults += [Fault(status, code, message, dict(headers or {}), on)] * times

    # reading back ---------------------------------------------------------------------------

    def rows(self, database: str) -> list[dict[str, Any]]:
        """Every live page of the database's first data source as {property: plain value}."""
        source = self.source_of(database)
        out = []
        for page in self.pages.values():
            if page["source"] != source or page["in_trash"]:
                continue
            row: dict[str, Any] = {}
            for name, value in page["properties"].items():
                kind = value["type"]
                raw = value[kind]
                if kind in ("title", "rich_text"):
                    row[name] = "".join(p["plain_text"] for p in raw)
                elif kind == "date":
                    row[name] = raw["start"] if raw else None
                else:
                    row[name] = raw
            out.append(row)
        return out

    def schema(self, database: str) -> dict[str, str]:
        return {
            n: p["type"] for n, p in self.sources[self.source_of(database)]["properties"].items()
        }

    # the app --------------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def serve(cls, token: str) -> Iterator[FakeNotion]:
        fake = cls(token)
        with BackgroundServer(fake.app()) as url:
            fake.url = url
            yield fake

    def app(self) -> web.Application:
        # a body over the limit still reaches `_middleware`, which answers as Notion does
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 2**20)
        app.router.add_get("/v1/databases/{id}", self._get_database)
        app.router.add_get("/v1/data_sources/{id}", self._get_source)
        app.router.add_patch("/v1/data_sources/{id}", self._patch_source)
        app.router.add_post("/v1/data_sources/{id}/query", self._query)
        app.router.add_post("/v1/pages", self._create_page)
        app.router.add_patch("/v1/pages/{id}", self._patch_page)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((time.monotonic(), request.method, request.path))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            return error(
                503, "service_unavailable", "Notion is unavailable, please try again later."
            )
        fault = next((f for f in self.faults if f.on is None or f.on in request.path), None)
        if fault is not None:
            self.faults.remove(fault)
            return error(fault.status, fault.code, fault.message, fault.headers)
        wait = self._rate_limited()
        if wait is not None:
            return error(
                429,
                "rate_limited",
                "You have been rate limited. Please try again in a few minutes.",
                {"Retry-After": str(wait)},
            )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return error(401, "unauthorized", "API token is invalid.")
        version = request.headers.get("Notion-Version")
        if version is None:
            return error(
                400,
                "missing_version",
                "Notion-Version header failed validation: "
                "Notion-Version header should be defined, instead was `undefined`.",
            )
        if version != VERSION:
            return error(400, "validation_error", f"this fake speaks Notion-Version {VERSION}")
        if request.method in ("POST", "PATCH"):
            raw = await request.read()
            self.largest_body = max(self.largest_body, len(raw))
            if len(raw) > self.payload_limit:
                return error(
                    400,
                    "validation_error",
                    "body failed validation: body.length should be ≤ "
                    f"`{self.payload_limit}`, instead was `{len(raw)}`.",
                )
            try:
                request[BODY] = json.loads(raw.decode() or "{}")
            except ValueError:
                return error(400, "invalid_json", "Error parsing JSON body.")
        with self.lock:
            return await handler(request)

    def _rate_limited(self) -> int | None:
        """None when the request may go (it is counted), else the whole seconds to wait."""
        wait = rate_wait(self._times, self.rate_limit)
        if wait is None:
            return None
        self.rate_limited += 1
        return max(1, math.ceil(wait))

    @staticmethod
    def _find(table: dict[str, Any], raw: str) -> str:
        for key in table:
            if _bare(key) == _bare(raw):
                return key
        raise KeyError(raw)

    def _not_found(self, kind: str, raw: str) -> web.Response:
        return error(
            404,
            "object_not_found",
            f"Could not find {kind} with ID: {raw}. Make sure the relevant pages and "
            "databases are shared with your integration.",
        )

    def _source_object(self, source_id: str) -> dict[str, Any]:
        source = self.sources[source_id]
        return {
            "object": "data_source",
            "id": source_id,
            "created_time": _now(),
            "last_edited_time": _now(),
            "properties": source["properties"],
            "parent": {"type": "database_id", "database_id": source["database_id"]},
            "database_parent": {"type": "page_id", "page_id": _uuid()},
            "archived": False,
            "in_trash": False,
            "is_inline": False,
            "title": rich_text(source["name"]),
            "description": [],
            "icon": None,
            "cover": None,
            "url": f"https://www.notion.so/{_bare(source_id)}",
            "public_url": None,
        }

    async def _get_database(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        try:
            database_id = self._find(self.databases, raw)
        except KeyError:
            return self._not_found("database", raw)
        database = self.databases[database_id]
        return web.json_response(
            {
                "object": "database",
                "id": database_id,
                "title": rich_text(database["title"]),
                "description": [],
                "parent": {"type": "page_id", "page_id": _uuid()},
                "is_inline": False,
                "in_trash": False,
                "is_locked": False,
                "created_time": _now(),
                "last_edited_time": _now(),
                "data_sources": [
                    {"id": s, "name": self.sources[s]["name"]} for s in database["sources"]
                ],
                "icon": None,
                "cover": None,
                "url": f"https://www.notion.so/{_bare(database_id)}",
                "public_url": None,
            }
        )

    async def _get_source(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        try:
            return web.json_response(self._source_object(self._find(self.sources, raw)))
        except KeyError:
            return self._not_found("data_source", raw)

    async def _patch_source(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        try:
            source_id = self._find(self.sources, raw)
        except KeyError:
            return self._not_found("data_source", raw)
        properties = self.sources[source_id]["properties"]
        for name, schema in (request[BODY].get("properties") or {}).items():
            if schema is None:
                properties.pop(name, None)
                continue
            kinds = [k for k in schema if k not in ("name", "description")]
            if len(kinds) != 1 or kinds[0] not in (
                "number",
                "date",
                "rich_text",
                "title",
                "select",
            ):
                return error(
                    400, "validation_error", f"body.properties.{name} should be a property schema"
                )
            kind = kinds[0]
            if kind == "title" and any(p["type"] == "title" for p in properties.values()):
                return error(400, "validation_error", "Cannot create new title property.")
            properties[name] = {
                "id": uuid.uuid4().hex[:4],
                "name": name,
                "type": kind,
                kind: schema[kind] or ({"format": "number"} if kind == "number" else {}),
            }
        return web.json_response(self._source_object(source_id))

    def _page_object(self, page_id: str) -> dict[str, Any]:
        page = self.pages[page_id]
        source = self.sources[page["source"]]
        return {
            "object": "page",
            "id": page_id,
            "created_time": page["created_time"],
            "last_edited_time": page["last_edited_time"],
            "created_by": {"object": "user", "id": "bot-1"},
            "last_edited_by": {"object": "user", "id": "bot-1"},
            "cover": None,
            "icon": None,
            "parent": {
                "type": "data_source_id",
                "data_source_id": page["source"],
                "database_id": source["database_id"],
            },
            "archived": page["in_trash"],
            "in_trash": page["in_trash"],
            "properties": page["properties"],
            "url": f"https://www.notion.so/{_bare(page_id)}",
            "public_url": None,
        }

    def _values(self, source_id: str, given: dict[str, Any]) -> dict[str, Any] | web.Response:
        """Validate property values against the schema; return them in response shape."""
        schema = self.sources[source_id]["properties"]
        out = {}
        for name, value in given.items():
            if name not in schema:
                return error(400, "validation_error", f"{name} is not a property that exists.")
            kind = schema[name]["type"]
            if not isinstance(value, dict) or kind not in value:
                return error(400, "validation_error", f"{name} is expected to be {kind}.")
            raw = value[kind]
            problem = strict_value(name, kind, raw)
            if problem is not None:
                return error(400, "validation_error", problem)
            if kind in ("title", "rich_text"):
                where = f"body.properties.{name}.{kind}"
                if len(raw) > 100:
                    return error(
                        400,
                        "validation_error",
                        f"body failed validation: {where}.length should be ≤ `100`, "
                        f"instead was `{len(raw)}`.",
                    )
                for index, part in enumerate(raw):
                    length = js_length(part.get("text", {}).get("content", ""))
                    if length > 2000:
                        return error(
                            400,
                            "validation_error",
                            f"body failed validation: {where}[{index}].text.content.length "
                            f"should be ≤ `2000`, instead was `{length}`.",
                        )
                raw = rich_text("".join(p.get("text", {}).get("content", "") for p in raw))
            elif kind == "number" and raw is not None and not isinstance(raw, int | float):
                return error(400, "validation_error", f"{name} is expected to be number.")
            elif kind == "date" and raw is not None and "start" not in raw:
                return error(400, "validation_error", f"{name}.date.start should be defined.")
            if kind == "date" and raw is not None:
                raw = {"start": raw["start"], "end": raw.get("end"), "time_zone": None}
            out[name] = {"id": schema[name]["id"], "type": kind, kind: raw}
        return out

    async def _create_page(self, request: web.Request) -> web.Response:
        body = request[BODY]
        parent = body.get("parent") or {}
        if "data_source_id" not in parent:
            return error(
                400,
                "validation_error",
                "body.parent.data_source_id should be defined (API version 2025-09-03).",
            )
        try:
            source_id = self._find(self.sources, parent["data_source_id"])
        except KeyError:
            return self._not_found("data_source", parent["data_source_id"])
        values = self._values(source_id, body.get("properties") or {})
        if isinstance(values, web.Response):
            return values
        page_id = _uuid()
        title = next(
            n for n, p in self.sources[source_id]["properties"].items() if p["type"] == "title"
        )
        values.setdefault(title, {"id": "title", "type": "title", "title": []})
        self.pages[page_id] = {
            "source": source_id,
            "properties": values,
            "in_trash": False,
            "created_time": _now(),
            "last_edited_time": _now(),
        }
        self._written()
        return web.json_response(self._page_object(page_id))

    async def _patch_page(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        try:
            page_id = self._find(self.pages, raw)
        except KeyError:
            return self._not_found("page", raw)
        page = self.pages[page_id]
        values = self._values(page["source"], request[BODY].get("properties") or {})
        if isinstance(values, web.Response):
            return values
        page["properties"].update(values)
        page["last_edited_time"] = _now()
        self._written()
        return web.json_response(self._page_object(page_id))

    def _written(self) -> None:
        if self.after_write is not None:
            hook, self.after_write = self.after_write, None
            hook()

    def _matches(self, page: dict[str, Any], condition: dict[str, Any]) -> bool:
        if "and" in condition:
            return all(self._matches(page, c) for c in condition["and"])
        if "or" in condition:
            return any(self._matches(page, c) for c in condition["or"])
        value = page["properties"].get(condition["property"])
        for kind in ("rich_text", "title", "number", "date"):
            if kind in condition:
                test = condition[kind]
                if value is None:
                    return "is_empty" in test
                raw = value[value["type"]]
                if kind in ("rich_text", "title"):
                    raw = "".join(p["plain_text"] for p in raw)
                elif kind == "date":
                    raw = raw["start"] if raw else None
                if "equals" in test:
                    return bool(raw == test["equals"])
                if "is_empty" in test:
                    return raw in (None, "", [])
        raise ValueError(f"unsupported filter {condition}")

    async def _query(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        try:
            source_id = self._find(self.sources, raw)
        except KeyError:
            return self._not_found("data_source", raw)
        body = request[BODY]
        size = int(body.get("page_size") or 100)
        if not 1 <= size <= 100:
            return error(400, "validation_error", "body.page_size should be ≤ 100")
        condition = body.get("filter")
        schema = self.sources[source_id]["properties"]
        if condition and "property" in condition and condition["property"] not in schema:
            return error(
                400,
                "validation_error",
                f"Could not find property with name or id: {condition['property']}",
            )
        problem = strict_filter(condition, schema) if condition else None
        if problem is not None:
            return error(400, "validation_error", problem)
        try:
            matching = [
                pid
                for pid, page in self.pages.items()
                if page["source"] == source_id
                and not page["in_trash"]
                and (not condition or self._matches(page, condition))
            ]
        except ValueError as exc:
            return error(400, "validation_error", str(exc))
        start = 0
        if body.get("start_cursor"):
            if body["start_cursor"] not in matching:
                return error(
                    400,
                    "validation_error",
                    f"body failed validation: body.start_cursor should be a valid cursor, "
                    f"instead was `{body['start_cursor']}`.",
                )
            start = matching.index(body["start_cursor"])
        chunk = matching[start : start + size]
        rest = matching[start + size :]
        return web.json_response(
            {
                "object": "list",
                "results": [self._page_object(p) for p in chunk],
                "next_cursor": rest[0] if rest else None,
                "has_more": bool(rest),
                "type": "page_or_data_source",
                "page_or_data_source": {},
                "request_id": _uuid(),
            }
        )
