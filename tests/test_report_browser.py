"""The HTML report opened from disk in headless Chromium, with every network request refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kpi_collector.report.html import write_report
from tests.test_dashboard import NOW, build_store
from tests.test_dashboard_browser import CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser


def test_report_opens_offline_and_draws_every_chart(tmp_path: Path) -> None:
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    config = build_store(tmp_path / "store")
    out = write_report(config, tmp_path / "report.html", period="week", compare="14d", now=NOW)
    errors: list[str] = []
    requests: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            requests.append(r.request.url)
            r.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(offline=True)
        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.wait_for_function("() => window.kpiCharts && window.kpiCharts.length === 3")
        charts = page.evaluate(
            "() => window.kpiCharts.map(c => [c.kpi, c.points, c.chart.data[1].filter(v => v != null).length])"
        )
        assert page.locator("table.summary tbody tr").count() == 3
        browser.close()
    assert sorted(charts) == sorted(
        [["crm.paying", 26, 26], ["web.xss", 26, 26], ["pypi.downloads", 26, 26]]
    )
    assert not errors, errors
    assert not requests, requests


def test_report_fits_a_phone(tmp_path: Path) -> None:
    """At 390 px the page never scrolls sideways; a wide table scrolls inside its own box."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    config = build_store(tmp_path / "store")
    out = write_report(config, tmp_path / "report.html", period="week", compare="14d", now=NOW)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                offline=True, viewport={"width": 390, "height": 844}, is_mobile=True
            )
            page = context.new_page()
            page.goto(out.as_uri())
            page.wait_for_function("() => window.kpiCharts && window.kpiCharts.length === 3")
            page_width = page.evaluate("() => document.documentElement.scrollWidth")
            assert page_width <= 390, f"the report scrolls sideways on a phone ({page_width}px)"
            box = page.evaluate(
                """() => { const t = document.querySelector("table.summary");
                     const box = t.closest(".scroll");
                     return box && {box: box.getBoundingClientRect().right,
                                    overflow: getComputedStyle(box).overflowX}; }"""
            )
            assert box is not None and box["box"] <= 390 and box["overflow"] == "auto"
        finally:
            browser.close()


def test_report_marks_notes_on_every_chart(tmp_path: Path) -> None:
    """A note from `kpi annotate` is a marker on each chart of the report and in its list."""
    from datetime import date

    from kpi_collector.config import load_config
    from kpi_collector.store import HistoryStore
    from kpi_collector.store.annotations import add_annotation
    from tests.test_sections import NOW as GROUPED_NOW
    from tests.test_sections import build_grouped

    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    folder = build_grouped(tmp_path / "store")
    store = HistoryStore(load_config(folder / "kpi.yaml").store_url)
    add_annotation(store, "v1.0 released", date(2026, 11, 20))
    store.close()
    out = write_report(folder / "kpi.yaml", tmp_path / "r.html", period="week", now=GROUPED_NOW)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(offline=True).new_page()
            page.goto(out.as_uri())
            page.wait_for_function("() => window.kpiCharts && window.kpiCharts.length === 6")
            marks = page.evaluate("() => window.kpiCharts.map(c => c.markers.map(m => m.day))")
            assert marks == [["2026-11-20"]] * 6
            assert page.locator("#report-notes li").all_inner_texts() == [
                "2026-11-20 v1.0 released"
            ]
        finally:
            browser.close()
