"""The dashboard in real headless Chromium (Playwright driving /usr/bin/chromium)."""

from __future__ import annotations

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
