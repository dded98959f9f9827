"""A local Google Sheets API v4 (and OAuth token endpoint) for tests.

Implements what gspread's HTTPClient calls: `GET /v4/spreadsheets/{id}` (metadata),
`GET|PUT /v4/spreadsheets/{id}/values/{range}`, `POST …/values/{range}:append`,
`POST …/values:batchUpdate` (several ranges in one write, all or none) and
`POST /v4/spreadsheets/{id}:batchUpdate` (addSheet, updateSheetProperties), with the API's
value input options (RAW stores text as sent; USER_ENTERED parses it as typed, "=..." becoming
a `Formula`), grid limits, error shape `{"error": {"code", "message", "status"}}` and the quota of write
requests per minute per user (`write_limit`, Sheets': 60 a minute; beyond it 429
RESOURCE_EXHAUSTED, without Retry-After). `POST /token` checks the service account's signed
JWT assertion and hands out a bearer token.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from kpi_collector.destinations._fake import rate_wait
from kpi_collector.sources._fake import BackgroundServer, google_service_account

WRITE_QUOTA = (
    "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute "
    "per user' of service 'sheets.googleapis.com' for consumer 'project_number:1234'."
)
_A1 = re.compile(r"^(?:'((?:[^']|'')+)'|([^!]+))(?:!([A-Z]+)?(\d+)?(?::([A-Z]+)?(\d+)?)?)?$")


def service_account(
    token_uri: str, email: str = "kpi-bot@project.iam.gserviceaccount.com"
) -> dict[str, Any]:
    """A service account key with a fresh RSA key, its token endpoint at `token_uri`."""
    return google_service_account(token_uri, email, "project")


def _column(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def error(code: int, message: str, status: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "status": status}}, status=code
    )


class FakeSheets:
    def __init__(self) -> None:
        self.url = ""
        self.tokens: set[str] = set()
        self.spreadsheets: dict[str, list[dict[str, Any]]] = {}
        self.down = False
        self.token_requests = 0
        #: answers for the next Sheets API requests: (HTTP status, message, status name), and
        #: optionally a text the request's path must hold; a status of 200 answers Google's
        #: error object with a 200 (a gateway that passes an error on as a success)
        self.faults: list[tuple[int, str, str] | tuple[int, str, str, str]] = []
        self.write_limit = (60, 60.0)  # write requests per seconds (Sheets: 60 a minute)
        self.writes = 0  # write requests carried out
        self._write_times: list[float] = []

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def add_spreadsheet(self, title: str = "Sheet1") -> str:
        key = "1" + secrets.token_urlsafe(30).replace("-", "a").replace("_", "b")
        self.spreadsheets[key] = [self._sheet(0, title)]
        return key

    @staticmethod
    def _sheet(sheet_id: int, title: str) -> dict[str, Any]:
        return {"sheetId": sheet_id, "title": title, "rows": 1000, "cols": 26, "values": []}

    def values(self, key: str, title: str) -> list[list[Any]]:
        return next(s for s in self.spreadsheets[key] if s["title"] == title)["values"]

    @classmethod
    @contextmanager
    def serve(cls) -> Iterator[FakeSheets]:
        fake = cls()
        with BackgroundServer(fake.app()) as url:
            fake.url = url
            yield fake

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/token", self._token)
        app.router.add_route("*", "/v4/spreadsheets/{rest:.*}", self._sheets)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down and request.path.startswith("/v4/"):  # the Sheets API, not Google's sign-in
            return error(503, "The service is currently unavailable.", "UNAVAILABLE")
        fault = (
            next((f for f in self.faults if len(f) == 3 or f[3] in request.path), None)
            if request.path.startswith("/v4/")
            else None
        )
        if fault is not None:
            self.faults.remove(fault)
            return error(*fault[:3])
        if request.path.startswith("/v4/") and request.method in ("POST", "PUT"):
            if rate_wait(self._write_times, self.write_limit) is not None:
                return error(429, WRITE_QUOTA, "RESOURCE_EXHAUSTED")
            self.writes += 1
        return await handler(request)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests += 1
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        assertion = str(form.get("assertion") or "")
        if assertion.count(".") != 2:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT"}, status=400
            )
        token = "ya29." + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        )

    async def _sheets(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.tokens:
            return error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
        rest = unquote(request.match_info["rest"])
        key, _, tail = rest.partition("/")
        action = None
        if ":" in key:
            key, action = key.split(":", 1)
        if key not in self.spreadsheets:
            return error(404, "Requested entity was not found.", "NOT_FOUND")
        sheets = self.spreadsheets[key]
        if not tail and action is None and request.method == "GET":
            return web.json_response(
                {
                    "spreadsheetId": key,
                    "properties": {"title": "KPIs", "locale": "en_US", "timeZone": "Etc/GMT"},
                    "sheets": [
                        {
                            "properties": {
                                "sheetId": s["sheetId"],
                                "title": s["title"],
                                "index": i,
                                "sheetType": "GRID",
                                "gridProperties": {"rowCount": s["rows"], "columnCount": s["cols"]},
                            }
                        }
                        for i, s in enumerate(sheets)
                    ],
                    "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{key}/edit",
                }
            )
        if action == "batchUpdate" and request.method == "POST":
            return await self._batch_update(request, key, sheets)
        if tail == "values:batchUpdate" and request.method == "POST":
            return await self._values_batch_update(request, key, sheets)
        if tail.startswith("values/"):
            return await self._values(request, key, sheets, tail.removeprefix("values/"))
        return error(404, "Method not found.", "NOT_FOUND")

    async def _batch_update(
        self, request: web.Request, key: str, sheets: list[dict[str, Any]]
    ) -> web.Response:
        body = await request.json()
        replies: list[dict[str, Any]] = []
        for item in body.get("requests", []):
            if "addSheet" in item:
                props = item["addSheet"].get("properties", {})
                title = props.get("title") or f"Sheet{len(sheets) + 1}"
                if any(s["title"] == title for s in sheets):
                    return error(
                        400,
                        f'Invalid requests[0].addSheet: A sheet with the name "{title}" '
                        "already exists. Please enter another name.",
                        "INVALID_ARGUMENT",
                    )
                sheet = self._sheet(max(s["sheetId"] for s in sheets) + 1, title)
                grid = props.get("gridProperties") or {}
                sheet["rows"], sheet["cols"] = (
                    grid.get("rowCount", 1000),
                    grid.get("columnCount", 26),
                )
                sheets.append(sheet)
                replies.append(
                    {"addSheet": {"properties": {"sheetId": sheet["sheetId"], "title": title}}}
                )
            elif "updateSheetProperties" in item:
                props = item["updateSheetProperties"]["properties"]
                sheet = next(s for s in sheets if s["sheetId"] == props["sheetId"])
                grid = props.get("gridProperties") or {}
                sheet["rows"] = grid.get("rowCount", sheet["rows"])
                sheet["cols"] = grid.get("columnCount", sheet["cols"])
                replies.append({})
            else:
                return error(400, "Invalid request: unsupported in this fake", "INVALID_ARGUMENT")
        return web.json_response({"spreadsheetId": key, "replies": replies})

    async def _values(
        self, request: web.Request, key: str, sheets: list[dict[str, Any]], spec: str
    ) -> web.Response:
        append = spec.endswith(":append")
        spec = spec.removesuffix(":append")
        if request.method == "GET":
            found = self._range(sheets, spec)
            if isinstance(found, web.Response):
                return found
            sheet = found[0]
            # a formula's cell reads as its result, but with valueRenderOption=FORMULA
            formulas = request.query.get("valueRenderOption") == "FORMULA"
            out = [
                [c if formulas or not isinstance(c, Formula) else c.result for c in r]
                for r in sheet["values"]
            ]
            body: dict[str, Any] = {
                "range": f"'{sheet['title']}'!A1:Z{sheet['rows']}",
                "majorDimension": "ROWS",
            }
            if out:
                body["values"] = out
            return web.json_response(body)
        option = request.query.get("valueInputOption")
        written = self._write(
            key, sheets, spec, (await request.json()).get("values", []), option, append=append
        )
        if isinstance(written, web.Response):
            return written
        if append:
            return web.json_response(
                {
                    "spreadsheetId": key,
                    "tableRange": written["updatedRange"].split("!")[0] + "!A1",
                    "updates": written,
                }
            )
        return web.json_response(written)

    async def _values_batch_update(
        self, request: web.Request, key: str, sheets: list[dict[str, Any]]
    ) -> web.Response:
        """Every range of `data` written, or none (a range refused refuses the request)."""
        body = await request.json()
        option = body.get("valueInputOption")
        saved = [[list(r) for r in s["values"]] for s in sheets], [s["rows"] for s in sheets]
        responses = []
        for item in body.get("data", []):
            written = self._write(
                key, sheets, item.get("range", ""), item.get("values", []), option
            )
            if isinstance(written, web.Response):
                for sheet, values, rows in zip(sheets, *saved, strict=True):
                    sheet["values"], sheet["rows"] = values, rows
                return written
            responses.append(written)
        return web.json_response(
            {
                "spreadsheetId": key,
                "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
                "totalUpdatedColumns": max((r["updatedColumns"] for r in responses), default=0),
                "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
                "totalUpdatedSheets": len({r["updatedRange"].split("!")[0] for r in responses}),
                "responses": responses,
            }
        )

    @staticmethod
    def _range(
        sheets: list[dict[str, Any]], spec: str
    ) -> tuple[dict[str, Any], int, int] | web.Response:
        """The sheet, first column and first row (0-based) of an A1 range."""
        match = _A1.match(spec)
        if not match:
            return error(400, f"Unable to parse range: {spec}", "INVALID_ARGUMENT")
        title = (match.group(1) or match.group(2)).replace("''", "'")
        sheet = next((s for s in sheets if s["title"] == title), None)
        if sheet is None:
            return error(400, f"Unable to parse range: {spec}", "INVALID_ARGUMENT")
        col = _column(match.group(3)) if match.group(3) else 0
        row = int(match.group(4)) - 1 if match.group(4) else 0
        return sheet, col, row

    def _write(
        self,
        key: str,
        sheets: list[dict[str, Any]],
        spec: str,
        new: list[list[Any]],
        option: str | None,
        *,
        append: bool = False,
    ) -> dict[str, Any] | web.Response:
        """Write `new` at `spec` (after the last row for `append`): the update's answer."""
        found = self._range(sheets, spec)
        if isinstance(found, web.Response):
            return found
        sheet, col, row = found
        title = sheet["title"]
        if option not in ("RAW", "USER_ENTERED"):
            return error(
                400, "'valueInputOption' is required but not specified", "INVALID_ARGUMENT"
            )
        if option == "USER_ENTERED":
            # parsed as if typed into a cell: "=..." (and "+", "-", "@" before a formula)
            # becomes a formula, which is what the cell holds from then on
            new = [[_as_typed(cell) for cell in cells] for cells in new]
        values: list[list[Any]] = sheet["values"]
        if append:
            row, col = len(values), 0
            sheet["rows"] = max(sheet["rows"], row + len(new))
        width = max((len(r) for r in new), default=0)
        if col + width > sheet["cols"] or row + len(new) > sheet["rows"]:
            return error(
                400,
                f"Range ('{title}'!{spec.split('!')[-1]}) exceeds grid limits. Max rows: "
                f"{sheet['rows']}, max columns: {sheet['cols']}",
                "INVALID_ARGUMENT",
            )
        for i, cells in enumerate(new):
            while len(values) <= row + i:
                values.append([])
            target = values[row + i]
            while len(target) < col + len(cells):
                target.append("")
            for j, cell in enumerate(cells):
                target[col + j] = cell
        for r in values:  # the API returns rows without trailing empty cells
            while r and r[-1] in ("", None):
                r.pop()
        return {
            "spreadsheetId": key,
            "updatedRange": f"'{title}'!A{row + 1}",
            "updatedRows": len(new),
            "updatedColumns": width,
            "updatedCells": sum(len(r) for r in new),
        }


class Formula(str):
    """A cell that holds a formula (written with USER_ENTERED), not the text it was sent as;
    a read of values gives its `result` (this fake computes none: a test that puts a formula
    in a sheet gives it), a read with valueRenderOption=FORMULA the formula."""

    result: Any

    def __new__(cls, text: str, result: Any = "") -> Formula:
        cell = super().__new__(cls, text)
        cell.result = result
        return cell


def _as_typed(cell: Any) -> Any:
    """A cell as the Sheets UI parses what is typed into it (USER_ENTERED): a text starting
    with `=`, or with `+`, `-` or `@` that is no plain number, is a formula."""
    if not isinstance(cell, str) or not cell:
        return cell
    if cell[0] == "=" or (cell[0] in "+-@" and not re.fullmatch(r"[-+]?\d+(\.\d*)?", cell)):
        return Formula(cell)
    return cell


def dumps(info: dict[str, Any]) -> str:
    return json.dumps(info)
