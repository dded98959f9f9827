"""`type: google_sheets`: a worksheet with a header row of KPI titles and one row per period
(or per KPI and period with `layout: long`), through gspread and a service account.

    - type: google_sheets
      spreadsheet: https://docs.google.com/spreadsheets/d/1AbC.../edit   # or the key
      worksheet: KPIs                                 # created when missing
      credentials: "${GOOGLE_SERVICE_ACCOUNT_JSON}"    # the JSON key itself, or a path to it
      every: day

Share the spreadsheet with the service account's `client_email`. A re-run finds its period's
row by the `Period` column and rewrites it; new KPIs add columns to the header.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import field_validator

from kpi_collector.destinations.base import (
    Delivery,
    TableDestination,
    delivery_error,
    refuse_name_collision,
)
from kpi_collector.errors import DeliveryError
from kpi_collector.secrets import Secret, redact

if TYPE_CHECKING:
    from gspread import HTTPClient

SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
GOOGLE_SHEETS = "https://sheets.googleapis.com"
_KEY = re.compile(r"/spreadsheets/d/([A-Za-z0-9_-]+)")
WIDE_HEADER = ["Period", "Date"]
LONG_HEADER = ["Period", "Date", "KPI", "Title", "Value"]


class GoogleSheets(TableDestination):
    type: ClassVar[str] = "google_sheets"
    name_kind: ClassVar[str] = "column"
    name_fix: ClassVar[str] = "give one of them another title in `kpis:`"

    spreadsheet: str
    worksheet: str = "KPIs"
    credentials: Secret
    api_url: str = GOOGLE_SHEETS

    @field_validator("spreadsheet")
    @classmethod
    def _key(cls, value: str) -> str:
        found = _KEY.search(value)
        key = found.group(1) if found else value.strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]{10,}", key):
            raise ValueError(f"{value!r} is not a spreadsheet key or URL")
        return key

    def kpi_names(self, kpis: Sequence[str], titles: Mapping[str, str]) -> dict[str, str]:
        """wide: {kpi: header}, the column headed by the KPI's title (else its id); long
        names nothing by KPI (one row per KPI)."""
        if self.layout == "long":
            return {}
        return {kpi: titles.get(kpi) or kpi for kpi in kpis}

    def reserved_names(self) -> frozenset[str]:
        """wide: the `Period` and `Date` columns."""
        return frozenset(WIDE_HEADER) if self.layout == "wide" else frozenset()

    async def deliver(self, delivery: Delivery) -> None:
        refuse_name_collision(self, delivery)  # the config's own KPIs are checked at load
        await asyncio.to_thread(self._deliver_mapped, delivery)

    # the client ------------------------------------------------------------------------------

    def service_account(self) -> dict[str, Any]:
        text = self.credentials.get().strip()
        try:
            if not text.startswith("{"):
                text = Path(text).expanduser().read_text(encoding="utf-8")
            info = json.loads(text)
        except OSError as exc:
            raise delivery_error(
                f"cannot read the credentials file: {exc.strerror}", transient=False
            ) from None
        except ValueError:
            raise delivery_error(
                "credentials is not a service account JSON key (or a path to one)", transient=False
            ) from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise delivery_error(
                'credentials must be a service account key ("type": "service_account")',
                transient=False,
            )
        if "private_key" in info:
            from kpi_collector.secrets import remember

            remember(str(info["private_key"]))
        return info

    def client(self) -> HTTPClient:
        from google.oauth2.service_account import Credentials
        from gspread import HTTPClient

        base = self.api_url.rstrip("/")

        class _Http(HTTPClient):
            """gspread's client, its Sheets API URLs pointed at `api_url`."""

            def request(self, method: str, endpoint: str, *args: Any, **kwargs: Any) -> Any:
                if endpoint.startswith(GOOGLE_SHEETS):
                    endpoint = base + endpoint[len(GOOGLE_SHEETS) :]
                response = super().request(method, endpoint, *args, **kwargs)
                # a read of values answers its `range`, everything else its spreadsheetId
                reads = method.lower() == "get" and "/values/" in endpoint
                _check_answer(response, "range" if reads else "spreadsheetId")
                return response

        try:
            credentials = Credentials.from_service_account_info(
                self.service_account(), scopes=SCOPES
            )
        except (ValueError, KeyError) as exc:
            raise delivery_error(
                f"the service account key is incomplete ({redact(str(exc))[:100]})", transient=False
            ) from None
        http = _Http(credentials)
        http.set_timeout(self.timeout)
        return http

    # delivering ------------------------------------------------------------------------------

    def _deliver_mapped(self, delivery: Delivery) -> None:
        try:
            self._deliver(delivery)
        except DeliveryError:
            raise
        except Exception as exc:
            raise _error(exc) from None

    def _deliver(self, delivery: Delivery) -> None:
        http = self.client()
        key = self.spreadsheet
        self._ensure_worksheet(http, key)
        sheet = _quote(self.worksheet)
        answer = http.values_get(key, sheet, params={"valueRenderOption": "UNFORMATTED_VALUE"})
        values: list[list[Any]] = answer.get("values", [])
        header = [str(c) for c in values[0]] if values else []
        long = self.layout == "long"
        base = LONG_HEADER if long else WIDE_HEADER
        wanted = base if long else base + [delivery.title(k) for k in delivery.ordered]
        columns = list(header or base)
        if header and header[: len(base)] != base:
            raise delivery_error(
                f"the worksheet {self.worksheet!r} does not start with the columns "
                f"{', '.join(base)}: choose an empty worksheet",
                transient=False,
            )
        columns += [c for c in wanted if c not in columns]
        if columns != header:
            self._ensure_columns(http, key, len(columns))
            http.values_update(
                key, f"{sheet}!A1", params={"valueInputOption": "RAW"}, body={"values": [columns]}
            )
        index = {name: i for i, name in enumerate(columns)}
        where: dict[tuple[str, ...], int] = {}
        for number, row in enumerate(values[1:], start=2):
            cells = [str(c) for c in row] + [""] * len(columns)
            ident = (cells[0], cells[2]) if long else (cells[0],)
            where.setdefault(ident, number)
        appended: list[list[Any]] = []
        updated: list[dict[str, Any]] = []
        for record in self._records(delivery):
            ident = (record["Period"], record["KPI"]) if long else (record["Period"],)
            found = where.get(ident)
            if found:
                # the row's own cells only: a cell of another column (a user's formula, a
                # note, a KPI not in this run) is left as it is; the row as read holds a
                # formula's result, and written back it replaced the formula for good
                owned = {index[name]: value for name, value in record.items()}
                updated += [
                    {"range": f"{sheet}!{_letters(first)}{found}", "values": [run]}
                    for first, run in _runs(owned)
                ]
            else:
                new: list[Any] = [""] * len(columns)
                for name, value in record.items():
                    new[index[name]] = value
                appended.append(new)
        if updated:
            # one write request for every row of the period: a request per row was over
            # Sheets' 60 writes a minute for a long layout's many KPIs, and a retry began again
            # from the first row, so such a period never went through
            http.values_batch_update(key, body={"valueInputOption": "RAW", "data": updated})
        if appended:
            http.values_append(
                key,
                f"{sheet}!A1",
                params={"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"},
                body={"values": appended},
            )

    def _records(self, delivery: Delivery) -> list[dict[str, Any]]:
        common = {"Period": delivery.row_period, "Date": delivery.period_start.isoformat()}
        if self.layout == "long":
            return [
                {**common, "KPI": k, "Title": delivery.title(k), "Value": delivery.values[k]}
                for k in delivery.ordered
            ]
        return [{**common, **{delivery.title(k): delivery.values[k] for k in delivery.ordered}}]

    def _sheet(self, http: HTTPClient, key: str) -> dict[str, Any] | None:
        meta = http.fetch_sheet_metadata(key)
        for sheet in meta.get("sheets", []):
            if sheet["properties"]["title"] == self.worksheet:
                properties: dict[str, Any] = sheet["properties"]
                return properties
        return None

    def _ensure_worksheet(self, http: HTTPClient, key: str) -> None:
        if self._sheet(http, key) is None:
            http.batch_update(
                key,
                {
                    "requests": [
                        {
                            "addSheet": {
                                "properties": {
                                    "title": self.worksheet,
                                    "gridProperties": {"rowCount": 1000, "columnCount": 26},
                                }
                            }
                        }
                    ]
                },
            )

    def _ensure_columns(self, http: HTTPClient, key: str, count: int) -> None:
        sheet = self._sheet(http, key)
        if sheet is None or sheet["gridProperties"].get("columnCount", 0) >= count:
            return
        http.batch_update(
            key,
            {
                "requests": [
                    {
                        "updateSheetProperties": {
                            "properties": {
                                "sheetId": sheet["sheetId"],
                                "gridProperties": {"columnCount": count},
                            },
                            "fields": "gridProperties/columnCount",
                        }
                    }
                ]
            },
        )


#: Google's status names of errors a retry may get past
_TRANSIENT_STATUS = frozenset(
    {"INTERNAL", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED"}
)


def _check_answer(response: Any, key: str) -> None:
    """Raise a DeliveryError unless the 2xx `response` is the answer asked for (its JSON holds
    `key`): read as one, Google's error object passed on with a 200 (by a gateway) made a
    read look like an empty sheet (its header written again over the first row, the
    period's rows appended twice) and a write look done. An error object is that error
    (transient by its status name); anything else is no success."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and key in answer and "error" not in answer:
        return
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        status = str(error.get("status") or "")
        message = redact(str(error.get("message") or ""))[:300]
        raise delivery_error(
            f"Google Sheets answered HTTP {response.status_code} with its error object "
            f"{status} ({message}): nothing is taken as done",
            transient=status in _TRANSIENT_STATUS,
        )
    came = "no JSON" if answer is None else "JSON without its " + key
    raise delivery_error(
        f"Google Sheets answered HTTP {response.status_code} with {came}, not the Sheets API's "
        "answer: check api_url (and that no proxy stands between)",
        transient=False,
    )


def _runs(cells: Mapping[int, Any]) -> list[tuple[int, list[Any]]]:
    """{column index: value} as runs of neighbouring columns: [(first index, values)]."""
    runs: list[tuple[int, list[Any]]] = []
    for column in sorted(cells):
        if runs and runs[-1][0] + len(runs[-1][1]) == column:
            runs[-1][1].append(cells[column])
        else:
            runs.append((column, [cells[column]]))
    return runs


def _letters(column: int) -> str:
    """A 0-based column index as A1 letters: 0 → A, 25 → Z, 26 → AA."""
    letters = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _quote(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def _error(exc: Exception) -> DeliveryError:
    """gspread, google-auth and requests errors as DeliveryErrors that say what to do."""
    from google.auth import exceptions as auth_errors
    from gspread.exceptions import APIError

    if isinstance(exc, APIError):
        code = int(exc.code) if str(exc.code).lstrip("-").isdigit() else 0
        status = exc.response.status_code
        message = redact(str(exc.error.get("message", "")))[:300]
        hints = {
            400: "the Sheets API refused the request",
            401: "the service account key was refused: create a new key",
            403: "share the spreadsheet with the service account's client_email (as an editor)",
            404: "no such spreadsheet: check `spreadsheet`",
            429: "rate limited by the Sheets API (its per-minute quota), will retry",
        }
        hint = hints.get(status) or (
            "Google Sheets had a server error, will retry"
            if status >= 500
            else "the Sheets API refused the request"
        )
        transient = status == 429 or status >= 500
        retry_after = None
        if status == 429:
            from kpi_collector.collect.http import retry_after_seconds

            retry_after = retry_after_seconds(exc.response.headers.get("Retry-After"))
        return delivery_error(
            f"Google Sheets answered HTTP {status or code} ({message}): {hint}",
            transient=transient,
            retry_after=retry_after,
            refused=status in (400, 413),  # this request (a grid limit...), not every one
            credentials=status in (401, 403),
        )
    if isinstance(exc, auth_errors.TransportError):
        return delivery_error(
            f"cannot reach Google's token endpoint: {redact(str(exc))[:200]}", transient=True
        )
    if isinstance(exc, auth_errors.RefreshError):
        retryable = bool(getattr(exc, "retryable", False))
        return delivery_error(
            f"Google refused the service account's token request ({redact(str(exc))[:200]}): "
            "check the key in credentials",
            transient=retryable,
        )
    import requests

    if isinstance(exc, requests.RequestException):
        return delivery_error(f"cannot reach Google Sheets: {type(exc).__name__}", transient=True)
    return delivery_error(
        f"Google Sheets: {type(exc).__name__}: {redact(str(exc))[:200]}", transient=False
    )
