"""The dashboard in real headless Chromium (Playwright driving /usr/bin/chromium)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kpi_collector.config import load_config
from kpi_collector.report.data import DashboardData
from kpi_collector.report.web import ServerThread, create_app
from tests.services import missing
from tests.test_dashboard import NOW, SECRET, XSS, build_store

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
]


def require_chromium() -> str:
    """The Chromium binary, or skip (fail under KPI_REQUIRE_SERVICES=1) where it is missing."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    missing(f"{CHROMIUM} is missing (Debian package `chromium`; .ci/run installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class Watched:
    """A page whose console errors, page errors, dialogs and outside requests are recorded."""

    def __init__(self, browser: Any, base: str, **options: Any) -> None:
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.dialogs: list[str] = []
        self.context = browser.new_context(**options)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.base = base

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.base) or url.startswith(("data:", "about:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DashboardData]]:
    config_path = build_store(tmp_path_factory.mktemp("browser"))
    data = DashboardData(load_config(config_path), clock=NOW.timestamp)
    with ServerThread(create_app(data.config, data=data)) as url:
        yield url, data
    data.close()


@pytest.fixture
def watched(browser: Any, server: tuple[str, DashboardData]) -> Iterator[Watched]:
    page = Watched(browser, server[0], viewport={"width": 1280, "height": 900})
    yield page
    assert not page.errors, f"console errors: {page.errors}"
    assert not page.outside, f"requests that left the machine: {page.outside}"
    assert not page.dialogs, f"a script ran: {page.dialogs}"
    page.close()


def test_overview_shows_the_stored_values(
    watched: Watched, server: tuple[str, DashboardData]
) -> None:
    url, data = server
    page = watched.page
    page.goto(url + "/")
    doc = data.overview("day")
    star = page.locator(".northstar .tile")
    assert star.locator(".value").inner_text() == "999"
    assert star.locator(".title").inner_text().strip() == "Paying customers"
    assert star.locator("svg.spark").get_attribute("data-points") == "30"
    for tile in doc["kpis"][1:]:
        card = page.locator(f'.grid .tile[data-kpi="{tile["id"]}"]')
        assert card.locator(".value").inner_text() == tile["value_text"]
        drawn = [v for v in tile["sparkline"] if v is not None]
        assert card.locator("svg.spark").get_attribute("data-points") == str(len(drawn))
        points = card.locator("svg.spark polyline").get_attribute("points") or ""
        assert len(points.split()) == len(drawn) == 30
    assert page.get_by_text(XSS).count() >= 1  # the hostile title shows as text
    assert "failing" in page.locator(".sources").inner_text()
    assert SECRET not in page.content()


def test_overview_period_switch_changes_the_data(
    watched: Watched, server: tuple[str, DashboardData]
) -> None:
    url, _ = server
    page = watched.page
    page.goto(url + "/")
    day_points = page.locator('.grid .tile[data-kpi="pypi.downloads"] svg.spark').get_attribute(
        "data-points"
    )
    day_value = page.locator('.grid .tile[data-kpi="pypi.downloads"] .value').inner_text()
    page.click('a[data-period="week"]')
    page.wait_for_url("**/?period=week")
    week = page.locator('.grid .tile[data-kpi="pypi.downloads"]')
    assert week.locator("svg.spark").get_attribute("data-points") == "26" != day_points
    assert week.locator(".value").inner_text() != day_value  # a weekly sum, not one day's


def chart_state(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => { const c = window.kpiCharts[0];
                 return {period: c.period, points: c.points, drawn: c.chart.data[1].filter(v => v != null).length,
                         x: c.chart.data[0].length, first: c.chart.data[1][0],
                         prev: c.chart.data[2].filter(v => v != null).length,
                         year: c.chart.data[3].filter(v => v != null).length}; }"""
        )
    )


def test_kpi_chart_draws_every_point_and_switches_period(
    watched: Watched, server: tuple[str, DashboardData]
) -> None:
    url, data = server
    page = watched.page
    page.goto(url + "/kpi/crm.paying?period=day&range=90d")
    page.wait_for_selector("#chart[data-loaded='day/90d'] canvas")
    state = chart_state(page)
    expected = data.series("crm.paying", "day", data_since(data, "day", 90))
    assert state["points"] == state["drawn"] == state["x"] == len(expected["points"]) == 90
    assert state["prev"] == len(expected["previous"]) > 0
    assert state["year"] == len(expected["year_ago"]) > 0
    assert page.locator("#table tbody tr").count() == 90

    page.click('a[data-period="week"]')
    page.wait_for_selector("#chart[data-loaded='week/1y'] canvas")
    weekly = chart_state(page)
    assert weekly["period"] == "week" and weekly["drawn"] == weekly["points"] == 52
    assert weekly["first"] != state["first"]
    assert page.locator("#table tbody tr").count() == 52
    assert "period=week" in (page.locator("#csv").get_attribute("href") or "")
    assert page.url.endswith("?period=week&range=1y")

    page.click('a[data-range="13w"]')
    page.wait_for_selector("#chart[data-loaded='week/13w'] canvas")
    assert chart_state(page)["drawn"] == 13
    page.uncheck("#cmp-year")
    assert page.evaluate("() => window.kpiCharts[0].chart.series[3].show") is False


def data_since(data: DashboardData, period: str, count: int) -> Any:
    from datetime import datetime

    from kpi_collector.report.data import shift_periods

    today = datetime.fromtimestamp(data.clock(), data.zone).date()
    return shift_periods(today, period, count - 1)


def test_csv_download(watched: Watched, server: tuple[str, DashboardData]) -> None:
    url, _ = server
    page = watched.page
    page.goto(url + "/kpi/crm.paying?period=month&range=12m")
    with page.expect_download() as info:
        page.click("#csv")
    text = Path(info.value.path()).read_text(encoding="utf-8")
    lines = text.strip().splitlines()
    assert lines[0] == "period,kpi,value" and len(lines) == 13


def test_hostile_title_on_its_kpi_page(watched: Watched, server: tuple[str, DashboardData]) -> None:
    url, _ = server
    page = watched.page
    page.goto(url + "/kpi/web.xss")
    page.wait_for_selector("#chart canvas")
    assert page.locator(".crumbs span").inner_text() == XSS
    assert page.locator("script:not([src]):not([type='application/json'])").count() == 0


def test_runs_page(watched: Watched, server: tuple[str, DashboardData]) -> None:
    url, _ = server
    page = watched.page
    page.goto(url + "/runs")
    assert page.locator("table.runs tbody tr").count() == 2
    assert "partial" in page.locator("table.runs tbody tr").first.inner_text()
    assert "HTTP 500" in page.locator("table.runs").inner_text()
    assert "slack" in page.locator("table.deliveries").inner_text()


def test_fits_a_phone(browser: Any, server: tuple[str, DashboardData]) -> None:
    url, _ = server
    phone = Watched(
        browser, url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    try:
        for path in ("/", "/kpi/crm.paying", "/runs"):
            phone.page.goto(url + path)
            width = phone.page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
        assert not phone.errors and not phone.outside
    finally:
        phone.close()


def test_with_an_access_token(browser: Any, server: tuple[str, DashboardData]) -> None:
    _, data = server
    token = "browser-token-3b9a"
    with ServerThread(create_app(data.config, data=data, token=token)) as url:
        visitor = Watched(browser, url, viewport={"width": 1280, "height": 900})
        try:
            denied = visitor.page.goto(url + "/")
            assert denied is not None and denied.status == 401
            visitor.errors.clear()  # the 401 itself is logged as a failed resource
            visitor.page.goto(url + f"/kpi/crm.paying?token={token}")
            assert visitor.page.url == url + "/kpi/crm.paying"  # the token left the address bar
            visitor.page.wait_for_selector("#chart[data-loaded='day/90d'] canvas")
            visitor.page.click('a[data-period="month"]')  # fetch() carries the cookie
            visitor.page.wait_for_selector("#chart[data-loaded='month/3y'] canvas")
            assert token not in visitor.page.content()
            assert not visitor.errors and not visitor.outside
        finally:
            visitor.close()


BRAND_NEW = """\
schedule: "0 7 * * *"
kpis:
  queue.n: {title: Support queue}
sources:
  - {name: queue, type: python, function: "tests.test_dashboard:steady"}
"""


def test_a_brand_new_config_is_not_an_alarm_and_every_empty_view_says_what_to_do(
    browser: Any, tmp_path: Path
) -> None:
    """`kpi init`, then the dashboard a minute later: no red "overdue", the job is "not run
    yet", and the overview, the KPI page and the runs page each say which command fills them."""
    (tmp_path / "kpi.yaml").write_text(BRAND_NEW, encoding="utf-8")
    data = DashboardData(load_config(tmp_path / "kpi.yaml"))  # the real clock: created now
    try:
        with ServerThread(create_app(data.config, data=data)) as url:
            visitor = Watched(browser, url, viewport={"width": 1280, "height": 900})
            try:
                page = visitor.page
                page.goto(url + "/")
                assert page.locator(".health li.problem").count() == 0
                assert "overdue" not in page.content()
                assert "job main has not run yet; first due" in page.locator(".health").inner_text()
                hint = page.locator(".getting-started").inner_text()
                assert "No values yet" in hint and "kpi run" in hint
                page.goto(url + "/kpi/queue.n")
                empty = page.locator("#chart p.empty")
                empty.wait_for()
                assert "No values for Support queue yet" in empty.inner_text()
                assert empty.locator("bdi").inner_text() == "Support queue"  # its own direction
                assert "kpi run" in empty.inner_text()
                assert page.locator("#chart canvas").count() == 0
                page.goto(url + "/runs")
                assert "kpi run" in page.locator("p.empty").inner_text()
                assert not visitor.errors and not visitor.outside
            finally:
                visitor.close()
    finally:
        data.close()


def test_kpi_page_follows_the_period_draws_the_target_and_shows_loading(
    watched: Watched, server: tuple[str, DashboardData]
) -> None:
    url, _ = server
    page = watched.page
    overview: dict[str, dict[str, str | None]] = {}
    for period in ("day", "week"):  # what the overview shows for the KPI in each period
        page.goto(url + f"/?period={period}")
        tile = page.locator('.northstar .tile[data-kpi="crm.paying"]')
        overview[period] = {
            "change": tile.locator(".change").inner_text(),
            "points": tile.locator("svg.spark").get_attribute("data-points"),
        }
    assert overview["day"] != overview["week"]

    page.goto(url + "/kpi/crm.paying?period=day&range=90d")
    page.wait_for_selector("#chart[data-loaded='day/90d'] canvas")
    head = page.locator(".northstar .tile")
    assert head.locator(".change").inner_text() == overview["day"]["change"]
    assert head.locator("svg.spark").get_attribute("data-points") == overview["day"]["points"]
    target = page.evaluate(
        """() => { const c = window.kpiCharts[0].chart;
             const i = c.series.findIndex(s => s.label === "target");
             return {i: i, values: i < 0 ? [] : c.data[i], n: c.data[0].length}; }"""
    )
    assert target["i"] > 0 and target["n"] == 90
    assert target["values"] == [800] * 90  # crm.paying: {target: 800}

    page.click('a[data-period="week"]')
    page.wait_for_selector("#chart[data-loaded='week/1y'] canvas")
    head = page.locator(".northstar .tile")
    assert head.locator(".change").inner_text() == overview["week"]["change"]
    assert head.locator("svg.spark").get_attribute("data-points") == overview["week"]["points"]
    assert page.locator('a[data-period="week"][aria-current]').count() == 1

    held: list[Any] = []
    page.route("**/api/kpis/crm.paying/series?*", lambda route: held.append(route))
    assert page.locator("#loading").is_hidden()
    page.click('a[data-range="13w"]')
    page.wait_for_selector("#loading", state="visible")
    assert page.locator("#chart").get_attribute("aria-busy") == "true"
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector("#chart[data-loaded='week/13w'] canvas")
    assert page.locator("#loading").is_hidden()
    assert page.locator("#chart").get_attribute("aria-busy") == "false"


def test_a_failing_source_badges_its_own_tile(
    watched: Watched, server: tuple[str, DashboardData]
) -> None:
    """The newest run failed for `web` (HTTP 500): its tile says so itself, at laptop width,
    without the token the error text held; the other tiles carry no failing badge."""
    url, _ = server
    page = watched.page
    page.goto(url + "/")
    tile = page.locator('.tile[data-kpi="web.xss"]')
    badge = tile.locator(".badge.failing")
    assert badge.is_visible() and badge.inner_text() == "failing"
    assert "HTTP 500" in tile.locator(".tile-error").inner_text()
    assert SECRET not in (badge.get_attribute("title") or "") and SECRET not in page.content()
    assert page.locator(".tile .badge.failing").count() == 1


def test_overview_downloads_as_csv_and_json(
    watched: Watched, server: tuple[str, DashboardData]
) -> None:
    """One click each: the overview of the shown period as CSV and as JSON, same KPIs in the
    same order as the tiles, the values the tiles show."""
    import csv
    import json

    url, _ = server
    page = watched.page
    page.goto(url + "/?period=week")
    shown = page.locator(".tile").evaluate_all("els => els.map(e => e.dataset.kpi)")
    with page.expect_download() as info:
        page.click("#overview-csv")
    assert info.value.suggested_filename == "kpis-week.csv"
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert [r["kpi"] for r in rows] == shown == ["crm.paying", "web.xss", "pypi.downloads"]
    paying = rows[0]
    assert paying["value"] == "999.0" and paying["title"] == "Paying customers"
    assert paying["target"] == "800.0" and all(r["period"] for r in rows)
    assert {r["period"] for r in rows} == {paying["period"]}  # every KPI's newest week
    assert rows[1]["title"] == XSS and rows[1]["status"] == "failing"
    with page.expect_download() as info:
        page.click("#overview-json")
    assert info.value.suggested_filename == "kpis-week.json"
    doc = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert doc["period"] == "week" and [t["id"] for t in doc["kpis"]] == shown
    assert doc["kpis"][0]["value"] == 999.0


def test_groups_hidden_title_and_notes_in_chromium(browser: Any, tmp_path: Path) -> None:
    """Sections in config order with headings, a hidden KPI left off, the title in the top
    bar; a note from `kpi annotate` as a marker on the chart; with a token, the KPI page's
    form stores a note that the chart then marks; writing is refused otherwise."""
    import json
    import urllib.error
    import urllib.request
    from datetime import date

    from kpi_collector.store.annotations import add_annotation, list_annotations
    from tests.test_sections import NOW as GROUPED_NOW
    from tests.test_sections import build_grouped

    folder = build_grouped(tmp_path)
    data = DashboardData(load_config(folder / "kpi.yaml"), clock=GROUPED_NOW.timestamp)
    add_annotation(data.store, "v1.0 released", date(2026, 11, 20))
    token = "notes-token-77c1"
    try:
        with ServerThread(create_app(data.config, data=data, token=token)) as url:
            visitor = Watched(browser, url, viewport={"width": 1280, "height": 900})
            try:
                page = visitor.page
                page.goto(url + f"/?token={token}")
                headings = page.locator("h2.group").all_inner_texts()
                assert [h.strip().lower() for h in headings] == ["revenue", "growth", "other"]
                growth = page.locator('section.group-section[aria-label="Growth"] .tile')
                assert growth.evaluate_all("els => els.map(e => e.dataset.kpi)") == ["gh.stars"]
                assert page.locator('.tile[data-kpi="gh.internal"]').count() == 0
                assert page.locator("header .brand").inner_text() == "Acme weekly"
                assert page.title() == "Acme weekly"

                page.goto(url + "/kpi/gh.stars?period=day&range=30d")
                page.wait_for_selector("#chart[data-loaded='day/30d'] canvas")
                markers = page.evaluate("() => window.kpiCharts[0].markers")
                assert [(m["day"], m["text"]) for m in markers] == [("2026-11-20", "v1.0 released")]
                width = page.evaluate(
                    "() => window.kpiCharts[0].chart.bbox.width / devicePixelRatio"
                )
                assert 0 < markers[0]["x"] <= width + 80
                assert page.locator("#notes li").all_inner_texts() == ["2026-11-20 v1.0 released"]

                page.fill("#annotate input[name=day]", "2026-11-27")
                page.fill("#annotate input[name=text]", "pricing page launched")
                page.click("#annotate button")
                page.wait_for_function("() => window.kpiCharts[0].markers.length === 2")
                assert "Saved" in page.locator("#annotate-status").inner_text()
                assert page.locator("#notes li").first.inner_text() == (
                    "2026-11-27 pricing page launched"
                )
                stored = [(n.day.isoformat(), n.text) for n in list_annotations(data.store)]
                assert stored == [
                    ("2026-11-20", "v1.0 released"),
                    ("2026-11-27", "pricing page launched"),
                ]
                assert not visitor.errors and not visitor.outside

                def post(body: bytes, **headers: str) -> int:
                    request = urllib.request.Request(
                        url + "/api/annotations",
                        data=body,
                        method="POST",
                        headers={"authorization": f"Bearer {token}", **headers},
                    )
                    try:
                        with urllib.request.urlopen(request, timeout=10) as answer:
                            return int(answer.status)
                    except urllib.error.HTTPError as exc:
                        return int(exc.code)

                note = json.dumps({"text": "x", "day": "2026-11-28"}).encode()
                form = b"text=x&day=2026-11-28"
                assert post(form, **{"content-type": "application/x-www-form-urlencoded"}) == 415
                evil = {"content-type": "application/json", "origin": "http://evil.example"}
                assert post(note, **evil) == 403
                assert post(b'{"text": "  "}', **{"content-type": "application/json"}) == 400
                assert len(list_annotations(data.store)) == 2
            finally:
                visitor.close()
        with ServerThread(create_app(data.config, data=data)) as url:  # no token: no writing
            visitor = Watched(browser, url, viewport={"width": 1280, "height": 900})
            try:
                visitor.page.goto(url + "/kpi/gh.stars")
                assert visitor.page.locator("#annotate").count() == 0
                answer = visitor.page.request.post(
                    url + "/api/annotations", data={"text": "sneaky"}
                )
                assert answer.status == 403 and "kpi annotate" in answer.json()["error"]
            finally:
                visitor.close()
        assert len(list_annotations(data.store)) == 2
    finally:
        data.close()


LONG_IDS = """\
store: sqlite:///kpi.db
timezone: UTC
kpis:
  warehouse_analytics.weekly_active_organisations_total: {title: Weekly active organisations of the self-serve workspace plan}
sources:
  - name: warehouse_analytics
    type: http_json
    url: http://127.0.0.1:9/stats
    metrics: {weekly_active_organisations_total: data.n}
"""

# where each line of an element's text starts: a character whose box is lower than the one before
LINE_STARTS = """(el) => {
  const text = el.firstChild ? el.textContent : "";
  const starts = [];
  let top = null, at = 0;
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++, at++) {
      const range = document.createRange();
      range.setStart(node, i); range.setEnd(node, i + 1);
      const box = range.getBoundingClientRect();
      if (box.width === 0) continue;
      if (top !== null && box.top > top + 1) starts.push(at);
      top = box.top;
    }
  }
  return {text, starts};
}"""


def test_a_long_kpi_id_wraps_between_its_parts_never_inside_a_word(
    browser: Any, tmp_path: Path
) -> None:
    """On a phone, a tile's KPI id too long for one line wraps after a `.` or `_`, and its
    title between words: never in the middle of a word (issue 13 §6)."""
    (tmp_path / "kpi.yaml").write_text(LONG_IDS, encoding="utf-8")
    config = load_config(tmp_path / "kpi.yaml")
    from kpi_collector.store import HistoryStore

    store = HistoryStore(config.store_url)
    kpi = "warehouse_analytics.weekly_active_organisations_total"
    run = store.begin_run(started_at=NOW.timestamp() - 60)
    store.finish_run(run, observations=[(kpi, NOW.timestamp() - 60, 1234.0, "warehouse_analytics")])
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        with ServerThread(create_app(data.config, data=data)) as url:
            phone = Watched(browser, url, viewport={"width": 390, "height": 844}, is_mobile=True)
            try:
                phone.page.goto(url + "/")
                ident = phone.page.locator(f'article[data-kpi="{kpi}"] .kpi-id')
                lines = ident.evaluate(LINE_STARTS)
                assert lines["text"] == kpi
                assert lines["starts"], "the id fits one line: the test needs a longer one"
                for at in lines["starts"]:
                    assert kpi[at - 1] in "._", f"the id breaks inside a word: {kpi[:at]}|"
                title = phone.page.locator(f'article[data-kpi="{kpi}"] h2.title')
                lines = title.evaluate(LINE_STARTS)
                assert lines["starts"], "the title fits one line: the test needs a longer one"
                for at in lines["starts"]:
                    assert lines["text"][at - 1] == " " or lines["text"][at] == " ", (
                        f"the title breaks inside a word: {lines['text'][:at]}|"
                    )
                assert not phone.errors and not phone.outside
            finally:
                phone.close()
    finally:
        data.close()


def test_small_values_read_on_the_chart_as_stored(browser: Any, tmp_path: Path) -> None:
    """A rate like 0.0001234 showed as "0" in the chart's legend and on its axis (rounded to
    two decimals), and a value with a unit lost it there. Now the legend shows each point's
    text as the table does (the server's), and an axis tick below 1 keeps four digits."""
    from datetime import timedelta

    from kpi_collector.format import format_value
    from kpi_collector.store import HistoryStore

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "kpis: {web.rate: {title: Rate}, web.cash: {title: Cash, unit: USD}}\n"
        'sources: [{name: web, type: http_json, url: "http://127.0.0.1:9/",'
        " metrics: {rate: d.r, cash: d.c}}]\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    run = store.begin_run(started_at=NOW.timestamp() - 60)
    days = [(NOW - timedelta(days=d, hours=2)).timestamp() for d in range(10)]
    store.finish_run(
        run,
        observations=[("web.rate", t, 0.0001234 * (i + 1), "web") for i, t in enumerate(days)]
        + [("web.cash", t, -1234.5 - i, "web") for i, t in enumerate(days)],
    )
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        with ServerThread(create_app(config, data=data)) as url:
            visitor = Watched(browser, url, viewport={"width": 1280, "height": 900})
            try:
                page = visitor.page
                for kpi in ("web.rate", "web.cash"):
                    page.goto(url + f"/kpi/{kpi}?period=day&range=30d")
                    page.wait_for_selector("#chart[data-loaded='day/30d'] canvas")
                    shown = page.evaluate(
                        """() => { const u = window.kpiCharts[0].chart;
                             const last = u.data[0].length - 1;
                             u.setCursor({left: u.valToPos(u.data[0][last], "x"), top: 5});
                             return document.querySelectorAll(".u-legend .u-series")[1]
                               .querySelector(".u-value").textContent; }"""
                    )
                    expected = data.series(kpi, "day")["points"][-1]["text"]
                    assert shown == expected, kpi
                ticks = page.evaluate(
                    "() => { const u = window.kpiCharts[0].chart;"
                    " return u.axes[1].values(u, [-0.0, 0.0002, 0.0004, 0.0006], 1, 50, 0.0002); }"
                )
                assert ticks == ["0", "0.0002", "0.0004", "0.0006"]
                # large ticks have units past "B" (1e15 read "1000000B"), a round one is
                # shown in full (1.25M, not "1.3M")
                big = [1e15, 2.5e15, 2.5e12, 1.25e6, 12250.0, 999999.0]
                ticks = page.evaluate(
                    "(v) => { const u = window.kpiCharts[0].chart;"
                    " return u.axes[1].values(u, v, 1, 50, 1); }",
                    big,
                )
                assert ticks == ["1e+15", "2.5e+15", "2.5T", "1.25M", "12.25k", "999.999k"]
                # below 1e4 the browser writes a value as format.py does: one that is not
                # whole never reads as whole (99.999 read "100", 9,999.999 "10,000")
                small = [99.999, 999.99, 9999.999, 0.99999, 2.9999999999999996, 12.345, 1234.0]
                ticks = page.evaluate(
                    "(v) => { const u = window.kpiCharts[0].chart;"
                    " return u.axes[1].values(u, v, 1, 50, 1); }",
                    small,
                )
                assert ticks == [format_value(v) for v in small]
                assert not visitor.errors and not visitor.outside and not visitor.dialogs
            finally:
                visitor.close()
    finally:
        data.close()


def test_periods_read_as_stored_in_a_browser_west_of_utc(
    browser: Any, server: tuple[str, DashboardData]
) -> None:
    """A period starts at a date (2026-03-30), sent as midnight UTC; the chart formatted it in
    the browser's own zone, so in Los Angeles the legend and the axis said the day before.
    Now the chart reads its dates in UTC: the legend shows the period as stored."""
    url, data = server
    visitor = Watched(
        browser, url, viewport={"width": 1280, "height": 900}, timezone_id="America/Los_Angeles"
    )
    try:
        page = visitor.page
        for period, key, count in (("day", "30d", 30), ("week", "13w", 13), ("month", "12m", 12)):
            page.goto(url + f"/kpi/crm.paying?period={period}&range={key}")
            page.wait_for_selector(f"#chart[data-loaded='{period}/{key}'] canvas")
            shown = page.evaluate(
                """() => { const u = window.kpiCharts[0].chart;
                     return u.data[0].map((x, i) => {
                       u.setCursor({left: u.valToPos(x, "x"), top: 5});
                       return document.querySelector(".u-legend .u-series .u-value").textContent;
                     }); }"""
            )
            points = data.series("crm.paying", period, data_since(data, period, count))["points"]
            assert shown == [p["period"] for p in points] and shown, period
        assert not visitor.errors and not visitor.outside and not visitor.dialogs
    finally:
        visitor.close()


def test_a_day_without_a_value_is_a_gap_and_the_days_around_it_still_draw(
    browser: Any, tmp_path: Path
) -> None:
    """The chart's x was the list of days that have a value: a day without one was left out,
    so the line joined its neighbours across it as if nothing were missing, and the previous
    window's value of that day had no place and was dropped. Now x is every period of the
    window: a missing day is a gap (null) in the line, the comparisons keep their value
    there, and a day alone between two gaps (no segment to draw) is drawn as a dot, also
    where the line has no dots (more than 60 points)."""
    from datetime import timedelta

    from kpi_collector.store import HistoryStore

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "kpis: {web.users: {title: Users}}\n"
        'sources: [{name: web, type: http_json, url: "http://127.0.0.1:9/",'
        " metrics: {users: d.u}}]\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    run = store.begin_run(started_at=NOW.timestamp() - 60)
    missing_days = {3, 4, 5, 7, 9}  # days ago: 6 and 8 are alone between gaps
    days = [d for d in range(200) if d not in missing_days]
    store.finish_run(
        run,
        observations=[
            ("web.users", (NOW - timedelta(days=d, hours=2)).timestamp(), 1000.0 - d, "web")
            for d in days
        ],
    )
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        with ServerThread(create_app(config, data=data)) as url:
            visitor = Watched(browser, url, viewport={"width": 1280, "height": 900})
            try:
                page = visitor.page
                for key, count in (("30d", 30), ("90d", 90)):
                    page.goto(url + f"/kpi/web.users?period=day&range={key}")
                    page.wait_for_selector(f"#chart[data-loaded='day/{key}'] canvas")
                    state = page.evaluate(
                        """() => { const u = window.kpiCharts[0].chart;
                             return {x: u.data[0].length, current: u.data[1], previous: u.data[2],
                                     dots: u.series[1].points.filter(u, 1, false, null)}; }"""
                    )
                    doc = data.series("web.users", "day", data_since(data, "day", count))
                    assert state["x"] == count  # every day of the window, today's last
                    gaps = [count - 1 - d for d in sorted(missing_days)]
                    assert [i for i, v in enumerate(state["current"]) if v is None] == sorted(gaps)
                    assert [v for v in state["current"] if v is not None] == [
                        p["value"] for p in doc["points"]
                    ]
                    assert all(state["previous"][i] is not None for i in gaps)
                    assert state["dots"] == [count - 1 - 8, count - 1 - 6]
                assert not visitor.errors and not visitor.outside and not visitor.dialogs
            finally:
                visitor.close()
    finally:
        data.close()


def test_right_to_left_text_never_moves_the_numbers_beside_it(browser: Any, tmp_path: Path) -> None:
    """A Hebrew KPI id or title in a line with numbers after it (the runs page's `app.משתמשים:
    500 Internal Server Error`): the bidi algorithm took the `500` into the Hebrew run and
    drew it left of the Hebrew, as if the error were `app.500: משתמשים`. User text is in
    `<bdi>` now (titles, groups, names, notes, errors): the number stays after it, on the
    right, as in the text."""
    from kpi_collector.store import HistoryStore

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "kpis: {app.משתמשים: {title: משתמשים פעילים, group: מוצר}}\n"
        'sources: [{name: app, type: http_json, url: "http://127.0.0.1:9/",'
        " metrics: {משתמשים: d.u}}]\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    first = store.begin_run(started_at=NOW.timestamp() - 7200)
    store.finish_run(first, observations=[("app.משתמשים", NOW.timestamp() - 7200, 12.0, "app")])
    run = store.begin_run(started_at=NOW.timestamp() - 60)
    store.finish_run(
        run, observations=[], errors=[("app", "app.משתמשים", "500 Internal Server Error", True)]
    )
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        with ServerThread(create_app(config, data=data)) as url:
            visitor = Watched(browser, url, viewport={"width": 1280, "height": 900})
            try:
                page = visitor.page
                page.goto(url + "/runs")
                where = page.evaluate(
                    """() => { const li = document.querySelector("ul.errors li");
                         const name = li.querySelector("strong").getBoundingClientRect();
                         const walker = document.createTreeWalker(li, NodeFilter.SHOW_TEXT);
                         let node;
                         while ((node = walker.nextNode()) && !node.data.includes("500")) {}
                         const range = document.createRange();
                         const at = node.data.indexOf("500");
                         range.setStart(node, at); range.setEnd(node, at + 3);
                         return {name: [name.left, name.right],
                                 number: range.getBoundingClientRect().left}; }"""
                )
                assert where["number"] > where["name"][1], where
                page.goto(url + "/")
                assert page.locator("h2.group bdi").inner_text() == "מוצר"
                assert page.locator(".tile .title bdi").inner_text() == "משתמשים פעילים"
                assert not visitor.errors and not visitor.outside and not visitor.dialogs
            finally:
                visitor.close()
    finally:
        data.close()


def test_an_unfinished_sum_reads_so_far_in_the_chart_and_table(
    watched: Watched, server: tuple[str, DashboardData]
) -> None:
    """Today's sum is not over: the legend and the table (redrawn for another range) read its
    value "(so far)", beside the previous window's whole days."""
    url, data = server
    page = watched.page
    page.goto(url + "/kpi/pypi.downloads?period=day&range=30d")
    page.wait_for_selector("#chart[data-loaded='day/30d'] canvas")
    page.click('a[data-range="90d"]')
    page.wait_for_selector("#chart[data-loaded='day/90d'] canvas")
    text = data.series("pypi.downloads", "day")["points"][-1]["text"]
    cells = page.locator("#table tbody tr").first.locator("td")
    assert cells.nth(1).inner_text() == f"{text} (so far)"
    assert page.locator("#table tbody tr").nth(1).locator("td").nth(1).inner_text() != ""
    legend = page.evaluate(
        """() => { const u = window.kpiCharts[0].chart;
             const last = u.data[0].length - 1;
             u.setCursor({left: u.valToPos(u.data[0][last], "x"), top: 5});
             return document.querySelectorAll(".u-legend .u-series")[1]
               .querySelector(".u-value").textContent; }"""
    )
    assert legend == f"{text} (so far)"


def test_the_target_reads_on_the_chart_as_in_the_tile(browser: Any, tmp_path: Path) -> None:
    """A target of $12,345 read "12.3k" in the chart's legend (the axis tick format, its unit
    dropped) while the tile above said "of $12,345". The legend shows the server's text of
    the target, as it does for every point."""
    from datetime import timedelta

    from kpi_collector.store import HistoryStore

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "kpis: {web.cash: {title: Cash, unit: USD, target: 12345}}\n"
        'sources: [{name: web, type: http_json, url: "http://127.0.0.1:9/",'
        " metrics: {cash: d.c}}]\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "kpi.yaml")
    store = HistoryStore(config.store_url)
    run = store.begin_run(started_at=NOW.timestamp() - 60)
    days = [(NOW - timedelta(days=d, hours=2)).timestamp() for d in range(10)]
    store.finish_run(
        run, observations=[("web.cash", t, 9000.0 + i, "web") for i, t in enumerate(days)]
    )
    store.close()
    data = DashboardData(config, clock=NOW.timestamp)
    try:
        with ServerThread(create_app(config, data=data)) as url:
            visitor = Watched(browser, url, viewport={"width": 1280, "height": 900})
            try:
                page = visitor.page
                page.goto(url + "/kpi/web.cash?period=day&range=30d")
                page.wait_for_selector("#chart[data-loaded='day/30d'] canvas")
                assert "of $12,345" in page.inner_text(".tile")
                shown = page.evaluate(
                    """() => { const u = window.kpiCharts[0].chart;
                         const last = u.data[0].length - 1;
                         u.setCursor({left: u.valToPos(u.data[0][last], "x"), top: 5});
                         const rows = document.querySelectorAll(".u-legend .u-series");
                         return rows[rows.length - 1].querySelector(".u-value").textContent; }"""
                )
                assert shown == "$12,345"
                assert not visitor.errors and not visitor.outside and not visitor.dialogs
            finally:
                visitor.close()
    finally:
        data.close()
