"""The dashboard over a real SQLite store: JSON API, pages, /metrics, security, the rollup."""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kpi_collector import Pipeline
from kpi_collector.commands.history import history_document
from kpi_collector.config import Config, load_config
from kpi_collector.report import pages
from kpi_collector.report.data import (
    DashboardData,
    OverviewDoc,
    RunDoc,
    RunErrorDoc,
    SeriesDoc,
    Tile,
)
from kpi_collector.report.web import ServerThread, check_bind, create_app
from kpi_collector.store import HistoryStore, rollup

SECRET = "tok-very-secret-9f3a"
XSS = "<script>alert(1)</script>"
NOW = datetime(2026, 3, 31, 10, 0, tzinfo=UTC)  # Berlin switched to summer time on 29 March
DAYS = 400
HOURS = (1, 7, 13, 23)  # 23 UTC is already the next day in Berlin
CONFIG = f"""\
store: sqlite:///kpi.db
timezone: Europe/Berlin
north_star: crm.paying
kpis:
  crm.paying: {{title: Paying customers, target: 800}}
  web.xss: {{title: "{XSS}", unit: USD}}
  pypi.downloads: {{title: Downloads, agg: sum}}
sources:
  - name: crm
    type: http_json
    url: http://127.0.0.1:9/stats
    auth: {{bearer: "${{CRM_TOKEN}}"}}
    metrics: {{paying: data.paying}}
  - {{name: web, type: http_json, url: "http://127.0.0.1:9/web", metrics: {{xss: data.x}}}}
  - {{name: pypi, type: http_json, url: "http://127.0.0.1:9/p", metrics: {{downloads: data.d}}}}
"""


def value_of(kpi: str, day: int, hour: int) -> float:
    if kpi == "crm.paying":
        return 100.0 + day + hour / 100
    if kpi == "pypi.downloads":
        return day % 7 + 0.1
    return 5.0


def build_store(folder: Path) -> Path:
    """A config and a store: 400 days × 4 observations of 3 KPIs, a failing last run, a pending
    delivery (and a done and a dropped one)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    path = folder / "kpi.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path)
    store = HistoryStore(config.store_url)
    start = NOW - timedelta(days=DAYS)
    first = store.begin_run(started_at=start.timestamp())
    points = []
    for d in range(DAYS):
        for hour in HOURS:
            ts = datetime.combine(
                (start + timedelta(days=d)).date(), datetime.min.time(), UTC
            ) + timedelta(hours=hour)
            if ts >= NOW - timedelta(hours=3):
                continue
            points += [
                (k, ts.timestamp(), value_of(k, d, hour), k.partition(".")[0])
                for k in ("crm.paying", "web.xss", "pypi.downloads")
            ]
    store.finish_run(first, observations=points, finished_at=start.timestamp() + 2)
    last = store.begin_run(started_at=(NOW - timedelta(hours=1)).timestamp())
    store.finish_run(
        last,
        observations=[("crm.paying", (NOW - timedelta(hours=1)).timestamp(), 999.0, "crm")],
        errors=[("web", None, f"HTTP 500 from http://127.0.0.1:9/web?token={SECRET}", True)],
        finished_at=(NOW - timedelta(hours=1)).timestamp() + 1.5,
    )
    import sqlalchemy as sa

    from kpi_collector.store.schema import deliveries

    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(deliveries).values(
                destination="slack",
                period="2026-W14",
                run_id=last,
                status="pending",
                attempts=2,
                last_error=f"HTTP 500 from https://hooks.example/{SECRET}",
                created_at=NOW.timestamp() - 60,
                updated_at=NOW.timestamp() - 30,
            )
        )
        conn.execute(  # given up (its run's values were gone): not pending any more
            sa.insert(deliveries).values(
                destination="discord",
                period="2026-W12",
                run_id=first,
                status="dropped",
                attempts=1,
                last_error="run 1 has no stored values any more; nothing to deliver",
                created_at=NOW.timestamp() - 900,
                updated_at=NOW.timestamp() - 900,
            )
        )
        conn.execute(
            sa.insert(deliveries).values(
                destination="csv",
                period="2026-W13",
                run_id=first,
                status="done",
                attempts=1,
                created_at=NOW.timestamp() - 600,
                updated_at=NOW.timestamp() - 600,
            )
        )
    store.close()
    return path


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("dash"))


def _copy_of(config_path: Path, folder: Path) -> Config:
    """The module's filled config and its store, copied to `folder` and loaded: for a test
    that changes the store, which the module's other tests share."""
    shutil.copytree(config_path.parent, folder)
    return load_config(folder / "kpi.yaml")


@pytest.fixture(scope="module")
def data(config_path: Path) -> Iterator[DashboardData]:
    source = DashboardData(load_config(config_path), clock=NOW.timestamp)
    yield source
    source.close()


@pytest.fixture(scope="module")
def client(data: DashboardData) -> Iterator[Any]:
    from starlette.testclient import TestClient

    with TestClient(create_app(data.config, data=data), base_url="http://127.0.0.1") as c:
        yield c


# the overview -----------------------------------------------------------------------------


def test_overview_api_shows_the_stored_values_north_star_first(client: Any) -> None:
    doc = client.get("/api/kpis").json()
    ids = [t["id"] for t in doc["kpis"]]
    assert ids == ["crm.paying", "web.xss", "pypi.downloads"]
    star = doc["kpis"][0]
    assert star["value"] == 999.0 and star["value_text"] == "999"
    assert star["period"] == "2026-03-31" and star["previous_period"] == "2026-03-30"
    # 30 March in Berlin (UTC+2) ends at 22:00 UTC: its last value is the one of 13:00 UTC
    day_before = (date(2026, 3, 30) - (NOW - timedelta(days=DAYS)).date()).days
    assert star["previous"] == value_of("crm.paying", day_before, 13)
    assert star["change"] == pytest.approx(999.0 - star["previous"])
    assert star["change_pct"] == pytest.approx((999.0 - star["previous"]) / star["previous"] * 100)
    assert star["progress"] == pytest.approx(999.0 / 800)
    assert len(star["sparkline"]) == len(doc["periods"]) == 30
    assert doc["periods"][-1] == "2026-03-31" and star["sparkline"][-1] == 999.0
    assert doc["periods"][0] == "2026-03-02" and None not in star["sparkline"]
    assert doc["last_run"]["status"] == "partial"
    assert doc["timezone"] == "Europe/Berlin"


def test_overview_values_equal_kpi_history(client: Any, data: DashboardData) -> None:
    for period in ("day", "week", "month"):
        doc = client.get("/api/kpis", params={"period": period}).json()
        since = date.fromisoformat(doc["since"])
        history = history_document(data.config, period=period, since=since)
        for tile in doc["kpis"]:
            stored = {p["period"]: p["value"] for p in history["kpis"][tile["id"]]}
            assert set(stored) <= set(doc["periods"])
            assert tile["sparkline"] == [stored.get(p) for p in doc["periods"]], (
                period,
                tile["id"],
            )


def test_failing_source_is_listed_with_its_error_and_secret_hidden(client: Any) -> None:
    doc = client.get("/api/kpis").json()
    web = next(s for s in doc["sources"] if s["name"] == "web")
    assert web["status"] == "failing" and "HTTP 500" in web["error"] and SECRET not in web["error"]
    page = client.get("/").text
    assert "HTTP 500" in page and SECRET not in page


def test_stale_kpis_are_marked(data: DashboardData) -> None:
    later = DashboardData(data.config, store=data.store, clock=lambda: NOW.timestamp() + 5 * 86400)
    doc = later.overview("day")
    assert all(t["stale"] for t in doc["kpis"])
    statuses = {s["name"]: s["status"] for s in doc["sources"]}
    assert statuses["crm"] == "stale" and statuses["web"] == "failing"


# one KPI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["day", "week", "month"])
@pytest.mark.parametrize("kpi", ["crm.paying", "pypi.downloads"])
def test_series_equals_kpi_history(client: Any, data: DashboardData, kpi: str, period: str) -> None:
    since = date(2025, 9, 1)
    doc = client.get(
        f"/api/kpis/{kpi}/series", params={"period": period, "since": since.isoformat()}
    ).json()
    history = history_document(data.config, [kpi], period=period, since=since)
    assert [(p["period"], p["value"]) for p in doc["points"]] == [
        (p["period"], p["value"]) for p in history["kpis"][kpi]
    ]
    assert doc["agg"] == ("sum" if kpi == "pypi.downloads" else "last")


def test_series_compares_with_the_window_before_and_a_year_earlier(
    client: Any, data: DashboardData
) -> None:
    doc = client.get(
        "/api/kpis/crm.paying/series", params={"period": "day", "since": "2026-03-02"}
    ).json()
    assert (
        doc["points"][0]["period"] == "2026-03-02" and doc["points"][-1]["period"] == "2026-03-31"
    )
    span = (date(2026, 4, 1) - date(2026, 3, 2)).days
    full = dict(
        data.store.series(["crm.paying"], period="day", tz=data.zone, agg=data.agg)["crm.paying"]
    )
    assert doc["previous"], "the 30 days before 2 March are stored"
    for p in doc["previous"]:
        day = date.fromisoformat(p["period"])
        assert date.fromisoformat(p["at"]) == day + timedelta(days=span)
        assert p["value"] == full[day]
    for p in doc["year_ago"]:
        day = date.fromisoformat(p["period"])
        assert date.fromisoformat(p["at"]) == day.replace(year=day.year + 1)
        assert p["value"] == full[day]
    assert {p["period"][:7] for p in doc["year_ago"]} == {"2025-03"}


def test_series_range_and_csv(client: Any) -> None:
    by_range = client.get(
        "/api/kpis/crm.paying/series", params={"period": "week", "range": "13w"}
    ).json()
    assert len(by_range["points"]) == 13
    csv = client.get("/api/kpis/crm.paying/series.csv", params={"period": "week", "range": "13w"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    lines = csv.text.strip().splitlines()
    assert lines[0] == "period,kpi,value" and len(lines) == 14
    last = lines[-1].split(",")
    assert last[1] == "crm.paying" and float(last[2]) == by_range["points"][-1]["value"]


def test_bad_requests(client: Any) -> None:
    assert client.get("/api/kpis", params={"period": "year"}).status_code == 400
    assert (
        client.get("/api/kpis/crm.paying/series", params={"since": "yesterday"}).status_code == 400
    )
    missing = client.get("/api/kpis/nope.nothing/series")
    assert missing.status_code == 404 and missing.json() == {"error": "no KPI 'nope.nothing'"}
    assert client.get("/kpi/nope.nothing").status_code == 404


@pytest.mark.parametrize("since", ["0001-01-01", "0001-06-15", "9999-12-31", "2031-01-01"])
@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_a_since_far_in_the_past_or_future_is_answered(
    client: Any, since: str, period: str
) -> None:
    """`since` at the calendar's ends made the window before and the year earlier overflow
    the date range: a 500 without a word. Now the windows stop at the calendar's ends."""
    params = {"period": period, "since": since}
    doc = client.get("/api/kpis/crm.paying/series", params=params)
    assert doc.status_code == 200, doc.text
    points = doc.json()["points"]
    if since.startswith("0001"):  # all of the history, as `kpi history --since` gives it
        whole = client.get("/api/kpis/crm.paying/series", params={"period": period}).json()
        assert points == whole["points"] and points
    else:  # nothing is stored after today
        assert points == [] and doc.json()["previous"] == []
    csv = client.get("/api/kpis/crm.paying/series.csv", params=params)
    assert csv.status_code == 200 and len(csv.text.splitlines()) == len(points) + 1


def test_csv_exports_never_start_a_text_cell_with_a_formula(tmp_path: Path) -> None:
    """A title like `=HYPERLINK(...)` went into the CSV as is, and a spreadsheet opening the
    download ran it as a formula. Now a text cell starting with = + - @ (or a tab, a carriage
    return) gets a leading `'`; numbers, negative ones included, stay numbers."""
    import csv
    import io

    from starlette.testclient import TestClient

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "kpis:\n"
        '  "web.=x": {title: "=HYPERLINK(\\"http://evil.example\\", \\"click\\")", unit: "@u"}\n'
        '  web.neg: {title: "-2+3"}\n'
        '  web.plain: {title: "Plain + simple"}\n'
        'sources: [{name: web, type: http_json, url: "http://127.0.0.1:9/",'
        ' metrics: {"=x": d.x, neg: d.n, plain: d.p}}]\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    run = store.begin_run(started_at=NOW.timestamp() - 60)
    at = NOW.timestamp() - 60
    store.finish_run(
        run,
        observations=[
            ("web.=x", at, 3.0, "web"),
            ("web.neg", at, -5.5, "web"),
            ("web.plain", at, 1.0, "web"),
        ],
    )
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
        overview = list(csv.DictReader(io.StringIO(c.get("/api/kpis.csv").text)))
        series = list(csv.reader(io.StringIO(c.get("/api/kpis/web.=x/series.csv").text)))
    data.close()
    rows = {r["kpi"]: r for r in overview}
    assert set(rows) == {"web.=x", "web.neg", "web.plain"}  # an = inside stays
    assert rows["web.=x"]["title"] == '\'=HYPERLINK("http://evil.example", "click")'
    assert rows["web.=x"]["unit"] == "'@u"
    assert rows["web.neg"]["title"] == "'-2+3" and rows["web.neg"]["value"] == "-5.5"
    assert rows["web.plain"]["title"] == "Plain + simple"
    assert series[1][1:] == ["web.=x", "3.0"]
    cells = [cell for row in [*series, *(r.values() for r in overview)] for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert not [c for c in cells if c.startswith("-") and not c.lstrip("-")[:1].isdigit()]


# runs ----------------------------------------------------------------------------------------


def test_runs_api_lists_runs_errors_and_pending_deliveries(client: Any) -> None:
    doc = client.get("/api/runs").json()
    newest, first = doc["runs"]
    assert newest["status"] == "partial" and newest["duration"] == pytest.approx(1.5)
    assert newest["errors"][0]["source"] == "web" and SECRET not in newest["errors"][0]["message"]
    assert first["n_values"] > 4000
    assert [(d["destination"], d["period"], d["attempts"]) for d in doc["deliveries"]] == [
        ("slack", "2026-W14", 2)
    ]
    assert SECRET not in doc["deliveries"][0]["last_error"]
    page = client.get("/runs").text
    assert "2026-W14" in page and "slack" in page and SECRET not in page


# /metrics ----------------------------------------------------------------------------------


def test_metrics_parse_with_prometheus_client(client: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    values = {s.labels["kpi"]: s.value for s in families["kpi_value"].samples}
    assert values["crm.paying"] == 999.0 and values["web.xss"] == 5.0
    assert families["kpi_value"].type == "gauge"
    assert families["kpi_last_run_success"].samples[0].value == 0.0
    assert {s.labels["status"]: s.value for s in families["kpi_last_run_status"].samples}[
        "partial"
    ] == 1.0
    assert {s.labels["source"]: s.value for s in families["kpi_source_up"].samples} == {
        "crm": 1.0,
        "web": 0.0,
        "pypi": 1.0,
    }
    pending = {s.labels["destination"]: s.value for s in families["kpi_deliveries_pending"].samples}
    assert pending["slack"] == 1.0 and set(pending.values()) <= {0.0, 1.0}
    assert families["kpi_target"].samples[0].labels == {"kpi": "crm.paying"}
    assert SECRET not in response.text


def test_metrics_escape_label_values(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    path = tmp_path / "kpi.yaml"
    path.write_text("store: sqlite:///kpi.db\n", encoding="utf-8")
    config = load_config(path)
    store = HistoryStore(config.store_url)
    run = store.begin_run()
    odd = 'odd"kpi\\with'  # a newline cannot be in a KPI id: the store refuses it
    store.finish_run(run, observations=[(odd, time.time(), 1.5, "x")])
    from kpi_collector.report.metrics import metrics_text

    text = metrics_text(DashboardData(config, store=store))
    samples = next(f for f in text_string_to_metric_families(text) if f.name == "kpi_value").samples
    assert [(s.labels["kpi"], s.value) for s in samples] == [(odd, 1.5)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_real_prometheus_scrapes_metrics(data: DashboardData, tmp_path: Path) -> None:
    from tests.services import require_binary

    binary = require_binary("prometheus", "/usr/bin/prometheus", hint="Debian package prometheus")
    import requests

    token = "scrape-token-7c1d"
    app = create_app(data.config, data=data, token=token)
    with ServerThread(app) as url:
        target = url.removeprefix("http://")
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: kpi\n"
            f"    authorization: {{credentials: {token}}}\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n",
            encoding="utf-8",
        )
        port = _free_port()
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("w"),
        )
        try:
            found: dict[str, float] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "crm.paying" not in found:
                time.sleep(0.5)
                try:
                    answer = requests.get(
                        f"http://127.0.0.1:{port}/api/v1/query",
                        params={"query": "kpi_value"},
                        timeout=2,
                    ).json()
                except (requests.RequestException, ValueError):
                    continue
                found = {
                    r["metric"]["kpi"]: float(r["value"][1])
                    for r in answer.get("data", {}).get("result", [])
                }
            log = (tmp_path / "prometheus.log").read_text(errors="replace")[-2000:]
            assert found.get("crm.paying") == 999.0, log
            assert found.get("web.xss") == 5.0
            up = requests.get(
                f"http://127.0.0.1:{port}/api/v1/query", params={"query": "up"}, timeout=2
            ).json()
            assert up["data"]["result"][0]["value"][1] == "1"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# security ----------------------------------------------------------------------------------


def test_every_text_is_escaped(client: Any) -> None:
    for path in ("/", "/kpi/web.xss", "/runs"):
        html = client.get(path).text
        assert XSS not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/").text
    page = client.get("/kpi/web.xss").text
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in page  # the JSON for the chart


def spark_points(svg: str) -> list[tuple[float, float]]:
    """Every point a sparkline draws, left to right: its lines' and its dots'."""
    points = [
        tuple(map(float, p.split(",")))
        for line in re.findall(r'<polyline points="([^"]*)"', svg)
        for p in line.split()
    ]
    points += [
        (float(x), float(y)) for x, y in re.findall(r'<circle cx="([^"]*)" cy="([^"]*)"', svg)
    ]
    return sorted(points)  # type: ignore[arg-type]


def test_a_sparkline_breaks_at_a_period_without_a_value() -> None:
    """A sparkline drew one line through the periods that have a value, joining across a
    missing one as if nothing were missing, and a value alone between two gaps (or the only
    one) drew nothing at all. The line breaks at each gap now, and a lone value is a dot."""
    values = [1.0, 2.0, None, 3.0, None, None, 4.0, 5.0, 6.0]
    svg = pages.sparkline(values, width=120, height=32)
    lines = re.findall(r'<polyline points="([^"]*)"', svg)
    assert [len(line.split()) for line in lines] == [2, 3]
    dots = re.findall(r'<circle cx="([^"]*)"', svg)
    assert [float(x) for x in dots] == [2 + 116 * 3 / 8]  # the 3, at its own period
    assert [x for x, _ in spark_points(svg)] == [
        pytest.approx(2 + 116 * i / 8) for i in (0, 1, 3, 6, 7, 8)
    ]
    alone = pages.sparkline([None, 7.0, None], width=120, height=32)
    assert 'data-points="1"' in alone and "<circle" in alone and "<polyline" not in alone


@pytest.mark.parametrize(
    "values",
    [
        [-1e308, 1e308, 5.0],  # a span past the largest double
        [1.7e308, -1.7e308, None, 0.0],
        [5e-324, 1e-323, 0.0],  # the smallest doubles
        [-0.0, 0.0, 3.0],
    ],
)
def test_a_sparkline_of_extreme_values_is_drawn(values: list[float | None]) -> None:
    """A sparkline whose values spanned more than the largest double wrote `nan` into the SVG
    (the browser then drops the whole line). Now every point is a finite coordinate, the
    largest value at the top, the smallest at the bottom."""
    svg = pages.sparkline(values, width=120, height=32)
    points = spark_points(svg)
    assert len(points) == sum(v is not None for v in values)
    assert all(math.isfinite(x) and math.isfinite(y) for x, y in points)
    known = [v for v in values if v is not None]
    ys = dict(zip(known, (y for _, y in points), strict=True))
    assert ys[max(known)] == 2.0 and ys[min(known)] == 30.0


def test_security_headers_on_every_response(client: Any) -> None:
    for path in ("/", "/api/kpis", "/metrics", "/static/kpi.js", "/api/kpis/nope.x/series"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert (
            "default-src 'none'" in csp
            and "script-src 'self'" in csp
            and "connect-src 'self'" in csp
        )
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"


def test_a_store_that_cannot_be_read_is_named_on_every_page(tmp_path: Path) -> None:
    """A store that fails under the running dashboard (here: its file overwritten) answered
    every page with a bare "Internal Server Error", without the security headers. Now the
    answer says why in one line (redacted), as JSON under /api/, and carries the headers."""
    from starlette.testclient import TestClient

    config = _copy_of(build_store(tmp_path / "src"), tmp_path / "copy")
    data = DashboardData(config, clock=NOW.timestamp, cache=False)
    app = create_app(config, data=data)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        assert c.get("/api/kpis").status_code == 200
        for path in (tmp_path / "copy").glob("kpi.db*"):
            path.write_bytes(b"not a database " * 500)
        for url in ("/", "/kpi/crm.paying", "/runs", "/metrics", "/api/kpis", "/api/kpis.csv"):
            answer = c.get(url)
            assert answer.status_code == 500, url
            assert "default-src 'none'" in answer.headers["content-security-policy"], url
            assert answer.headers["x-content-type-options"] == "nosniff"
            text = answer.json()["error"] if url.startswith("/api/") else answer.text
            assert "the store cannot be read" in text and "file is not a database" in text, url
            assert SECRET not in answer.text
    data.close()


def test_only_loopback_host_headers_without_a_token(client: Any) -> None:
    refused = client.get("/", headers={"host": "evil.example"})
    assert refused.status_code == 421 and "kpi serve --token" in refused.text
    assert client.get("/", headers={"host": "localhost:8050"}).status_code == 200
    assert client.get("/", headers={"host": "[::1]:8050"}).status_code == 200


def test_token_is_required_when_set(data: DashboardData) -> None:
    from starlette.testclient import TestClient

    token = "dash-token-5e6f"
    app = create_app(data.config, data=data, token=token)
    with TestClient(app, base_url="http://kpi.example.com") as c:
        assert c.get("/api/kpis").status_code == 401
        assert c.get("/api/kpis", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/kpis", headers={"authorization": f"Bearer {token}"}).status_code == 200
        first = c.get(f"/?token={token}", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert "HttpOnly" in first.headers["set-cookie"]
        assert c.get("/").status_code == 200  # the cookie now
        assert token not in c.get("/").text and token not in c.get("/metrics").text


def test_a_new_token_link_opens_the_dashboard_over_an_old_cookie(data: DashboardData) -> None:
    """After the token changed (`kpi serve --token NEW`), the browser still sent the old
    token's cookie, which was checked before the link's `?token=NEW`: 401 on every new link
    until the user found and deleted the HttpOnly cookie. Now a link's token is checked
    first and replaces the cookie; a stale cookie alone still gets 401."""
    from starlette.testclient import TestClient

    app = create_app(data.config, data=data, token="new-token-81d2")
    with TestClient(app, base_url="http://kpi.example.com") as c:
        c.cookies.set("kpi_token", "old-token-3a7b")
        assert c.get("/api/kpis").status_code == 401
        first = c.get("/kpi/crm.paying?token=new-token-81d2&period=week", follow_redirects=False)
        assert first.status_code == 303, first.text
        assert first.headers["location"] == "/kpi/crm.paying?period=week"
        assert "kpi_token=new-token-81d2" in first.headers["set-cookie"]
        c.cookies.set("kpi_token", "new-token-81d2")
        assert c.get("/api/kpis").status_code == 200
        wrong_link = c.get("/?token=old-token-3a7b", follow_redirects=False)
        assert wrong_link.status_code == 401  # a wrong link is not saved by a good cookie
        empty_link = c.get("/?token=", follow_redirects=False)  # presents nothing: the cookie
        assert empty_link.status_code == 303 and "set-cookie" not in empty_link.headers


@pytest.mark.parametrize(
    "token",
    [
        "Kx9+/ab==",  # base64 (`openssl rand -base64`): `+` is not a space here
        "semi;colon, and space",  # what a cookie value cannot hold as it is
        "p\u00e4ss-\u5bc6\u7801-\U0001f511",  # not Latin-1
        'quote"back\\slash%41',
    ],
)
def test_any_token_opens_the_dashboard_by_header_link_and_cookie(
    data: DashboardData, token: str
) -> None:
    """A token of any printable characters works the three ways a user presents it: the
    header (its UTF-8 bytes), `?token=` as a browser sends a typed link (percent-encoded,
    `+` kept), and the cookie that link sets; a wrong one still gets 401."""
    from urllib.parse import quote

    from starlette.testclient import TestClient

    app = create_app(data.config, data=data, token=token)
    with TestClient(app, base_url="http://kpi.example.com") as c:
        header = b"Bearer " + token.encode()
        assert c.get("/api/kpis", headers=[(b"authorization", header)]).status_code == 200
        wrong = b"Bearer x" + token[1:].encode()
        assert c.get("/api/kpis", headers=[(b"authorization", wrong)]).status_code == 401
        link = quote(token, safe="+/=;,")  # a browser leaves these as typed
        first = c.get(f"/?token={link}", follow_redirects=False)
        assert first.status_code == 303, first.text
        assert token not in first.headers["set-cookie"]  # percent-encoded there
        assert c.get("/api/kpis").status_code == 200  # the cookie now
    with TestClient(app, base_url="http://kpi.example.com") as c:
        assert (
            c.get("/?token=" + quote("x" + token[1:], safe=""), follow_redirects=False).status_code
            == 401
        )


def test_non_loopback_bind_needs_a_token() -> None:
    from kpi_collector.errors import ConfigError

    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "t0ken")
    with pytest.raises(ConfigError, match="KPI_DASHBOARD_TOKEN"):
        check_bind("0.0.0.0", None)


def test_metrics_name_an_interrupted_run(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from kpi_collector.report.metrics import metrics_text
    from kpi_collector.store.heartbeats import mark_interrupted

    (tmp_path / "kpi.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    store.begin_run(started_at=NOW.timestamp() - 60)  # its process died midway
    assert mark_interrupted(store)
    data = DashboardData(config, store=store, clock=NOW.timestamp)
    families = {f.name: f for f in text_string_to_metric_families(metrics_text(data))}
    status = {s.labels["status"]: s.value for s in families["kpi_last_run_status"].samples}
    assert status["interrupted"] == 1.0 and sum(status.values()) == 1.0
    data.close()


def test_kpi_serve_refuses_a_public_host_without_token(config_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KPI_DASHBOARD_TOKEN"}
    kpi = str(Path(sys.executable).parent / "kpi")
    out = subprocess.run(
        [kpi, "-c", str(config_path), "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--token" in out.stderr


def test_no_secret_in_any_document(client: Any) -> None:
    for path in (
        "/api/kpis",
        "/api/kpis?period=month",
        "/api/runs",
        "/api/kpis/crm.paying/series",
        "/",
        "/kpi/crm.paying",
        "/runs",
        "/metrics",
    ):
        assert SECRET not in client.get(path).text, path


def _start_kpi_serve(
    config_path: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`kpi -c CONFIG serve --port PORT` in a process of its own, its output piped (stdout and
    stderr in one), with `env` (or ours)."""
    kpi = str(Path(sys.executable).parent / "kpi")
    return subprocess.Popen(
        [kpi, "-c", str(config_path), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _first_answer(proc: subprocess.Popen[str], url: str) -> Any:
    """The answer to GET `url` from the server `proc` once it listens: tried every 0.2 s for
    up to 30 s; the connection error is raised when it exits or never listens."""
    import requests

    deadline = time.monotonic() + 30
    while True:
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.2)


def test_kpi_serve_takes_the_token_from_the_environment(config_path: Path) -> None:
    import requests

    port = _free_port()
    env = {**os.environ, "KPI_DASHBOARD_TOKEN": "env-token-81f2"}
    proc = _start_kpi_serve(config_path, port, env)
    try:
        denied = _first_answer(proc, f"http://127.0.0.1:{port}/api/kpis")
        assert denied.status_code == 401
        allowed = requests.get(
            f"http://127.0.0.1:{port}/api/kpis",
            timeout=5,
            headers={"authorization": "Bearer env-token-81f2"},
        )
        assert allowed.status_code == 200
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert "env-token-81f2" not in output


def test_kpi_serve_serves(config_path: Path) -> None:
    port = _free_port()
    proc = _start_kpi_serve(config_path, port)
    try:
        answer = _first_answer(proc, f"http://127.0.0.1:{port}/api/kpis")
        assert answer.status_code == 200
        assert answer.json()["kpis"][0]["id"] == "crm.paying"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# the rollup ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store on each database the history store supports."""
    from tests.services import require_mysql_url, require_postgres_url
    from tests.test_store import _isolated

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'r.db'}"
        return
    urls = _isolated(
        require_postgres_url() if request.param == "postgresql" else require_mysql_url()
    )
    yield next(urls)
    next(urls, None)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "UTC", "Asia/Kathmandu"])
def test_rollup_equals_series_after_runs_and_backfills(store_url: str, zone: str) -> None:
    """The incremental rollup agrees with `series` over random data. Both use
    `store.periods`, so this catches folding bugs only; the calendar itself is checked against
    hand-computed aggregates in the test after this one."""
    store = HistoryStore(store_url)
    tz = ZoneInfo(zone)
    rng = random.Random(7)
    kpis = ["a.x", "b.y", "c.z"]
    base = datetime(2025, 10, 20, tzinfo=UTC).timestamp()

    def add(count: int, low: float, high: float) -> None:
        run = store.begin_run()
        obs = [
            (rng.choice(kpis), rng.uniform(low, high), rng.choice([0.1, 0.2, 0.3, 7.0, -1.5]), "s")
            for _ in range(count)
        ]
        store.finish_run(run, observations=obs)

    def check() -> None:
        assert rollup.pending(store.engine, tz) > 0
        rollup.catch_up(store.engine, tz)
        assert rollup.pending(store.engine, tz) == 0
        mixed = {"a.x": "sum", "b.y": "max"}  # each KPI its own agg in one read (c.z: last)
        for period in ("day", "week", "month"):
            for aggs in [dict.fromkeys(kpis, a) for a in ("last", "sum", "min", "max", "avg")] + [
                mixed
            ]:
                agg = "mixed" if aggs is mixed else aggs["a.x"]
                expected = store.series(kpis, period=period, tz=tz, agg=aggs)
                got = rollup.read(store.engine, tz, period, since=date(2000, 1, 1), agg=aggs)
                assert {k: [(p.start, p.value) for p in v] for k, v in got.items()} == expected, (
                    period,
                    agg,
                )

    add(600, base, base + 90 * 86400)
    check()
    add(50, base + 89 * 86400, base + 91 * 86400)  # a live run
    check()
    store.add_observations(
        [("a.x", base - 40 * 86400 + i * 3600 * 7, float(i), "s") for i in range(200)], tz=tz
    )
    check()  # a backfill far in the past
    add(30, base + 10 * 86400, base + 12 * 86400)  # late values inside rolled-up periods
    check()
    latest = rollup.latest(store.engine, tz)
    raw = store.latest()
    assert {k: v for k, (v, _) in latest.items()} == {k: r.value for k, r in raw.items()}
    assert rollup.catch_up(store.engine, tz) == 0  # nothing new
    store.close()


# Instants on the edges of local days, weeks and months, by hand: (zone, local wall time, fold).
_BERLIN, _KATHMANDU = "Europe/Berlin", "Asia/Kathmandu"


def _midnight(zone: str, year: int, month: int, day: int) -> list[tuple[str, datetime, int]]:
    """The local midnight that starts `day` in `zone` as two edges: the last second of the
    day before (23:59:59), and 00:00."""
    start = datetime(year, month, day)
    return [(zone, start - timedelta(seconds=1), 0), (zone, start, 0)]


_EDGES: list[tuple[str, datetime, int]] = [
    # Berlin springs forward on Sunday 2026-03-29 (a 23-hour day: 02:00 becomes 03:00)
    *_midnight(_BERLIN, 2026, 3, 29),
    (_BERLIN, datetime(2026, 3, 29, 3, 0), 0),
    *_midnight(_BERLIN, 2026, 3, 30),  # Monday: a new ISO week
    # ...and falls back on Sunday 2026-10-25 (a 25-hour day: 02:30 happens twice)
    (_BERLIN, datetime(2026, 10, 25, 0, 0), 0),
    (_BERLIN, datetime(2026, 10, 25, 2, 30), 0),
    (_BERLIN, datetime(2026, 10, 25, 2, 30), 1),
    *_midnight(_BERLIN, 2026, 10, 26),
    # the month edge, and Kathmandu's +05:45 midnight (18:15 UTC the day before)
    *_midnight(_BERLIN, 2026, 11, 1),
    *_midnight(_KATHMANDU, 2026, 7, 1),
    (_KATHMANDU, datetime(2026, 7, 1, 0, 0, 1), 0),
    # ISO years: 2025-12-29 (a Monday in calendar 2025) starts 2026-W01; 2026-12-31 and
    # 2027-01-01..03 are all in 2026-W53; Monday 2027-01-04 starts 2027-W01
    *_midnight(_KATHMANDU, 2025, 12, 29),
    *_midnight(_BERLIN, 2026, 1, 1),
    *_midnight(_BERLIN, 2027, 1, 1),
    *_midnight(_KATHMANDU, 2027, 1, 4),
    *_midnight(_BERLIN, 2027, 1, 4),
]


def _edge_instants() -> list[float]:
    """Each edge, a second either side of it, and the same wall time as UTC midnight-ish."""
    out: set[float] = set()
    for zone, wall, fold in _EDGES:
        ts = wall.replace(tzinfo=ZoneInfo(zone), fold=fold).timestamp()
        out |= {ts - 1, ts, ts + 1, wall.replace(tzinfo=UTC).timestamp()}
    return sorted(out)


def _by_hand(
    observations: list[tuple[str, float, float]], zone: ZoneInfo
) -> dict[tuple[str, str], dict[str, list[tuple[date, float, float]]]]:
    """{(period, agg): {kpi: [(period start, value, newest ts)]}} from raw (kpi, ts, value)
    with nothing but zoneinfo and the calendar: a week starts on the Monday of the day's
    ISO week (`isocalendar`), a month on its first day."""

    def starts(ts: float) -> dict[str, date]:
        day = datetime.fromtimestamp(ts, zone).date()
        iso_year, iso_week, _ = day.isocalendar()
        return {
            "day": day,
            "week": date.fromisocalendar(iso_year, iso_week, 1),
            "month": date(day.year, day.month, 1),
        }

    groups: dict[tuple[str, str, date], list[tuple[float, float]]] = {}
    for kpi, ts, value in observations:
        for period, start in starts(ts).items():
            groups.setdefault((period, kpi, start), []).append((ts, value))
    expected: dict[tuple[str, str], dict[str, list[tuple[date, float, float]]]] = {}
    for (period, kpi, start), points in sorted(groups.items()):
        points.sort()
        values = [v for _, v in points]
        newest = points[-1][0]
        for agg, value in {
            "last": values[-1],
            "sum": float(sum(values)),
            "min": min(values),
            "max": max(values),
            "avg": sum(values) / len(values),
        }.items():
            expected.setdefault((period, agg), {}).setdefault(kpi, []).append(
                (start, value, newest)
            )
    return expected


def test_rollup_and_series_match_aggregates_computed_by_hand_at_calendar_edges(
    store_url: str,
) -> None:
    """Independent of `store.periods`: per-day/week/month last, sum, min, max and avg of
    values stored a second before, at and after local midnights (Berlin's DST Sundays,
    Kathmandu's +05:45, month ends, the ISO-week New Year edges), through live runs, a late
    run inside periods already rolled up, and a backfill, on every database. Values are
    multiples of 1/4, so every sum is exact in any order."""
    store = HistoryStore(store_url)
    instants = _edge_instants()
    kpis = ["a.x", "b.y"]
    stored: list[tuple[str, float, float]] = []

    def run(points: list[tuple[str, float, float]]) -> None:
        store.finish_run(store.begin_run(), observations=[(k, t, v, "s") for k, t, v in points])
        stored.extend(points)

    def check() -> None:
        for name in ("UTC", _BERLIN, _KATHMANDU):
            zone = ZoneInfo(name)
            rollup.catch_up(store.engine, zone)
            for (period, agg), want in _by_hand(stored, zone).items():
                aggs = dict.fromkeys({k for k, _, _ in stored}, agg)
                got = rollup.read(store.engine, zone, period, since=date(2000, 1, 1), agg=aggs)
                assert {k: [tuple(p) for p in v] for k, v in got.items()} == want, (name, period)
                series = store.series(period=period, tz=zone, agg=aggs)
                assert series == {k: [(s, v) for s, v, _ in w] for k, w in want.items()}, (
                    name,
                    period,
                    agg,
                )

    # two runs, each KPI at every other instant, values -3.75..+3.75
    run([(kpis[i % 2], ts, (i % 31 - 15) / 4) for i, ts in enumerate(instants)])
    run([(kpis[(i + 1) % 2], ts, (i % 7) / 4) for i, ts in enumerate(instants[::3])])
    check()
    # a late run: values half a second after each edge, inside periods already rolled up
    run([("a.x", ts + 0.5, -(i % 5) / 4) for i, ts in enumerate(instants[::4])])
    check()
    # a backfill of a third KPI, one value per UTC day, at the zones' midnights
    backfill = [
        ("c.z", datetime(2026, 12, day, 18, 15, tzinfo=UTC).timestamp(), day / 4)
        for day in range(24, 32)
    ] + [("c.z", datetime(2027, 1, day, 23, tzinfo=UTC).timestamp(), -day / 4) for day in (2, 3)]
    assert store.add_observations([(*p, "s") for p in backfill]) == len(backfill)
    stored.extend(backfill)
    check()
    # a hand-checked corner of the expectation itself: 2026-12-31 23:59:59 and 2027-01-01
    # 00:00 in Berlin both land in the week of Monday 2026-12-28 (2026-W53)
    berlin = _by_hand(stored, ZoneInfo(_BERLIN))
    weeks = {start for start, _, _ in berlin[("week", "last")]["a.x"]}
    assert date(2026, 12, 28) in weeks and date(2027, 1, 4) in weeks
    assert date(2025, 12, 29) in weeks  # calendar 2025, ISO 2026-W01
    store.close()


def _rolled_up_days(store: HistoryStore, tz: ZoneInfo) -> dict[str, list[tuple[date, float]]]:
    got = rollup.read(store.engine, tz, "day", since=date(2000, 1, 1), agg={"a.x": "sum"})
    return {k: [(p.start, p.value) for p in v] for k, v in got.items()}


def _mark(store: HistoryStore, tz: ZoneInfo) -> int:
    import sqlalchemy as sa

    from kpi_collector.store.schema import rollup_state as s

    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(s.c.last_id).where(s.c.zone == tz.key)).scalar_one())


def test_rollup_folds_in_ids_that_commit_out_of_order(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction holding a lower id commits after a higher id was folded in (PostgreSQL,
    MariaDB): the rollup still gets it; here on every database by inserting ids out of order."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations

    store = HistoryStore(store_url)
    tz = ZoneInfo("UTC")
    day = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()
    run = store.begin_run()

    def insert(id_: int, value: float) -> None:
        with store.engine.begin() as conn:
            conn.execute(
                observations.insert().values(
                    id=id_, run_id=run, kpi="a.x", ts=day + id_, value=value, source="s"
                )
            )

    insert(1, 1.0)
    insert(3, 3.0)
    rollup.catch_up(store.engine, tz)  # the first build
    insert(5, 5.0)
    rollup.catch_up(store.engine, tz)
    insert(2, 2.0)  # committed late, below everything folded so far
    assert rollup.pending(store.engine, tz) == 1
    rollup.catch_up(store.engine, tz)
    assert rollup.pending(store.engine, tz) == 0
    assert _rolled_up_days(store, tz) == store.series(["a.x"], tz=tz, agg={"a.x": "sum"})
    assert _rolled_up_days(store, tz)["a.x"] == [(date(2026, 3, 2), 11.0)]
    insert(4, 4.0)  # no new highest id: found by the count above the mark
    rollup.catch_up(store.engine, tz)
    assert _rolled_up_days(store, tz)["a.x"] == [(date(2026, 3, 2), 15.0)]
    assert rollup.catch_up(store.engine, tz) == 0  # nothing new: nothing folded again
    assert _mark(store, tz) < 5  # ids above the mark are watched until they settle
    monkeypatch.setattr(rollup, "SETTLE", 0.0)
    rollup.catch_up(store.engine, tz)  # up to what was the highest id at the last change
    rollup.catch_up(store.engine, tz)  # then to the highest now
    assert _mark(store, tz) == 5 and rollup.pending(store.engine, tz) == 0
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(observations)).scalar() == 5
    store.close()


def test_rollup_gets_a_transaction_that_commits_after_a_later_one(store_url: str) -> None:
    """The real thing: a transaction takes an id, another takes the next, commits and is
    rolled up; then the first commits."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations

    if store_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: its ids commit in order")
    store = HistoryStore(store_url)
    tz = ZoneInfo("UTC")
    day = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()
    run = store.begin_run()
    store.finish_run(run, observations=[("a.x", day, 1.0, "s")])
    rollup.catch_up(store.engine, tz)
    slow = store.begin_run()
    with store.engine.connect() as conn, conn.begin():
        slow_id = conn.execute(
            observations.insert().values(run_id=slow, kpi="a.x", ts=day + 1, value=10.0, source="s")
        ).inserted_primary_key[0]
        fast = store.begin_run()  # meanwhile another writer takes a higher id and commits
        store.finish_run(fast, observations=[("a.x", day + 2, 100.0, "s")])
        rollup.catch_up(store.engine, tz)
        assert _rolled_up_days(store, tz)["a.x"] == [(date(2026, 3, 2), 101.0)]
        with store.engine.connect() as other:
            fast_id = other.execute(
                sa.select(observations.c.id).where(observations.c.run_id == fast)
            ).scalar_one()
        assert slow_id < fast_id
    # the slow transaction has committed now, with an id below the one already folded in
    rollup.catch_up(store.engine, tz)
    assert _rolled_up_days(store, tz)["a.x"] == [(date(2026, 3, 2), 111.0)]
    assert rollup.pending(store.engine, tz) == 0
    store.close()


def test_overview_on_every_database(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(
        CONFIG.replace("sqlite:///kpi.db", store_url), encoding="utf-8"
    )
    (tmp_path / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    run = store.begin_run(started_at=NOW.timestamp() - 86400 * 2)
    store.finish_run(run, observations=[("crm.paying", NOW.timestamp() - 86400 * 2, 10.0, "crm")])
    run = store.begin_run(started_at=NOW.timestamp() - 60)
    store.finish_run(
        run,
        observations=[("crm.paying", NOW.timestamp() - 60, 12.5, "crm")],
        errors=[("web", None, "boom", False)],
    )
    data = DashboardData(config, store=store, clock=NOW.timestamp)
    doc = data.overview("day")
    star = doc["kpis"][0]
    assert (star["value"], star["previous"], star["change"]) == (12.5, 10.0, 2.5)
    assert data.rollup_error is None
    assert data.runs()["runs"][0]["errors"][0]["message"] == "boom"
    store.close()


def test_dashboard_works_when_the_rollup_cannot_be_written(
    config_path: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "ro"
    config = _copy_of(config_path, copy)
    fresh = DashboardData(config, clock=NOW.timestamp)
    expected = fresh.overview("week")
    fresh.close()
    import sqlite3

    with sqlite3.connect(copy / "kpi.db") as conn:  # a store whose rollup is not there to write
        conn.execute("DROP TABLE rollup_state")
    broken = DashboardData(config, clock=NOW.timestamp)
    got = broken.overview("week")
    assert broken.rollup_error is not None
    assert [(t["id"], t["sparkline"], t["value"]) for t in got["kpis"]] == [
        (t["id"], t["sparkline"], t["value"]) for t in expected["kpis"]
    ]
    broken.close()


def test_documents_follow_a_new_run(config_path: Path, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    data = DashboardData(_copy_of(config_path, tmp_path / "live"), clock=NOW.timestamp)
    with TestClient(create_app(data.config, data=data), base_url="http://127.0.0.1") as c:
        assert c.get("/api/kpis").json()["kpis"][0]["value"] == 999.0
        assert "999" in c.get("/").text
        store = HistoryStore(data.config.store_url)
        run = store.begin_run(started_at=NOW.timestamp() - 60)
        store.finish_run(run, observations=[("crm.paying", NOW.timestamp() - 60, 1234.0, "crm")])
        store.close()
        doc = c.get("/api/kpis").json()
        assert doc["kpis"][0]["value"] == 1234.0 and doc["last_run"]["id"] == run
        assert doc["kpis"][0]["previous"] != 999.0  # still the day before, not the earlier run
        assert "1,234" in c.get("/").text
        metrics = c.get("/metrics").text
        assert 'kpi_value{kpi="crm.paying"} 1234.0' in metrics
    data.close()


def test_documents_have_the_typed_keys(client: Any) -> None:
    """The JSON documents carry exactly the keys of their TypedDicts in report.data."""
    doc = client.get("/api/kpis").json()
    assert set(doc) == OverviewDoc.__required_keys__
    assert doc["kpis"] and all(set(t) == Tile.__required_keys__ for t in doc["kpis"])
    series = client.get("/api/kpis/crm.paying/series", params={"range": "1y"}).json()
    assert set(series) == SeriesDoc.__required_keys__
    runs = client.get("/api/runs").json()
    assert runs["runs"] and all(set(r) == RunDoc.__required_keys__ for r in runs["runs"])
    errors = [e for r in runs["runs"] for e in r["errors"]]
    assert errors and all(set(e) == RunErrorDoc.__required_keys__ for e in errors)


def test_no_nan_in_documents(client: Any) -> None:
    doc = client.get("/api/kpis").json()
    for tile in doc["kpis"]:
        for v in tile["sparkline"]:
            assert v is None or math.isfinite(v)


def test_an_empty_store(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    (tmp_path / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    (tmp_path / "kpi.yaml").write_text(CONFIG, encoding="utf-8")
    data = DashboardData(load_config(tmp_path / "kpi.yaml"), clock=NOW.timestamp)
    with TestClient(create_app(data.config, data=data), base_url="http://127.0.0.1") as c:
        doc = c.get("/api/kpis").json()
        assert doc["last_run"] is None
        assert [(t["id"], t["value"], t["value_text"]) for t in doc["kpis"]] == [
            ("crm.paying", None, "no data"),
            ("web.xss", None, "no data"),
            ("pypi.downloads", None, "no data"),
        ]
        # a tile without data has every key of one with data (`period` was missing)
        assert all(set(t) == Tile.__required_keys__ for t in doc["kpis"])
        assert {s["status"] for s in doc["sources"]} == {"no data"}
        assert "No run yet" in c.get("/").text
        assert c.get("/api/kpis/crm.paying/series").json()["points"] == []
        assert c.get("/kpi/crm.paying").status_code == 200
        assert c.get("/api/runs").json() == {
            "timezone": "Europe/Berlin",
            "runs": [],
            "deliveries": [],
        }
        metrics = c.get("/metrics").text
        assert not [line for line in metrics.splitlines() if line.startswith("kpi_value{")]
        assert "kpi_last_run_id 0.0" in metrics
    data.close()


def test_infinite_values_do_not_break_the_json(tmp_path: Path) -> None:
    import json

    from starlette.testclient import TestClient

    (tmp_path / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    (tmp_path / "kpi.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    run = store.begin_run(started_at=NOW.timestamp() - 60)
    store.finish_run(run, observations=[("crm.paying", NOW.timestamp() - 60, float("inf"), "crm")])
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
        body = c.get("/api/kpis").text
        doc = json.loads(body)  # strict JSON: no Infinity
        # an infinity never reaches the store (a run error): nothing to show, strict JSON
        assert doc["kpis"][0]["value"] is None
        assert "Infinity" not in body
        assert c.get("/").status_code == 200 and c.get("/kpi/crm.paying").status_code == 200
        assert "+Inf" not in c.get("/metrics").text
    data.close()


def test_health_scheduler_and_alerts(config_path: Path, tmp_path: Path) -> None:
    import sqlalchemy as sa
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.testclient import TestClient

    from kpi_collector.store.schema import alert_states, heartbeats

    _copy_of(config_path, tmp_path / "health")
    with (tmp_path / "health" / "kpi.yaml").open("a") as file:  # an alert named with markup
        file.write(
            f'alerts:\n  - {{name: "threshold:crm.paying {XSS}", kpi: crm.paying, above: 900}}\n'
        )
    config = load_config(tmp_path / "health" / "kpi.yaml")
    store = HistoryStore(config.store_url)
    beat = NOW.timestamp() - 3600  # an hour without a heartbeat: the scheduler is gone
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(heartbeats).values(
                name="scheduler",
                pid=4242,
                hostname="host-a",
                started_at=beat - 86400,
                beat_at=beat,
                state="idle",
                next_run_at=NOW.timestamp() + 3600,
            )
        )
        conn.execute(
            sa.insert(alert_states).values(
                alert=f"threshold:crm.paying {XSS}",
                destination="",
                active=True,
                since=beat,
                message=f"Paying customers above 900 {XSS}",
                updated_at=beat,
            )
        )
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
        health = c.get("/api/kpis").json()["health"]
        assert health["ok"] is False
        assert any("stopped beating" in p for p in health["problems"])
        assert health["scheduler"]["state"] == "idle"
        assert health["scheduler"]["next_run_at"].startswith("2026-03-31T13:00")  # Berlin time
        assert [a["message"] for a in health["alerts"]] == [f"Paying customers above 900 {XSS}"]
        page = c.get("/").text
        assert "stopped beating" in page and "Scheduler: idle" in page
        assert "Paying customers above 900 &lt;script&gt;" in page and XSS not in page
        families = {f.name: f for f in text_string_to_metric_families(c.get("/metrics").text)}
        assert families["kpi_health_ok"].samples[0].value == 0.0
        assert families["kpi_alerts_active"].samples[0].value == 1.0
        assert families["kpi_scheduler_heartbeat_timestamp_seconds"].samples[0].value == beat
    data.close()


def test_a_rollup_being_built_elsewhere(config_path: Path, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from kpi_collector.store.schema import rollup_state

    config = _copy_of(config_path, tmp_path / "busy")
    store = HistoryStore(config.store_url)
    tz = config.tz

    def claim(updated_at: float) -> None:
        with store.engine.begin() as conn:
            conn.execute(rollup_state.delete())
            conn.execute(
                sa.insert(rollup_state).values(zone=tz.key, last_id=-1, updated_at=updated_at)
            )

    claim(time.time())  # another process is building it now
    with pytest.raises(rollup.RollupBusy):
        rollup.catch_up(store.engine, tz)
    data = DashboardData(config, store=store, clock=NOW.timestamp)
    doc = data.overview("day")  # from raw observations meanwhile
    assert data.rollup_error is not None and doc["kpis"][0]["value"] == 999.0
    claim(time.time() - 2 * rollup.BUILD_TIMEOUT)  # that process died long ago: take over
    assert rollup.catch_up(store.engine, tz) > 0
    assert rollup.pending(store.engine, tz) == 0
    assert data.overview("day")["kpis"] == doc["kpis"] and data.rollup_error is None
    store.close()


def test_stale_follows_each_sources_schedule() -> None:
    from kpi_collector.report.data import stale_after

    monday = datetime(2026, 3, 30, 12, tzinfo=UTC).timestamp()
    assert stale_after("0 7 * * *", UTC, monday) == timedelta(hours=36)
    assert stale_after("0 7 * * 1", UTC, monday) == timedelta(days=10.5)
    assert stale_after("0 9 * * 1-5", UTC, monday) == timedelta(days=4.5)  # over the weekend
    assert stale_after("*/5 * * * *", UTC, monday) == timedelta(hours=1)  # never under an hour
    assert stale_after("0 7 1 * *", UTC, monday) == timedelta(days=1.5 * 30)  # April


def test_a_weekly_source_is_not_stale_after_five_days(tmp_path: Path) -> None:
    config = tmp_path / "kpi.yaml"
    config.write_text(
        f"""
store: sqlite:///{tmp_path / "kpi.db"}
schedule: "0 7 * * *"
sources:
  - {{name: daily, type: command, command: [{sys.executable}, -c, 'print(1)']}}
  - {{name: weekly, type: command, command: [{sys.executable}, -c, 'print(2)'], schedule: "0 7 * * 1"}}
"""
    )
    loaded = load_config(config)
    assert Pipeline.from_config(config).process(now=NOW).ok

    def statuses(days: float) -> dict[str, str]:
        later = DashboardData(loaded, clock=lambda: NOW.timestamp() + days * 86400)
        try:
            return {s["name"]: s["status"] for s in later.overview("day")["sources"]}
        finally:
            later.close()

    assert statuses(1) == {"daily": "ok", "weekly": "ok"}
    assert statuses(5) == {"daily": "stale", "weekly": "ok"}
    assert statuses(11) == {"daily": "stale", "weekly": "stale"}


def steady() -> dict[str, float]:
    return {"n": 3}


def flaky() -> dict[str, float]:
    raise RuntimeError("the members API is down")


TWO_JOBS = """\
schedule: "0 7 * * *"
sources:
  - {name: main_src, type: python, function: "tests.test_dashboard:steady"}
  - {name: m, type: python, function: "tests.test_dashboard:flaky", schedule: "0 * * * *"}
destinations:
  - {name: sheet, type: csv, path: out.csv}
"""


def test_metrics_tell_each_job_and_source_apart_and_pass_promtool(tmp_path: Path) -> None:
    """Two jobs: the hourly source `m` never succeeded, the main job did afterwards. The
    newest run of any job says nothing about `m`: each source and job has its own truth."""
    import contextlib
    import subprocess

    from prometheus_client.parser import text_string_to_metric_families

    from kpi_collector.cli import main
    from kpi_collector.report.metrics import metrics_text

    (tmp_path / "kpi.yaml").write_text(TWO_JOBS, encoding="utf-8")
    config_file = str(tmp_path / "kpi.yaml")
    for job in ("source:m", "main"):
        # exit 1 for the failing job: its outcome is what the metrics must show
        with contextlib.suppress(SystemExit):
            main(["-c", config_file, "schedule", "--run", job, "--force"])
    config = load_config(config_file)
    data = DashboardData(config)
    try:
        text = metrics_text(data)
    finally:
        data.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def by(family: str, key: str) -> dict[str, float]:
        return {s.labels[key]: s.value for s in families[family].samples}

    assert families["kpi_last_run_success"].samples[0].value == 1.0  # main's run
    assert by("kpi_source_up", "source") == {"main_src": 1.0, "m": 0.0}
    assert by("kpi_job_up", "job") == {"source:m": 0.0, "main": 1.0}
    assert set(by("kpi_job_last_success_timestamp_seconds", "job")) == {"main"}
    assert set(by("kpi_source_last_success_timestamp_seconds", "source")) == {"main_src"}
    assert by("kpi_deliveries_pending", "destination") == {"sheet": 0.0}
    assert "kpi_runs_total" not in families and families["kpi_last_run_id"].samples[0].value == 2
    (build,) = families["kpi_build_info"].samples
    assert build.value == 1.0 and build.labels["version"]
    from tests.services import require_binary

    promtool = require_binary("promtool", hint="Debian's prometheus package")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


PARTIAL_MAIN = """\
schedule: "0 7 * * *"
sources:
  - {name: good, type: python, function: "tests.test_dashboard:steady"}
  - {name: bad, type: python, function: "tests.test_dashboard:flaky"}
  - {name: hourly, type: python, function: "tests.test_dashboard:flaky", schedule: "0 * * * *"}
"""


def test_a_partial_job_is_up_and_its_failed_source_is_down(tmp_path: Path) -> None:
    """A partial run (one source failed, the others stored) served its fire time: the job is
    up (as `kpi validate --health` calls it a warning, not a problem); the failed source is
    what is down. A job that stored nothing stays down."""
    import contextlib

    from prometheus_client.parser import text_string_to_metric_families

    from kpi_collector.cli import main
    from kpi_collector.report.metrics import metrics_text
    from kpi_collector.schedule.health import health_report

    (tmp_path / "kpi.yaml").write_text(PARTIAL_MAIN, encoding="utf-8")
    config_file = str(tmp_path / "kpi.yaml")
    for job in ("main", "source:hourly"):
        with contextlib.suppress(SystemExit):  # exit 1: a source failed
            main(["-c", config_file, "schedule", "--run", job, "--force"])
    config = load_config(config_file)
    jobs = {j["job"]: j for j in health_report(config)["jobs"]}
    assert jobs["main"]["last_status"] == "partial" and not jobs["main"]["overdue"]
    data = DashboardData(config)
    try:
        text = metrics_text(data)
    finally:
        data.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def by(family: str, key: str) -> dict[str, float]:
        return {s.labels[key]: s.value for s in families[family].samples}

    assert by("kpi_job_up", "job") == {"main": 1.0, "source:hourly": 0.0}
    assert by("kpi_source_up", "source") == {"good": 1.0, "bad": 0.0, "hourly": 0.0}


FAILING_INPUT = """\
schedule: "0 7 * * *"
kpis:
  members.n: {title: Members}
  members.double: {title: Twice the members, formula: "members.n * 2"}
  queue.twice: {title: Twice the queue, formula: "queue.n * 2"}
sources:
  - {name: members, type: python, function: "tests.test_dashboard:flaky"}
  - {name: queue, type: python, function: "tests.test_dashboard:steady"}
"""


def test_tiles_carry_their_source_state_and_a_formula_names_its_failed_input(
    tmp_path: Path,
) -> None:
    """`members` fails: its tile and the formula on it say so on the tile; the formula's error
    names its failed input, and no source called `formula` appears. Three days later with no
    run, the tiles that still have values are stale."""
    (tmp_path / "kpi.yaml").write_text(FAILING_INPUT, encoding="utf-8")
    config = load_config(tmp_path / "kpi.yaml")
    result = Pipeline.from_config(config).process(deliver=False)
    assert result.errors["members.double"] == (
        "members.double: not computed because its input members.n failed (formula 'members.n * 2')"
    )
    ran = result.started_at.timestamp()
    data = DashboardData(config, clock=lambda: ran + 60)
    try:
        doc = data.overview("day")
        tiles = {t["id"]: t for t in doc["kpis"]}
        assert tiles["members.n"]["status"] == "failing"
        assert tiles["members.n"]["error"] == "RuntimeError: the members API is down"
        assert tiles["members.double"]["status"] == "failing"
        assert "its input members.n failed" in (tiles["members.double"]["error"] or "")
        assert tiles["queue.n"]["status"] == tiles["queue.twice"]["status"] == "ok"
        assert tiles["queue.twice"]["value"] == 6 and tiles["queue.twice"]["error"] is None
        names = {s["name"]: (s["type"], s["status"]) for s in doc["sources"]}
        assert "formula" not in names
        assert names["members"] == ("python", "failing")
        assert names["members.double"] == ("formula", "failing")
        html = pages.overview_page(doc)
        assert html.count('<span class="badge failing"') == 2
        assert 'class="tile failing" data-kpi="members.double"' in html
        assert "badge stale" not in html
    finally:
        data.close()
    later = DashboardData(config, clock=lambda: ran + 3 * 86400)
    try:
        tiles = {t["id"]: t for t in later.overview("day")["kpis"]}
        assert tiles["queue.n"]["status"] == tiles["queue.twice"]["status"] == "stale"
        html = pages.overview_page(later.overview("day"))
        assert 'class="tile stale" data-kpi="queue.n"' in html
    finally:
        later.close()


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        # 2 months shown (February, March): the 2 months before are December and January
        ("2026-02-01", [("2025-12-01", "2026-02-01"), ("2026-01-01", "2026-03-01")]),
        # 1 month shown (March, 31 days): the month before is February (28 days), drawn at March
        ("2026-03-01", [("2026-02-01", "2026-03-01")]),
    ],
)
def test_series_previous_window_of_months_counts_months_not_days(
    client: Any, data: DashboardData, since: str, expected: list[tuple[str, str]]
) -> None:
    doc = client.get(
        "/api/kpis/crm.paying/series", params={"period": "month", "since": since}
    ).json()
    full = dict(
        data.store.series(["crm.paying"], period="month", tz=data.zone, agg=data.agg)["crm.paying"]
    )
    assert [(p["period"], p["at"]) for p in doc["previous"]] == expected
    assert [p["value"] for p in doc["previous"]] == [
        full[date.fromisoformat(d)] for d, _ in expected
    ]
    assert {p["at"] for p in doc["previous"]} <= {p["period"] for p in doc["points"]}


@pytest.mark.parametrize("blank", ["", " ", "\t \n"])
def test_a_blank_token_is_no_token(data: DashboardData, blank: str) -> None:
    """A blank access token (an empty KPI_DASHBOARD_TOKEN, a stray space) opens nothing: a
    public bind is refused, and the app answers only loopback Host headers as without one."""
    from starlette.testclient import TestClient

    from kpi_collector.errors import ConfigError

    with pytest.raises(ConfigError, match="KPI_DASHBOARD_TOKEN"):
        check_bind("0.0.0.0", blank)
    app = create_app(data.config, data=data, token=blank)
    with TestClient(app, base_url="http://kpi.example.com") as c:
        for headers in ({}, {"authorization": "Bearer "}, {"authorization": f"Bearer {blank}"}):
            assert c.get("/api/kpis", headers=headers).status_code == 421
        assert c.get("/api/kpis", params={"token": blank}).status_code == 421


@pytest.mark.parametrize("stray", ["tok-4d2e\n", "  tok-4d2e ", "\ttok-4d2e\r\n"])
def test_a_token_with_stray_whitespace_opens_by_header(data: DashboardData, stray: str) -> None:
    """A token read with its line break or spaces (`KPI_DASHBOARD_TOKEN` from a file or an
    env file) never matched: the `Authorization` header is trimmed, the configured token was
    not, so every request got 401. Now the configured token is trimmed too."""
    from starlette.testclient import TestClient

    app = create_app(data.config, data=data, token=stray)
    with TestClient(app, base_url="http://kpi.example.com") as c:
        assert c.get("/api/kpis", headers={"authorization": "Bearer tok-4d2e"}).status_code == 200
        assert c.get("/?token=tok-4d2e", follow_redirects=False).status_code == 303
        assert c.get("/api/kpis").status_code == 200  # the cookie that link set
    with TestClient(app, base_url="http://kpi.example.com") as c:
        assert c.get("/api/kpis", headers={"authorization": "Bearer tok-4d2"}).status_code == 401


def test_the_run_in_progress_detail_is_redacted(config_path: Path, tmp_path: Path) -> None:
    """The run-in-progress row's `detail` (the program) is redacted again when shown, as every
    other stored text of the health document: one stored unredacted (a writer that did not
    know the secret) must not reach /api/kpis."""
    import sqlalchemy as sa
    from starlette.testclient import TestClient

    from kpi_collector.secrets import remember
    from kpi_collector.store.schema import heartbeats

    config = _copy_of(config_path, tmp_path / "running")
    remember(SECRET)  # the dashboard's process knows it (from the config's .env)
    store = HistoryStore(config.store_url)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(heartbeats).values(
                name="run",
                pid=4243,
                hostname="host-a",
                started_at=NOW.timestamp() - 30,
                beat_at=NOW.timestamp() - 5,
                state="running",
                detail=f"kpi run --header Authorization=Bearer {SECRET}",
            )
        )
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
        response = c.get("/api/kpis")
        running = response.json()["health"]["run_in_progress"]
        assert running["detail"] == "kpi run --header Authorization=Bearer ***"
        assert SECRET not in response.text and SECRET not in c.get("/").text
    data.close()


def test_a_kpi_id_with_a_slash_has_its_page_and_series(tmp_path: Path) -> None:
    """A metric named `downloads/day` makes the KPI `pypi.downloads/day`: the overview links
    to /kpi/pypi.downloads%2Fday, which the server sees as a path with a `/` in it; its page,
    series and CSV answer for that KPI (not 404), and an unknown one is still 404."""
    from urllib.parse import quote

    from starlette.testclient import TestClient

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: UTC\nsources:\n"
        "  - {name: pypi, type: http_json, url: 'http://127.0.0.1:9/', "
        "metrics: {'downloads/day': data.d}}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    kpi = "pypi.downloads/day"
    store = HistoryStore(config.store_url)
    at = NOW.timestamp() - 3600
    run = store.begin_run(started_at=at)
    store.finish_run(run, observations=[(kpi, at, 41.5, "pypi")], finished_at=at + 1)
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    path = quote(kpi, safe="")
    with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
        assert f'href="/kpi/{path}"' in c.get("/").text
        page = c.get(f"/kpi/{path}")
        assert page.status_code == 200 and "41.5" in page.text
        series = c.get(f"/api/kpis/{path}/series", params={"period": "day"}).json()
        assert series["id"] == kpi
        assert series["points"] == [{"period": "2026-03-31", "value": 41.5, "text": "41.5"}]
        csv_text = c.get(f"/api/kpis/{path}/series.csv", params={"period": "day"}).text
        assert csv_text == f"period,kpi,value\n2026-03-31,{kpi},41.5\n"
        assert c.get("/api/kpis/pypi.nothing%2Fhere/series").status_code == 404
    data.close()


@pytest.mark.parametrize("metric", ["中文", "ünïcode", "emoji🚀", 'q"uote;x'])
def test_the_csv_of_a_kpi_with_any_characters_downloads(tmp_path: Path, metric: str) -> None:
    """The series CSV of a KPI whose id is not plain ASCII (`web.中文`, `web.ünïcode`)
    answered 500: its name went into the Content-Disposition header, which holds Latin-1
    only. Now the header has an ASCII `filename` and the exact name as `filename*` (RFC 6266)."""
    from urllib.parse import quote, unquote

    from starlette.testclient import TestClient

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: UTC\nsources: []\n", encoding="utf-8"
    )
    config = load_config(tmp_path / "kpi.yaml")
    kpi = f"web.{metric}"
    store = HistoryStore(config.store_url)
    at = NOW.timestamp() - 3600
    run = store.begin_run(started_at=at)
    store.finish_run(run, observations=[(kpi, at, 7.25, "web")], finished_at=at + 1)
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
        answer = c.get(f"/api/kpis/{quote(kpi, safe='')}/series.csv", params={"period": "day"})
    data.close()
    assert answer.status_code == 200, answer.text
    assert list(csv_rows(answer.text)) == [["period", "kpi", "value"], ["2026-03-31", kpi, "7.25"]]
    disposition = answer.headers["content-disposition"]
    assert disposition.isascii() and disposition.startswith("attachment; ")
    plain = re.search(r'filename="([^"]*)"', disposition)
    exact = re.search(r"filename\*=UTF-8''(\S+)", disposition)
    assert plain is not None and exact is not None
    assert unquote(exact.group(1)) == f"{kpi}-day.csv"


def csv_rows(text: str) -> Iterator[list[str]]:
    import csv
    import io

    yield from csv.reader(io.StringIO(text))


def test_a_sources_newest_value_is_the_newest_instant_in_the_repeated_hour(
    tmp_path: Path,
) -> None:
    """When the clocks go back, 02:30+02:00 comes before 02:10+01:00, but the source's
    "newest value" was the larger text: the earlier moment. Now it is the later moment."""
    from starlette.testclient import TestClient

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: Europe/Berlin\nsources:\n"
        "  - {name: web, type: http_json, url: 'http://127.0.0.1:9/', "
        "metrics: {a: d.a, b: d.b}}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 summer time
    later = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 winter time, 40 minutes on
    store = HistoryStore(config.store_url)
    run = store.begin_run(started_at=first.timestamp())
    store.finish_run(
        run,
        observations=[
            ("web.a", first.timestamp(), 1.0, "web"),
            ("web.b", later.timestamp(), 2.0, "web"),
        ],
        finished_at=later.timestamp() + 1,
    )
    store.close()
    data = DashboardData(config, clock=(later + timedelta(hours=40)).timestamp)
    with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
        doc = c.get("/api/kpis").json()
    data.close()
    source = next(s for s in doc["sources"] if s["name"] == "web")
    assert source["status"] == "stale"
    assert source["updated_at"] == "2026-10-25T02:10:00+01:00"


def test_a_token_link_to_a_kpi_with_a_percent_or_question_mark_keeps_its_page(
    tmp_path: Path,
) -> None:
    """The redirect that takes `?token=` out of the address was built from the decoded path:
    the KPI `web.share%41?x` (linked as /kpi/web.share%2541%3Fx) came back as
    /kpi/web.share%41?x, i.e. the page of `web.shareA` (404). Now the redirect keeps the
    path as the browser sent it."""
    from urllib.parse import quote

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: UTC\nsources:\n"
        "  - {name: web, type: http_json, url: 'http://127.0.0.1:9/', "
        "metrics: {'share%41?x': data.d}}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    kpi = "web.share%41?x"
    store = HistoryStore(config.store_url)
    at = NOW.timestamp() - 3600
    run = store.begin_run(started_at=at)
    store.finish_run(run, observations=[(kpi, at, 41.5, "web")], finished_at=at + 1)
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    path = quote(kpi, safe="")
    app = create_app(config, data=data, token="tok-12ab")
    with ServerThread(app) as url:  # uvicorn: the path decoded once, as in production
        host = url.removeprefix("http://")
        status, location, _ = _raw_get(host, f"/kpi/{path}?token=tok-12ab&period=week")
        assert status == 303 and location == f"/kpi/{path}?period=week"
        status, _, page = _raw_get(host, location, cookie="kpi_token=tok-12ab")
        assert status == 200 and "41.5" in page
    data.close()


def _raw_get(host: str, target: str, cookie: str | None = None) -> tuple[int, str, str]:
    """GET `target` sent byte for byte as given (no client re-encoding it): (status,
    location, body)."""
    import http.client

    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request("GET", target, headers={"cookie": cookie} if cookie else {})
        answer = conn.getresponse()
        return answer.status, answer.getheader("location") or "", answer.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize(("agg", "expected"), [("sum", 7.5), ("avg", 3.75), ("max", 4.5)])
def test_a_tile_older_than_its_sparkline_shows_its_period_by_agg(
    tmp_path: Path, agg: str, expected: float
) -> None:
    """A KPI whose newest value is older than the overview's 30 days shows its newest day's
    value by its `agg` (two runs on 20 February 2026, 3 and 4.5: sum 7.5, avg 3.75, max 4.5),
    as every other tile does, not just the newest value stored."""
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: Europe/Berlin\n"
        f"kpis:\n  pypi.downloads: {{agg: {agg}}}\nsources:\n"
        "  - {name: pypi, type: http_json, url: 'http://127.0.0.1:9/', metrics: {downloads: d}}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    for hour, value in ((8, 3.0), (20, 4.5)):
        at = datetime(2026, 2, 20, hour, tzinfo=UTC).timestamp()
        run = store.begin_run(started_at=at)
        store.finish_run(run, observations=[("pypi.downloads", at, value, "pypi")], finished_at=at)
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    tile = data.overview("day")["kpis"][0]
    assert (tile["id"], tile["period"], tile["value"]) == ("pypi.downloads", None, expected)
    assert tile["sparkline"] == [None] * 30
    data.close()


def test_a_tile_compares_with_a_period_before_its_sparkline(tmp_path: Path) -> None:
    """`previous` is the period before the newest that has a value, even when that one is
    older than the sparkline's window: a KPI collected monthly, per day (30 days from
    2 March 2026), compares 31 March (12, collected at 09:00; the day is not over at 12:00)
    with 27 February up to 12:00 (4; its 6 at 23:30 came later that day: by agg sum the
    whole day is 10, which the month compares)."""
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: Europe/Berlin\n"
        "kpis:\n  crm.mrr: {agg: sum}\nsources:\n"
        "  - {name: crm, type: http_json, url: 'http://127.0.0.1:9/', metrics: {mrr: d}}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    for when, value in (
        (datetime(2026, 2, 27, 9, tzinfo=UTC), 4.0),
        (datetime(2026, 2, 27, 22, 30, tzinfo=UTC), 6.0),  # 23:30 in Berlin: still the 27th
        (datetime(2026, 3, 31, 7, tzinfo=UTC), 12.0),
    ):
        run = store.begin_run(started_at=when.timestamp())
        store.finish_run(
            run,
            observations=[("crm.mrr", when.timestamp(), value, "crm")],
            finished_at=when.timestamp(),
        )
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    tile = data.overview("day")["kpis"][0]
    assert (tile["period"], tile["value"]) == ("2026-03-31", 12.0)
    assert (tile["previous_period"], tile["previous"], tile["change"]) == ("2026-02-27", 4.0, 8.0)
    assert tile["previous_until"] == "2026-02-27T12:00:00+01:00"
    assert tile["change_pct"] == pytest.approx(200.0)
    month = data.overview("month")["kpis"][0]  # both months in the window: unchanged
    assert (month["previous_period"], month["previous"], month["value"]) == (
        "2026-02-01",
        10.0,
        12.0,
    )
    data.close()


def test_an_unfinished_sum_is_compared_with_the_same_part_of_the_period_before(
    client: Any,
) -> None:
    """pypi.downloads (agg: sum) on 31 March at 12:00 in Berlin held the night's one value,
    and its tile compared it with the whole of 30 March (four values): a drop every morning
    that was never one. An unfinished period of a sum (or max, min) is compared with
    the same part of the period before, by the local clock, and the tile says up to when:
    the day with 30 March to 12:00; the week (from Monday 30 March) with last week to
    Tuesday 12:00, in winter time then (UTC+1); the month with the whole of February, which
    ended before its 31st day. A `last` KPI still compares whole periods."""
    start = (NOW - timedelta(days=DAYS)).date()

    def index(day: date) -> int:
        return (day - start).days

    def downloads(*stamps: tuple[date, int]) -> float:
        return sum(value_of("pypi.downloads", index(d), h) for d, h in stamps)

    mar = {d: date(2026, 3, d) for d in range(22, 32)}
    today = downloads((mar[30], 23))  # 01:00 in Berlin: the store's newest value
    expected = {
        # Berlin is UTC+2 from 29 March: 30 March 00:00-12:00 is 29 March 22:00-30 March 10:00 UTC
        "day": (
            "2026-03-30",
            "2026-03-30T12:00:00+02:00",
            today,
            downloads((mar[29], 23), (mar[30], 1), (mar[30], 7)),
        ),
        # and UTC+1 before: Monday 23 March 00:00 to Tuesday 24 March 12:00 is 22 March 23:00
        # to 24 March 11:00 UTC
        "week": (
            "2026-03-23",
            "2026-03-24T12:00:00+01:00",
            today + downloads((mar[29], 23), (mar[30], 1), (mar[30], 7), (mar[30], 13)),
            downloads((mar[22], 23), *((mar[23], h) for h in HOURS), (mar[24], 1), (mar[24], 7)),
        ),
    }
    for period, (before, until, value, previous) in expected.items():
        doc = client.get("/api/kpis", params={"period": period}).json()
        tile = next(t for t in doc["kpis"] if t["id"] == "pypi.downloads")
        assert tile["value"] == pytest.approx(value), period
        assert tile["previous"] == pytest.approx(previous), period
        assert (tile["previous_period"], tile["previous_until"]) == (before, until), period
        assert tile["change"] == pytest.approx(value - previous), period
        html = client.get("/", params={"period": period}).text
        card = html.split('data-kpi="pypi.downloads"', 1)[1].split("</article>", 1)[0]
        shown = "12:00" if period == "day" else "2026-03-24 12:00"
        assert f"vs {before} up to {shown}</span>" in card, period
    month = client.get("/api/kpis", params={"period": "month"}).json()
    tile = next(t for t in month["kpis"] if t["id"] == "pypi.downloads")
    february = [date(2026, 2, 1) + timedelta(days=i) for i in range(28)]
    whole = downloads(*((d, h) for d in february for h in HOURS), (date(2026, 1, 31), 23))
    whole -= value_of("pypi.downloads", index(date(2026, 2, 28)), 23)  # 1 March in Berlin
    assert (tile["previous_period"], tile["previous_until"]) == ("2026-02-01", None)
    assert tile["previous"] == pytest.approx(whole)
    star = client.get("/api/kpis").json()["kpis"][0]  # agg: last
    assert (star["previous_period"], star["previous_until"]) == ("2026-03-30", None)


def test_an_unfinished_sum_reads_so_far_on_its_kpi_page(client: Any) -> None:
    """The KPI page's last point of a sum is today's value so far, drawn and listed beside the
    previous window's whole days as if it were one (a drop on every chart). The point says
    `partial`, and the table reads "(so far)" after it; a `last` KPI's newest point is
    whole."""
    doc = client.get("/api/kpis/pypi.downloads/series", params={"range": "30d"}).json()
    assert doc["points"][-1]["period"] == "2026-03-31" and doc["points"][-1]["partial"] is True
    assert not any(p.get("partial") for p in doc["points"][:-1])
    week = client.get("/api/kpis/pypi.downloads/series", params={"period": "week"}).json()
    assert week["points"][-1]["period"] == "2026-03-30" and week["points"][-1]["partial"]
    page = client.get("/kpi/pypi.downloads", params={"range": "30d"}).text
    table = page.split('<table class="values">', 1)[1]
    first = table.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert f"<td class=num>{doc['points'][-1]['text']} (so far)</td>" in first
    star = client.get("/api/kpis/crm.paying/series", params={"range": "30d"}).json()
    assert "partial" not in star["points"][-1]


def test_an_unfinished_sum_whose_period_before_had_nothing_by_then_is_not_new(
    tmp_path: Path,
) -> None:
    """Yesterday's only value came in the evening: by noon it had none, so there is nothing to
    compare today's morning with. The tile says so, never "new" (the KPI is not) nor a
    change against the whole of yesterday."""
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: Europe/Berlin\n"
        "kpis:\n  crm.calls: {agg: sum}\nsources:\n"
        "  - {name: crm, type: http_json, url: 'http://127.0.0.1:9/', metrics: {calls: d}}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    for when, value in (
        (datetime(2026, 3, 30, 18, tzinfo=UTC), 7.0),  # 20:00 in Berlin
        (datetime(2026, 3, 31, 7, tzinfo=UTC), 3.0),  # 09:00
    ):
        run = store.begin_run(started_at=when.timestamp())
        store.finish_run(run, observations=[("crm.calls", when.timestamp(), value, "crm")])
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        tile = data.overview("day")["kpis"][0]
        assert (tile["value"], tile["previous"], tile["change"], tile["change_text"]) == (
            3.0,
            None,
            None,
            "",
        )
        assert tile["previous_until"] == "2026-03-30T12:00:00+02:00"
        card = pages.tile_html(tile)
        assert "2026-03-30 had no value up to 12:00" in card and "new" not in card
    finally:
        data.close()


def test_a_target_not_reached_never_reads_100_percent() -> None:
    """4,996 of a 5,000 target drew "100% of 5,000" (99.92 rounded): a goal shown as met that
    was not. The share is cut down, never rounded up: 99% below the target, 100% from it on
    (29 of 100 is 29%, though 0.29 * 100 is 28.999999999999996 in binary)."""
    assert "<span>99% of 5,000</span>" in pages.progress_bar(4996 / 5000, 5000.0, None)
    assert "<span>100% of 5,000</span>" in pages.progress_bar(1.0, 5000.0, None)
    assert "<span>100% of 5,000</span>" in pages.progress_bar(5004 / 5000, 5000.0, None)
    assert "<span>0% of 5,000</span>" in pages.progress_bar(4 / 5000, 5000.0, None)
    assert "<span>124% of 800</span>" in pages.progress_bar(999 / 800, 800.0, None)
    assert "<span>29% of 100</span>" in pages.progress_bar(29 / 100, 100.0, None)


def test_a_negative_share_of_a_target_is_cut_toward_zero() -> None:
    """A KPI at -0.5% of its target read "-1% of 5,000": the share was rounded down (floor),
    which makes a negative one larger. It is cut toward zero, as a positive one is."""
    assert "<span>0% of 5,000</span>" in pages.progress_bar(-0.005, 5000.0, None)
    assert "<span>-1% of 5,000</span>" in pages.progress_bar(-0.0199, 5000.0, None)
    assert "<span>-29% of 100</span>" in pages.progress_bar(-29 / 100, 100.0, None)


def test_a_note_posted_to_the_dashboard_is_bounded(tmp_path: Path) -> None:
    """`POST /api/annotations` read the whole body, however large, before looking at it: one
    request could fill the dashboard's memory. A body past `MAX_NOTE_BODY` is refused with
    413 and a message that says how large a note may be, whether it says its length or not."""
    from starlette.testclient import TestClient

    from kpi_collector.report.web import MAX_NOTE_BODY

    (tmp_path / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    (tmp_path / "kpi.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "kpi.yaml")
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        app = create_app(config, token="note-token-5c1d", data=data)
        with TestClient(app, base_url="http://127.0.0.1") as c:
            headers = {
                "authorization": "Bearer note-token-5c1d",
                "content-type": "application/json",
            }
            big = b'{"text": "v1.0", "pad": "' + b"x" * MAX_NOTE_BODY + b'"}'
            sent = c.post("/api/annotations", content=big, headers=headers)
            assert sent.status_code == 413
            assert f"{MAX_NOTE_BODY:,} bytes" in sent.text
            # a body without Content-Length (chunked) is counted as it comes
            chunked = c.post(
                "/api/annotations", content=iter([big[:100], big[100:]]), headers=headers
            )
            assert chunked.status_code == 413
            ok = c.post("/api/annotations", content=b'{"text": "v1.0"}', headers=headers)
            assert ok.status_code == 201
            assert [n["text"] for n in c.get("/api/annotations", headers=headers).json()] == [
                "v1.0"
            ]
    finally:
        data.close()


def test_a_source_that_failed_stays_failing_after_a_run_of_other_sources(tmp_path: Path) -> None:
    """web failed in the 07:00 run; pypi, on its own schedule, ran alone at 07:15 without an
    error. The overview read only the newest run: web's tile and its line under the sources
    lost their "failing" at 07:15, as if web had recovered. A source is failing while its
    newest run that included it failed."""
    config = _copy_of(build_store(tmp_path / "built"), tmp_path / "copy")
    store = HistoryStore(config.store_url)
    ts = NOW.timestamp() - 60
    run = store.begin_run(started_at=ts)
    store.finish_run(run, observations=[("pypi.downloads", ts, 3.0, "pypi")], finished_at=ts)
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        doc = data.overview("day")
        web = next(t for t in doc["kpis"] if t["id"] == "web.xss")
        assert web["status"] == "failing" and "HTTP 500" in (web["error"] or "")
        assert SECRET not in (web["error"] or "")
        source = next(s for s in doc["sources"] if s["name"] == "web")
        assert source["status"] == "failing" and source["error"] == web["error"]
        crm = next(s for s in doc["sources"] if s["name"] == "crm")
        assert crm["status"] != "failing"  # its newest run stored its value
    finally:
        data.close()


def test_the_dashboard_over_a_store_nothing_wrote_creates_nothing(tmp_path: Path) -> None:
    """`store: sqlite:///data/kpi.db` that nothing has written yet (a fresh config, or a
    misspelt path): the dashboard created the file and its folder on its first page, so the
    typo became a new empty store that every later command read as "nothing has run". It
    reads nothing and creates nothing now: its pages are empty and health says the store
    does not exist; once a run writes the store, the same dashboard shows its values. A note
    added from the KPI page is a write: that one opens (and creates) the store."""
    from starlette.testclient import TestClient

    (tmp_path / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    (tmp_path / "kpi.yaml").write_text(
        CONFIG.replace("sqlite:///kpi.db", "sqlite:///data/kpi.db"), encoding="utf-8"
    )
    config = load_config(tmp_path / "kpi.yaml")
    clock = [NOW.timestamp()]
    data = DashboardData(config, clock=lambda: clock[0])
    try:
        with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
            for path in ("/", "/runs", "/kpi/crm.paying", "/api/runs", "/metrics"):
                assert c.get(path).status_code == 200, path
            doc = c.get("/api/kpis").json()
            assert [t["value"] for t in doc["kpis"]] == [None, None, None]
            # as for an empty store: a new config is no alarm, and it says what is missing
            assert doc["health"] is not None and doc["health"]["ok"]
            assert "data/kpi.db does not exist: nothing has run" in doc["health"]["warnings"][0]
            assert "does not exist" in c.get("/").text
            assert c.get("/api/kpis/crm.paying/series").json()["points"] == []
            assert not (tmp_path / "data").exists()

            store = HistoryStore(config.store_url)
            run = store.begin_run(started_at=NOW.timestamp() - 60)
            store.finish_run(
                run,
                observations=[("crm.paying", NOW.timestamp() - 60, 812.0, "crm")],
                finished_at=NOW.timestamp() - 59,
            )
            store.close()
            clock[0] += 2  # a page a moment later
            doc = c.get("/api/kpis").json()
            assert doc["kpis"][0]["value"] == 812.0
            assert not any("does not exist" in w for w in doc["health"]["warnings"])
    finally:
        data.close()

    other = tmp_path / "other"
    other.mkdir()
    (other / "kpi.yaml").write_text(CONFIG, encoding="utf-8")
    (other / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    config = load_config(other / "kpi.yaml")
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        app = create_app(config, token="note-token-5c1d", data=data)
        with TestClient(app, base_url="http://127.0.0.1") as c:
            headers = {"authorization": "Bearer note-token-5c1d"}
            assert c.get("/api/annotations", headers=headers).json() == []
            assert not (other / "kpi.db").exists()
            sent = c.post(
                "/api/annotations", json={"text": "v1.0", "day": "2026-03-30"}, headers=headers
            )
            assert sent.status_code == 201
            assert [n["text"] for n in c.get("/api/annotations", headers=headers).json()] == [
                "v1.0"
            ]
    finally:
        data.close()
    assert (other / "kpi.db").exists()


def test_kpi_serve_over_a_store_nothing_wrote_says_so_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    config_path = tmp_path / "kpi.yaml"
    config_path.write_text(CONFIG.replace("sqlite:///kpi.db", "sqlite:///kpi-typo.db"))
    port = _free_port()
    proc = _start_kpi_serve(config_path, port)
    try:
        answer = _first_answer(proc, f"http://127.0.0.1:{port}/api/kpis")
        assert answer.status_code == 200
        assert [t["value"] for t in answer.json()["kpis"]] == [None, None, None]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert f"the store {tmp_path / 'kpi-typo.db'} does not exist: nothing has run" in output
    assert not (tmp_path / "kpi-typo.db").exists()


def test_an_alert_whose_for_has_not_passed_is_pending_on_the_overview(tmp_path: Path) -> None:
    """An alert true in one run of its `for: 3` has fired for nobody yet: `kpi validate
    --health` says "alert pending since …", but the overview listed it like a firing one
    ("alert since …: seven.value below 100"). The page and the document say pending."""
    from starlette.testclient import TestClient

    (tmp_path / "kpi.yaml").write_text(
        f"sources:\n  - {{name: seven, type: command, command: [{sys.executable}, -c, 'print(7)']}}\n"
        "alerts:\n  - {kpi: seven.value, below: 100, for: 3}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    at = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
    Pipeline.from_config(config).process(now=at)
    data = DashboardData(config, clock=lambda: at.timestamp() + 60, cache=False)
    try:
        with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
            health = c.get("/api/kpis").json()["health"]
            (alert,) = health["alerts"]
            assert alert["alert"] == "seven.value below 100" and alert["firing"] is False
            page = c.get("/").text
            assert "alert pending since 2026-11-02 07:00" in page
            assert "alert since" not in page
    finally:
        data.close()
    for n in (1, 2):
        Pipeline.from_config(config).process(now=at + timedelta(minutes=n))
    data = DashboardData(config, clock=lambda: at.timestamp() + 300, cache=False)
    try:
        with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
            assert c.get("/api/kpis").json()["health"]["alerts"][0]["firing"] is True
            page = c.get("/").text
            assert "alert since 2026-11-02 07:00" in page and "alert pending" not in page
    finally:
        data.close()


def test_a_sum_past_the_largest_double_is_an_empty_csv_cell(tmp_path: Path) -> None:
    """Two values near 1e308 in a day of a `sum` KPI add up past the largest double: the JSON
    says null, but the CSV downloads wrote `inf`, a text a spreadsheet does not read as the
    JSON's "no number" (and `kpi history --format csv` leaves that cell empty). Empty too."""
    from starlette.testclient import TestClient

    (tmp_path / ".env").write_text(f"CRM_TOKEN={SECRET}\n", encoding="utf-8")
    (tmp_path / "kpi.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    ts = NOW.timestamp() - 3600
    run = store.begin_run(started_at=ts)
    store.finish_run(
        run,
        observations=[
            ("pypi.downloads", ts, 1e308, "pypi"),
            ("pypi.downloads", ts + 1, 1e308, "pypi"),
        ],
    )
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        with TestClient(create_app(config, data=data), base_url="http://127.0.0.1") as c:
            series = c.get("/api/kpis/pypi.downloads/series.csv?range=30d").text.splitlines()
            assert series[1:] == ["2026-03-31,pypi.downloads,"]
            rows = c.get("/api/kpis.csv").text.splitlines()
            header = rows[0].split(",")
            row = next(r.split(",") for r in rows if r.startswith("pypi.downloads,"))
            assert row[header.index("value")] == ""
            assert "inf" not in c.get("/api/kpis.csv").text
    finally:
        data.close()
