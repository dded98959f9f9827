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

# what the parser and each input type's value sanitization make of the values the page gives
# (HTML standard: "textarea" newline, "template" contents, the input types' "value
# sanitization algorithm": Chromium's, which reads a CSS color in a color input), radio groups,
# a `<select>`'s display size); novalidate: a browser
# sends them as they are, without asking for a valid form first
VALUES = """<!DOCTYPE html><html><head><title>v</title></head><body>
<form action="/sent" method="POST" novalidate>
<input type="email" name="email" value="  me@example.com  "><input type="password" name="pw">
<textarea name="lead" dirname="lead.dir">
hello</textarea><textarea name="two">

two</textarea>
<template><input type="hidden" name="otp" value="1"></template>
<input type="file" name="upload" value="C:\\x.txt">
<select name="sized" size=" 3"><option>a</option></select><select name="zero" size="0"><option>z</option></select>
<select name="many" multiple size="1"><option>m</option></select>
<input type="radio" name="r" value="a" checked><input type="radio" name="r" value="b" checked>
<input type="number" name="n1" value="abc"><input type="number" name="n2" value=" 12 ">
<input type="number" name="n3" value="1e3"><input type="number" name="n4" value="+1">
<input type="number" name="n5" value=".5"><input type="number" name="n6" value="1.">
<input type="range" name="g1"><input type="range" name="g2" min="0" max="10" value="33">
<input type="range" name="g3" min="0" max="10" step="3" value="8"><input type="range" name="g4" min="5" max="1">
<input type="range" name="g5" step="any" value="2.5"><input type="range" name="g6" min="0" max="1" step="0.1" value="0.33">
<input type="color" name="c1"><input type="color" name="c2" value="#ABCDEF"><input type="color" name="c3" value="#abc">
<input type="range" name="g7" value="-0"><input type="range" name="g8" value="010"><input type="range" name="g9" step="any" value="2.50">
<input type="range" name="g10" value="1e1"><input type="range" name="g11" value="10e1"><input type="range" name="g12" step="any" value="0.0000001">
<input type="range" name="g13" min="10" max="50" value="3e1"><input type="range" name="g14" value="2.5e1">
<input type="color" name="c4" value="red"><input type="color" name="c5" value="RebeccaPurple"><input type="color" name="c6" value=" red ">
<input type="color" name="c7" value=" #ABCDEF&#10;"><input type="color" name="c8" value="#ABCD"><input type="color" name="c9" value="#aabbccdd">
<input type="color" name="c10" value="rgb(1, 2, 3)"><input type="color" name="c11" value="rgba(300 0 50% / 0.5)"><input type="color" name="c12" value="transparent">
<input type="color" name="c13" value="nonsense"><input type="color" name="c14" value="hsl(120, 100%, 25%)"><input type="color" name="c15" value="rgb(1,2)">
<input type="email" multiple name="emails" value=" a@b , c@d ,"><input type="url" name="u" value="  http://a  ">
<input type="date" name="d1" value="x"><input type="date" name="d2" value="2024-02-29"><input type="date" name="d3" value="2023-02-29">
<input type="datetime-local" name="t1" value="2024-01-02 03:04:00"><input type="datetime-local" name="t2" value="2024-02-30T03:04">
<input type="datetime-local" name="t3" value="2024-01-02T03:04:05.500">
<input type="time" name="h1" value="03:04:00.000"><input type="time" name="h2" value="3:04">
<input type="month" name="m1" value="2024-13"><input type="month" name="m2" value="2024-02">
<input type="week" name="w1" value="2024-W53"><input type="week" name="w2" value="2020-W53">
<input type="TEL" name="tel" value=" 1 "><input type="search" name="se" value=" s "><input type="hidden" name="h" value=" h ">
<button name="go" value="yes">Go</button>
</form></body></html>"""

# a submit input without a value sends its label; a line break in any value goes as CR LF
DEFAULTS = """<html><body><form action="/sent" method="POST"><input name="user">
<input type="password" name="pw"><input type="hidden" name="lf" value="a&#10;b">
<input type="hidden" name="cr" value="a&#13;b&#13;&#10;c"><input type="submit" name="go"></form>
</body></html>"""

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
    "values": (VALUES, {"pw": "x"}, "Go"),
    "defaults": (DEFAULTS, {"user": "me", "pw": "x"}, None),
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


def test_the_values_a_page_gives_are_sent_as_a_browser_sanitizes_them() -> None:
    """The `values` case's ground truth (Chromium sends the same, see above)."""
    doc = parse_html(VALUES, "http://127.0.0.1:9/p/values")
    form = fill(
        doc, find_form(doc, None), page_url="http://127.0.0.1:9/p/values", fields={"pw": "x"}
    )
    assert form.entries == [
        ("email", "me@example.com"),
        ("pw", "x"),
        ("lead", "hello"),
        ("lead.dir", "ltr"),
        ("two", "\r\ntwo"),
        ("upload", ""),
        ("zero", "z"),
        ("r", "b"),
        ("n1", ""),
        ("n2", ""),
        ("n3", "1e3"),
        ("n4", ""),
        ("n5", ".5"),
        ("n6", ""),
        ("g1", "50"),
        ("g2", "10"),
        ("g3", "9"),
        ("g4", "5"),
        ("g5", "2.5"),
        ("g6", "0.3"),
        ("c1", "#000000"),
        ("c2", "#abcdef"),
        ("c3", "#aabbcc"),
        # as Chromium 156 sends them: a range as it writes numbers, a CSS color as #rrggbb
        ("g7", "0"),
        ("g8", "10"),
        ("g9", "2.5"),
        ("g10", "1e+1"),
        ("g11", "1e+2"),
        ("g12", "1e-7"),
        ("g13", "30"),
        ("g14", "25"),
        ("c4", "#ff0000"),
        ("c5", "#663399"),
        ("c6", "#000000"),
        ("c7", "#abcdef"),
        ("c8", "#aabbcc"),
        ("c9", "#aabbcc"),
        ("c10", "#010203"),
        ("c11", "#ff0080"),
        ("c12", "#000000"),
        ("c13", "#000000"),
        ("c14", "#008000"),
        ("c15", "#000000"),
        ("emails", "a@b,c@d,"),
        ("u", "http://a"),
        ("d1", ""),
        ("d2", "2024-02-29"),
        ("d3", ""),
        ("t1", "2024-01-02T03:04"),
        ("t2", ""),
        ("t3", "2024-01-02T03:04:05.5"),
        ("h1", "03:04:00.000"),
        ("h2", ""),
        ("m1", ""),
        ("m2", "2024-02"),
        ("w1", ""),
        ("w2", "2020-W53"),
        ("tel", " 1 "),
        ("se", " s "),
        ("h", " h "),
        ("go", "yes"),
    ]


def test_a_submit_input_without_value_sends_its_label_and_line_breaks_go_as_crlf() -> None:
    """The `defaults` case's ground truth (Chromium sends the same, see above)."""
    doc = parse_html(DEFAULTS, "http://127.0.0.1:9/p/defaults")
    form = fill(
        doc,
        find_form(doc, None),
        page_url="http://127.0.0.1:9/p/defaults",
        fields={"user": "me", "pw": "x"},
    )
    assert form.entries == [
        ("user", "me"),
        ("pw", "x"),
        ("lf", "a\r\nb"),
        ("cr", "a\r\nb\r\nc"),
        ("go", "Submit"),
    ]
