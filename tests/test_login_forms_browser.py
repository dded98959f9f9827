"""The login form as Chromium sends it and as kpi-collector sends it, side by side: the same
page, the same fields typed in, the same button; the local server records both requests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiohttp import web

from kpi_collector.collect.forms import fill, find_form, parse_html
from kpi_collector.demo.server import BackgroundServer
from tests.test_dashboard_browser import CHROMIUM_ARGS, require_chromium
from tests.test_login_forms import _APP_LOGIN, _PHPBB_LOGIN

pytestmark = pytest.mark.browser

TORTURE = """<!DOCTYPE html><html><head><title>t</title></head><body>
<form id="f" action="/sent?page=1#top" method="GET">
  <input name="user"><input type="password" name="pw" dirname="pw.dir">
  <input type="checkbox" name="c1" checked><input type="checkbox" name="c2" value="" checked>
  <input type="checkbox" name="c3" value="no">
  <input type="radio" name="r" value="a"><input type="radio" name="r" value="b" checked>
  <select name="one"><option disabled>-</option><option>first</option><option>second</option></select>
  <select name="many" multiple><option selected>m1</option><option>m2</option>
    <option selected disabled>m3</option><option value="v4" selected>m4</option></select>
  <select name="grouped"><optgroup label="g" disabled><option selected>gone</option></optgroup></select>
  <textarea name="note">line one
line two</textarea>
  <input type="hidden" name="_charset_">
  <input name="off" value="x" disabled>
  <fieldset disabled><legend><input name="in_legend" value="kept"></legend>
    <input name="in_fieldset" value="dropped"></fieldset>
  <input type="reset" name="reset" value="Reset"><button type="button" name="b0">No-op</button>
  <input type="file" name="upload">
  <button name="go" value="yes">Go</button>
</form>
<input form="f" name="owned" value="from outside"><input form="nowhere" name="stray" value="x">
</body></html>"""

BARE = """<html><body><form><input name="q" value="pre"><input type="password" name="p">
<input type="submit" value="Search"></form></body></html>"""

MULTIPART = """<html><body><form method="post" action="/sent" enctype="multipart/form-data">
<input name="email"><input type="password" name="password"><input type="hidden" name="t" value="1">
<input type="submit" name="do" value="Log in"></form></body></html>"""

# (page, fields typed in, the button's label to click or None: Enter in the last field)
CASES: dict[str, tuple[str, dict[str, str], str | None]] = {
    "phpbb": (
        _PHPBB_LOGIN.format(sid="s1d", token="t0k", error=""),
        {"username": "admin", "password": "pa ss&wörd"},
        None,
    ),
    "app": (_APP_LOGIN, {"email": "me@example.com", "password": "pw"}, "Sign in"),
    "torture": (TORTURE, {"user": "ü ser", "pw": "p+w"}, "Go"),
    "bare": (BARE, {"p": "secret"}, None),
    "multipart": (MULTIPART, {"email": "a@b.c", "password": "x"}, None),
}


def recorder() -> web.Application:
    app = web.Application()
    app["seen"] = seen = []

    async def page(request: web.Request) -> web.Response:
        if request.query:  # the bare form sends itself to its own page
            return await sent(request)
        return web.Response(text=CASES[request.match_info["case"]][0], content_type="text/html")

    async def sent(request: web.Request) -> web.Response:
        if request.path == "/favicon.ico":
            raise web.HTTPNotFound()
        if request.method == "POST":
            form = await request.post()
            entries = [(k, v if isinstance(v, str) else "") for k, v in form.items()]
        else:
            entries = list(request.query.items())
        seen.append((request.method, request.path, entries))
        return web.Response(text="<html><body>ok</body></html>", content_type="text/html")

    app.router.add_get("/p/{case}", page)
    app.router.add_route("*", "/{tail:.*}", sent)
    return app


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def browser_sends(chromium: Any, url: str, app: web.Application, case: str) -> Any:
    _, fields, label = CASES[case]
    page = chromium.new_page()
    try:
        page.goto(f"{url}/p/{case}")
        for name, value in fields.items():
            page.fill(f'[name="{name}"]', value)
        if label is None:
            page.press(f'[name="{list(fields)[-1]}"]', "Enter")
        else:
            page.click(f'button:has-text("{label}"), input[type=submit][value="{label}"]')
        page.wait_for_load_state()
        page.wait_for_function("document.body && document.body.textContent === 'ok'")
    finally:
        page.close()
    return app["seen"].pop()


async def kpi_sends(url: str, case: str) -> Any:
    """What the login sends, through the same HTTP layer and to the same server."""
    from kpi_collector.collect.http import HttpClient, LoginForm

    _, fields, label = CASES[case]
    async with HttpClient() as client:
        session = client.session(timeout=5, retries=0, cookies=True)
        try:
            await session.login(LoginForm(url=f"{url}/p/{case}", fields=fields, submit=label))
        finally:
            await session.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_kpi_sends_what_chromium_sends(chromium: Any, case: str) -> None:
    app = recorder()
    with BackgroundServer(app) as url:
        browser = browser_sends(chromium, url, app, case)
        # Playwright's sync API holds this thread's event loop: the login runs in another
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, kpi_sends(url, case)).result()
        ours = app["seen"].pop()
    assert ours == browser


def test_the_entry_list_matches_without_a_server() -> None:
    """The same comparison's ground truth, spelled out for the torture form."""
    doc = parse_html(TORTURE, "http://127.0.0.1:9/p/torture")
    form = fill(
        doc,
        find_form(doc, None),
        page_url="http://127.0.0.1:9/p/torture",
        fields={"user": "ü ser", "pw": "p+w"},
        submit="Go",
    )
    assert form.method == "GET" and form.url.startswith("http://127.0.0.1:9/sent?user=")
    assert form.entries == [
        ("user", "ü ser"),
        ("pw", "p+w"),
        ("pw.dir", "ltr"),
        ("c1", "on"),
        ("c2", ""),
        ("r", "b"),
        ("one", "first"),
        ("many", "m1"),
        ("many", "v4"),
        ("note", "line one\r\nline two"),
        ("_charset_", "UTF-8"),
        ("in_legend", "kept"),
        ("upload", ""),
        ("go", "yes"),
        ("owned", "from outside"),
    ]
