"""`kpi run` against a local page with the issue's number texts: each stores its right value,
or fails its metric with a one-line error that quotes the text (issue 11 §1)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kpi_collector.demo.server import BackgroundServer
from tests.cli import run_kpi

PAGES = {
    "/en": """<html lang="en"><body>
<p id="downloads">Over 2.4 million downloads</p><p id="share">.75</p>
<p id="change">-.5%</p><p id="revenue">₹12,34,567</p><p id="plain">12.374</p>
</body></html>""",
    "/de": """<html lang="de"><body>
<p id="plain">12.374</p><p id="users">1,5 Mio.</p><p id="teams">2 Tsd.</p>
</body></html>""",
    "/none": """<html><body><p id="plain">12.374</p><p id="unsure">1,234</p>
<p id="scale">2 Mrd.</p></body></html>""",
}


@pytest.fixture
def pages() -> Iterator[str]:
    app = web.Application()
    for path, body in PAGES.items():

        async def handler(request: web.Request, body: str = body) -> web.Response:
            return web.Response(text=body, content_type="text/html")

        app.router.add_get(path, handler)
    with BackgroundServer(app) as url:
        yield url


def test_issue_rows_and_locales_end_to_end(pages: str, workdir: Path) -> None:
    (workdir / "kpi.yaml").write_text(f"""\
sources:
  - name: en
    type: html
    url: {pages}/en
    metrics:
      downloads: "#downloads"
      share: "#share"
      change: "#change"
      revenue: "#revenue"
      plain: "#plain"
      plain_de: {{css: "#plain", locale: de}}
  - name: de
    type: html
    url: {pages}/de
    metrics:
      plain: "#plain"
      users: "#users"
      teams: "#teams"
  - name: swiss
    type: html
    url: {pages}/none
    locale: de-CH
    metrics:
      unsure: "#unsure"
  - name: none
    type: html
    url: {pages}/none
    metrics:
      plain: "#plain"
      scale: "#scale"
""")
    result = run_kpi(workdir, "run", "--format", "json")
    assert result.returncode == 1, result.stderr
    values = {v["kpi"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values == {
        "en.downloads": 2_400_000,
        "en.share": 0.75,
        "en.change": -0.5,
        "en.revenue": 1_234_567,
        "en.plain": 12.374,
        "en.plain_de": 12374,
        "de.plain": 12374,
        "de.users": 1_500_000,
        "de.teams": 2000,
        "none.plain": 12.374,
    }
    with sqlite3.connect(workdir / "kpi.db") as conn:
        stored = dict(conn.execute("SELECT kpi, value FROM observations"))
        errors = " | ".join(m for (m,) in conn.execute("SELECT message FROM run_errors"))
    assert stored == values
    assert "'1,234' is not how de-CH writes numbers" in errors and "`locale:`" in errors
    assert "'Mrd' after the number could be a scale word" in errors and "`regex:`" in errors


def test_selector_mistakes_fail_validate_with_file_and_line(workdir: Path) -> None:
    (workdir / "kpi.yaml").write_text("""\
sources:
  - name: blog
    type: html
    url: http://127.0.0.1:9/
    metrics:
      downloads: #downloads
""")
    result = run_kpi(workdir, "validate")
    assert result.returncode == 2
    assert (
        "kpi.yaml:6:" in result.stderr and 'quote it, e.g. downloads: "#downloads"' in result.stderr
    )
    (workdir / "kpi.yaml").write_text("""\
sources:
  - name: blog
    type: html
    url: http://127.0.0.1:9/
    metrics:
      posts: {css: "ul.posts li[", count: true}
""")
    result = run_kpi(workdir, "validate")
    assert result.returncode == 2
    assert (
        "kpi.yaml:6:" in result.stderr
        and "CSS selector 'ul.posts li[' is not valid" in result.stderr
    )


HUNTED = {
    # a page whose language only its <meta http-equiv="content-language"> names
    "/meta-de": """<html><head><meta http-equiv="Content-Language" content="de"></head><body>
<p id="plain">12.374</p><p id="own" lang="en">12.374</p></body></html>""",
    # a page whose language only its HTTP Content-Language header names (served with it)
    "/header-de": """<html><body><p id="plain">12.374</p></body></html>""",
    "/in": """<html lang="en"><body><p id="salary">₹5L</p><p id="views">1.2 mil views</p>
<div id="users"><p>Users: 12</p><p>345 new</p></div><ul id="list"><li>5</li><li>120</li></ul>
</body></html>""",
}


@pytest.fixture
def hunted() -> Iterator[str]:
    app = web.Application()
    for path, body in HUNTED.items():

        async def handler(request: web.Request, body: str = body) -> web.Response:
            language = {"Content-Language": "de"} if "header-de" in request.path else {}
            return web.Response(text=body, content_type="text/html", headers=language)

        app.router.add_get(path, handler)
    with BackgroundServer(app) as url:
        yield url


def test_texts_once_misread_end_to_end(hunted: str, workdir: Path) -> None:
    """Each of these was stored wrong: 12.374 (the meta's de not read, then the HTTP
    Content-Language header's), 5 (`L` read as
    litres), 1.2 (`mil` as mils), 12345 (a regex taking digits from two lines) and 5120
    (XPath's string() joining list items); now the right value, or an error saying why."""
    (workdir / "kpi.yaml").write_text(f"""\
sources:
  - name: meta
    type: html
    url: {hunted}/meta-de
    metrics:
      plain: "#plain"
      plain_x: {{xpath: "//p[@id='plain']"}}
      own: "#own"
  - name: header
    type: html
    url: {hunted}/header-de
    metrics:
      plain: "#plain"
  - name: india
    type: html
    url: {hunted}/in
    metrics:
      salary: "#salary"
      salary_in: {{css: "#salary", locale: en-IN}}
      views: "#views"
      users: {{css: "#users", regex: "Users: ([\\\\d ,]+)"}}
      list: {{xpath: "string(//ul)"}}
""")
    result = run_kpi(workdir, "run", "--format", "json")
    assert result.returncode == 1, result.stderr
    values = {v["kpi"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values == {
        "meta.plain": 12374,
        "meta.plain_x": 12374,
        "meta.own": 12.374,
        "header.plain": 12374,
        "india.salary_in": 500_000,
    }
    with sqlite3.connect(workdir / "kpi.db") as conn:
        stored = dict(conn.execute("SELECT kpi, value FROM observations"))
        errors = dict(conn.execute("SELECT kpi, message FROM run_errors"))
    assert stored == values
    assert "scale word (×100000 in en-IN)" in errors["india.salary"]
    assert "'mil' after the number could be million" in errors["india.views"]
    assert "more than one number" in errors["india.users"]
    assert "more than one number" in errors["india.list"]
    assert all("\n" not in message for message in errors.values())
    probed = run_kpi(workdir, "probe", f"{hunted}/header-de", "--format", "json")
    assert probed.returncode == 0, probed.stderr
    assert [f["value"] for f in json.loads(probed.stdout)["findings"]] == [12374]
