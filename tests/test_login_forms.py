"""Login forms filled and sent as a browser sends them (HTML standard, form submission):
`kpi run` against local forums and apps that accept only what a browser would post."""

from __future__ import annotations

import secrets
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kpi_collector.collect.extract import HtmlDocument
from kpi_collector.collect.forms import FormProblem, fill, find_form, parse_html
from kpi_collector.demo.server import BackgroundServer
from tests.cli import run_kpi, store_dump

PASSWORD = "forum-pass-7781"

# phpBB 3.3's prosilver login form, as the forum serves it
_PHPBB_LOGIN = """<!DOCTYPE html><html dir="ltr" lang="en-gb"><head><title>Login - Forum</title></head>
<body><div id="wrap">{error}
<form action="./ucp.php?mode=login&amp;sid={sid}" method="post" id="login" data-focus="username">
<fieldset class="fields1">
<dl><dt><label for="username">Username:</label></dt>
<dd><input type="text" tabindex="1" name="username" id="username" size="25" value="" class="inputbox autowidth" /></dd></dl>
<dl><dt><label for="password">Password:</label></dt>
<dd><input type="password" tabindex="2" id="password" name="password" size="25" class="inputbox autowidth" autocomplete="off" /></dd></dl>
<dl><dd><label for="autologin"><input type="checkbox" name="autologin" id="autologin" tabindex="4" checked /> Remember me</label></dd>
<dd><label for="viewonline"><input type="checkbox" name="viewonline" id="viewonline" tabindex="5" /> Hide my online status this session</label></dd></dl>
<input type="hidden" name="creation_time" value="1700000000" />
<input type="hidden" name="form_token" value="{token}" />
<input type="hidden" name="sid" value="{sid}" />
<input type="hidden" name="redirect" value="./index.php" />
<dl><dd><input type="submit" name="login" tabindex="6" value="Login" class="button1" /></dd></dl>
</fieldset></form></div></body></html>"""

_PHPBB_INDEX = """<!DOCTYPE html><html><head><title>Forum - Board index</title></head><body>
<p class="right">Logged in as {user}</p>
<dl class="stats"><dd>Total posts <strong id="total-posts">12,374</strong></dd></dl></body></html>"""


def phpbb() -> web.Application:
    """A forum that accepts a login only as phpBB does: the session's `sid` and form token,
    and the submit button's `login=Login` (without it, the login page comes back)."""
    app = web.Application()
    sessions: dict[str, str] = {}  # sid -> form token
    app["posts"] = posted = []
    logged_in: set[str] = set()

    async def login_page(request: web.Request) -> web.Response:
        if request.query.get("mode") != "login":
            raise web.HTTPNotFound()
        sid = secrets.token_hex(16)
        sessions[sid] = secrets.token_hex(20)
        page = _PHPBB_LOGIN.format(sid=sid, token=sessions[sid], error="")
        response = web.Response(text=page, content_type="text/html")
        response.set_cookie("phpbb3_sid", sid)
        return response

    async def login_post(request: web.Request) -> web.Response:
        form = await request.post()
        posted.append([(k, str(v)) for k, v in form.items()])
        sid = request.cookies.get("phpbb3_sid", "")
        ok = (
            request.query.get("mode") == "login"
            and request.query.get("sid") == sid
            and form.get("sid") == sid
            and sid in sessions
            and form.get("form_token") == sessions[sid]
            and form.get("username") == "admin"
            and form.get("password") == PASSWORD
            and form.get("login") == "Login"  # phpBB: no button, no login attempt
        )
        if not ok:
            page = _PHPBB_LOGIN.format(sid=sid, token=sessions.get(sid, ""), error="")
            return web.Response(text=page, content_type="text/html")
        logged_in.add(sid)
        if form.get("autologin") == "on":
            logged_in.add("remembered")
        raise web.HTTPFound("./index.php")

    async def index(request: web.Request) -> web.Response:
        if request.cookies.get("phpbb3_sid") not in logged_in:
            raise web.HTTPFound("./ucp.php?mode=login")
        return web.Response(text=_PHPBB_INDEX.format(user="admin"), content_type="text/html")

    app.router.add_get("/forum/ucp.php", login_page)
    app.router.add_post("/forum/ucp.php", login_post)
    app.router.add_get("/forum/index.php", index)
    return app


@pytest.fixture
def forum() -> Iterator[tuple[str, web.Application]]:
    app = phpbb()
    with BackgroundServer(app) as url:
        yield f"{url}/forum", app


def forum_config(folder: Path, url: str, login_extra: str = "", password: str = PASSWORD) -> None:
    (folder / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: forum
    type: html
    url: {url}/index.php
    login:
      url: {url}/ucp.php?mode=login
      fields: {{username: admin, password: "${{FORUM_PASSWORD}}"}}
{login_extra}
    metrics:
      posts: "#total-posts"
""")
    (folder / ".env").write_text(f"FORUM_PASSWORD={password}\n")


def stored(folder: Path) -> list[tuple[str, float]]:
    with sqlite3.connect(folder / "kpi.db") as conn:
        return conn.execute("SELECT kpi, value FROM observations").fetchall()


def run_errors(folder: Path) -> str:
    with sqlite3.connect(folder / "kpi.db") as conn:
        return "\n".join(m for (m,) in conn.execute("SELECT message FROM run_errors"))


def test_phpbb_login_posts_the_submit_button_and_the_checked_checkbox(
    forum: tuple[str, web.Application], workdir: Path
) -> None:
    url, app = forum
    forum_config(workdir, url)
    result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("forum.posts", 12374.0)]
    [post] = app["posts"]
    assert [name for name, _ in post] == [
        "username",
        "password",
        "autologin",
        "creation_time",
        "form_token",
        "sid",
        "redirect",
        "login",
    ]
    assert dict(post)["autologin"] == "on" and dict(post)["login"] == "Login"
    assert "viewonline" not in dict(post)  # not checked: not sent


def test_a_login_form_that_comes_back_names_what_was_sent(
    forum: tuple[str, web.Application], workdir: Path
) -> None:
    url, _ = forum
    wrong = "not-the-forum-pass-1"
    forum_config(workdir, url, password=wrong)
    result = run_kpi(workdir, "run")
    assert result.returncode == 1
    message = run_errors(workdir)
    assert message == (
        f"login refused: the login form came back from {url}/ucp.php; sent POST with username, "
        "password, autologin, creation_time, form_token, sid, redirect, login; "
        "check the values in `fields:`"
    )
    assert wrong not in result.stdout + result.stderr + message


def test_a_login_that_went_through_but_success_matched_nothing_says_where_it_landed(
    forum: tuple[str, web.Application], workdir: Path
) -> None:
    url, _ = forum
    forum_config(workdir, url, login_extra='      success: "a.logout"')
    result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert run_errors(workdir) == (
        f"the login went through, but `success:` 'a.logout' matched nothing on {url}/index.php "
        "(title 'Forum - Board index'); check the selector"
    )
    assert "the login went through" in result.stdout


_APP_LOGIN = """<html><head><title>Sign in</title><base href="/app/"></head><body>
<form id="signin" action="search" method="get">
  <input name="email"><input type="password" name="password">
  <select name="region"><option value="" disabled>Pick one</option><option value="eu">EU</option><option value="us">US</option></select>
  <select name="lang"><option>en</option><option selected>  de  </option></select>
  <input type="radio" name="plan" value="free"><input type="radio" name="plan" value="pro" checked>
  <textarea name="note">two
lines</textarea>
  <input name="otp" disabled value="123">
  <fieldset disabled><legend><input name="legend_field" value="kept"></legend><input name="in_fieldset" value="x"></fieldset>
  <input type="reset" name="reset" value="Reset"><input type="button" name="noop" value="No-op">
  <button type="submit" name="action" value="register" formaction="register">Create an account</button>
  <button name="action" value="signin" formaction="session" formmethod="post">Sign in</button>
</form>
<input form="signin" name="outside" value="owned">
</body></html>"""


def modern_app() -> web.Application:
    app = web.Application()
    app["posts"] = posted = []
    sessions: set[str] = set()

    async def login_page(request: web.Request) -> web.Response:
        return web.Response(text=_APP_LOGIN, content_type="text/html")

    async def session(request: web.Request) -> web.Response:
        form = await request.post()
        posted.append([(k, str(v)) for k, v in form.items()])
        if form.get("action") != "signin" or form.get("password") != PASSWORD:
            return web.Response(text=_APP_LOGIN, content_type="text/html")
        token = secrets.token_hex(8)
        sessions.add(token)
        response = web.HTTPSeeOther("/app/dashboard")
        response.set_cookie("s", token)
        raise response

    async def dashboard(request: web.Request) -> web.Response:
        if request.cookies.get("s") not in sessions:
            raise web.HTTPFound("/app/login")
        return web.Response(
            text='<html><body><span id="mrr">$4,200</span></body></html>', content_type="text/html"
        )

    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>wrong button</body></html>", content_type="text/html")

    app.router.add_get("/app/login", login_page)
    app.router.add_post("/app/session", session)
    app.router.add_post("/app/register", elsewhere)
    app.router.add_get("/app/search", elsewhere)
    app.router.add_get("/app/dashboard", dashboard)
    return app


def test_submit_names_the_button_whose_formaction_and_formmethod_are_used(workdir: Path) -> None:
    app = modern_app()
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: app
    type: html
    url: {url}/app/dashboard
    login:
      url: {url}/app/login
      fields: {{email: me@example.com, password: "${{APP_PASSWORD}}"}}
      submit: Sign in
    metrics:
      mrr: "#mrr"
""")
        result = run_kpi(workdir, "run", env={"APP_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("app.mrr", 4200.0)]
    assert app["posts"] == [
        [
            ("email", "me@example.com"),
            ("password", PASSWORD),
            ("region", "eu"),
            ("lang", "de"),
            ("plan", "pro"),
            ("note", "two\r\nlines"),
            ("legend_field", "kept"),
            ("action", "signin"),
            ("outside", "owned"),
        ]
    ]


# the entry list, control by control ---------------------------------------------------------

PAGE = "http://127.0.0.1:9/app/login?next=/home"


def filled(
    html: str, submit: str | None = None, **fields: str
) -> tuple[str, str, list[tuple[str, str]]]:
    doc = parse_html(html, PAGE)
    form = fill(doc, find_form(doc, None), page_url=PAGE, fields=fields, submit=submit)
    return form.method, form.url, form.entries


def test_a_form_without_method_or_action_is_a_get_to_the_page_itself() -> None:
    method, url, entries = filled(
        '<form><input name="q" value="a b"><input type="password" name="p"></form>', p="x&y"
    )
    assert (method, entries) == ("GET", [("q", "a b"), ("p", "x&y")])
    assert url == "http://127.0.0.1:9/app/login?q=a+b&p=x%26y"  # the query is replaced


def test_the_default_button_is_the_first_enabled_submit_button() -> None:
    html = """<form method=post action="/in"><input type=password name=p>
      <button type=button name=show value=1>Show</button>
      <input type=submit name=first value=One disabled>
      <button name=second value=Two>Two</button><input type=submit name=third value=Three></form>"""
    assert filled(html)[2] == [("p", ""), ("second", "Two")]
    assert filled(html, submit="third")[2] == [("p", ""), ("third", "Three")]
    assert filled(html, submit="One")[2] == [("p", ""), ("first", "One")]  # named: pressed
    assert filled(html, submit="input[value=Three]")[2] == [("p", ""), ("third", "Three")]


def test_an_image_button_sends_its_click_coordinates() -> None:
    html = (
        "<form method=post><input type=password name=p><input type=image name=go src=go.png></form>"
    )
    assert filled(html)[2] == [("p", ""), ("go.x", "0"), ("go.y", "0")]


def test_fields_replace_the_form_value_and_add_what_the_form_lacks() -> None:
    html = "<form method=post><input type=password name=p value=old><input type=hidden name=t value=1><input type=hidden name=t value=2></form>"
    assert filled(html, p="new", t="3", extra="e")[2] == [("p", "new"), ("t", "3"), ("extra", "e")]


def test_checkboxes_radios_and_selects_send_what_a_browser_sends() -> None:
    html = """<form method=post><input type=password name=p>
      <input type=checkbox name=a checked><input type=checkbox name=b value=""checked>
      <input type=checkbox name=c value=yes>
      <select name=s1><option disabled>x</option><option>first enabled</option></select>
      <select name=s2><option selected value=1>1</option><option selected value=2>2</option></select>
      <select name=s3 multiple><option selected>m1</option><option>m2</option><option selected disabled>m3</option><option selected>m4</option></select>
      <select name=s4><optgroup disabled><option selected>gone</option></optgroup></select>
      <input type=hidden name=_charset_><datalist><input name=dl value=1></datalist></form>"""
    # a control inside <datalist> is left out (the standard; Chromium 156 still sends it)
    assert filled(html)[2] == [
        ("p", ""),
        ("a", "on"),
        ("b", ""),
        ("s1", "first enabled"),
        ("s2", "2"),
        ("s3", "m1"),
        ("s3", "m4"),
        ("_charset_", "UTF-8"),
    ]


def test_fields_tick_checkboxes_pick_radios_and_options_as_a_person_does() -> None:
    """`fields:` for a checkbox ticks it (it sends its own value) or leaves it unticked
    (nothing sent), picks the radio button of the value given, and an option by its value
    or its label: what the rendered login does in Chromium, and what the server expects."""
    html = """<form method=post><input type=password name=p>
      <input type=checkbox name=remember value=1><input type=checkbox name=news checked>
      <input type=radio name=role value=user checked><input type=radio name=role value=admin>
      <select name=site><option value=eu>Europe</option><option value=us>United States</option></select>
      <input type=checkbox name=tags value=a><input type=checkbox name=tags value=b></form>"""
    assert filled(html, remember="true", news="off", role="admin", site="United States")[2] == [
        ("p", ""),
        ("remember", "1"),
        ("role", "admin"),
        ("site", "us"),
    ]
    assert filled(html, remember="0", role="user", site="us", tags="b")[2] == [
        ("p", ""),
        ("news", "on"),
        ("role", "user"),
        ("site", "us"),
        ("tags", "b"),
    ]


def test_a_login_form_a_script_clones_from_a_template_is_filled() -> None:
    """A `<template>`'s content is not the page's (a control in one is not sent), but a
    login form that only a `<template>` holds is the one its script shows: it is filled."""
    html = """<div id=app></div><template id=login-form><form method=post action=/in>
      <input type=hidden name=t value=1><input name=u><input type=password name=p>
      <template><input name=later value=x></template></form></template>"""
    assert filled(html, u="me", p="pw")[2] == [("t", "1"), ("u", "me"), ("p", "pw")]


@pytest.mark.parametrize(
    ("encoding", "accept", "charset", "query"),
    [
        ("cp1252", None, "windows-1252", "q=M%FCller+%26%2310003%3B"),
        ("cp932", None, "Shift_JIS", "q=M%26%23252%3Bller+%26%2310003%3B"),
        ("utf-16-le", None, "UTF-8", "q=M%C3%BCller+%E2%9C%93"),
        ("cp932", "UTF-8", "UTF-8", "q=M%C3%BCller+%E2%9C%93"),
        ("utf-8", "nonsense koi8-r", "KOI8-R", "q=M%26%23252%3Bller+%26%2310003%3B"),
        ("utf-8", "nonsense", "UTF-8", "q=M%C3%BCller+%E2%9C%93"),
    ],
)
def test_a_form_is_encoded_in_its_charset_and_says_which(
    encoding: str, accept: str | None, charset: str, query: str
) -> None:
    """The page's encoding, else the first known label of `accept-charset`; `_charset_`
    says which; a character the charset lacks goes as `&#NNNN;`."""
    attribute = f' accept-charset="{accept}"' if accept is not None else ""
    doc = parse_html(
        f"<form{attribute}><input name=q><input type=hidden name=_charset_></form>", PAGE
    )
    form = fill(
        doc,
        find_form(doc, None),
        page_url=PAGE,
        fields={"q": "M\u00fcller \u2713"},
        encoding=encoding,
    )
    assert (form.charset, form.entries[-1]) == (charset, ("_charset_", charset))
    assert form.url.split("?")[1].split("&")[0] == query


def test_base_href_and_formaction_resolve_like_a_browser() -> None:
    html = """<head><base href="https://auth.example/v2/"></head><form action="login" method=post>
      <input type=password name=p><button formaction="../sso">Go</button></form>"""
    assert filled(html)[1] == "https://auth.example/sso"


_DIALOG = (
    'the form\'s method is "dialog": it closes a dialog and sends nothing to a server (HTML '
    "standard), a script of the page sends the login; set `render: true` to log in as a browser does"
)


@pytest.mark.parametrize(
    ("html", "submit", "message"),
    [
        ("<p>no form</p>", None, "no form found"),
        (
            "<form><input name=a></form><form><input name=b></form>",
            None,
            "2 forms and none with a password field; name the login form with `form:`",
        ),
        (
            "<form><input type=password name=p><input type=submit name=go value=Go></form>",
            "Login",
            "`submit:` 'Login' names no submit button of the form; it has: go=Go",
        ),
        (
            "<form><input type=password name=p><button name=a value=1>Go</button><button name=a value=2>Go</button></form>",
            "a",
            "`submit:` 'a' matches 2 buttons (a=Go, a=Go); name one by its label",
        ),
        (
            '<form action="javascript:login()"><input type=password name=p></form>',
            None,
            "the form's action 'javascript:login()' is not an http(s) URL; give `submit_url:`",
        ),
        (
            "<dialog open><form method=dialog><input type=password name=p><button>Go</button></form></dialog>",
            None,
            _DIALOG,
        ),
        (
            '<form method=post><input type=password name=p><button formmethod=" Dialog ">Go</button></form>',
            None,
            _DIALOG,
        ),
    ],
)
def test_forms_that_cannot_be_filled_say_why(html: str, submit: str | None, message: str) -> None:
    with pytest.raises(FormProblem) as caught:
        filled(html, submit)
    assert str(caught.value) == message


def test_a_refused_login_names_the_fields_left_empty(workdir: Path) -> None:
    with BackgroundServer(modern_app()) as url:
        (workdir / "kpi.yaml").write_text(f"""\
sources:
  - name: app
    type: html
    url: {url}/app/dashboard
    login: {{url: {url}/app/login, fields: {{email: me@example.com}}, submit: Sign in}}
    metrics:
      mrr: "#mrr"
""")
        result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert run_errors(workdir) == (
        f"login refused: the login form came back from {url}/app/session; sent POST with email, "
        "password, region, lang, plan, note, legend_field, action, outside; "
        "left empty: password (give them in `fields:`)"
    )


# apps that check what a browser sends beside the form, and sessions that do not hold -------

_GUARDED_LOGIN = """<html><head><title>Log in</title></head><body>
<form method="post" action="session">{token}
<input name="user"><input type="password" name="pw"><button>Log in</button></form></body></html>"""


def guarded_app(
    *, token_in_form: bool = True, expired: int = 0, refusal: int = 403
) -> web.Application:
    """A Django-like app: the login POST must carry the session cookie's CSRF token and come
    from its own origin (`Origin`, else `Referer`, as Django checks over HTTPS), else
    `refusal` (403; Laravel answers 419) with the reason on the page. The first `expired`
    sessions expire right after the login (their next page sends back to the login form)."""
    app = web.Application()
    app["seen"] = seen = []
    tokens: dict[str, str] = {}  # session id -> CSRF token
    live: set[str] = set()
    left = [expired]

    async def login_page(request: web.Request) -> web.Response:
        sid, token = secrets.token_hex(8), secrets.token_hex(16)
        tokens[sid] = token
        hidden = f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
        page = _GUARDED_LOGIN.format(token=hidden if token_in_form else "")
        response = web.Response(text=page, content_type="text/html")
        response.set_cookie("sessionid", sid, path="/", samesite="Lax", httponly=True)
        response.set_cookie("stale", "old", path="/", expires="Thu, 01 Jan 1970 00:00:00 GMT")
        return response

    async def login_post(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append({k: request.headers.get(k) for k in ("Origin", "Referer")})
        sid = request.cookies.get("sessionid", "")
        origin = f"{request.scheme}://{request.host}"
        came_from = request.headers.get("Origin") or request.headers.get("Referer") or ""
        if form.get("csrfmiddlewaretoken") != tokens.get(sid):
            reason = "CSRF token missing or incorrect."
        elif not came_from.startswith(origin):
            reason = "Referer checking failed - no Referer."
        else:
            reason = ""
        if reason:
            page = f"<html><head><title>403 Forbidden</title><style>p{{color:red}}</style></head><body><h1>Forbidden (403)</h1><p>CSRF verification failed. Request aborted.</p><p>{reason}</p></body></html>"
            return web.Response(text=page, status=refusal, content_type="text/html")
        if form.get("user") != "me" or form.get("pw") != PASSWORD:
            return web.Response(text=_GUARDED_LOGIN.format(token=""), content_type="text/html")
        live.add(sid)
        raise web.HTTPFound("/home")

    async def home(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Welcome back</h1>", content_type="text/html")

    async def stats(request: web.Request) -> web.Response:
        sid = request.cookies.get("sessionid", "")
        if sid in live and left[0] > 0:
            left[0] -= 1
            live.discard(sid)
        if sid not in live:
            raise web.HTTPFound("/login?next=/stats")
        return web.Response(text="<p id=members>2,048</p>", content_type="text/html")

    app.router.add_get("/login", login_page)
    app.router.add_post("/session", login_post)
    app.router.add_get("/stats", stats)
    app.router.add_get("/home", home)
    return app


def guarded_config(folder: Path, url: str) -> None:
    (folder / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: community
    type: html
    url: {url}/stats
    login: {{url: {url}/login, fields: {{user: me, pw: "${{APP_PASSWORD}}"}}}}
    metrics:
      members: "#members"
  - {{name: other, type: html, url: {url}/login, metrics: {{fields: {{css: input, count: true}}}}}}
""")
    (folder / ".env").write_text(f"APP_PASSWORD={PASSWORD}\n")


def test_a_login_post_says_where_it_comes_from_as_a_browser_does(workdir: Path) -> None:
    """Django over HTTPS refuses a login POST with neither `Origin` nor `Referer`; a browser
    sends both: the origin of the login page, and the page itself."""
    app = guarded_app()
    with BackgroundServer(app) as url:
        guarded_config(workdir, url)
        result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("community.members", 2048.0), ("other.fields", 3.0)]
    assert app["seen"] == [{"Origin": url, "Referer": f"{url}/login"}]


@pytest.mark.parametrize("refusal", [403, 419])
def test_a_refused_login_says_what_the_server_said(workdir: Path, refusal: int) -> None:
    """A form whose CSRF token came from a script (not in the HTML): the server's reason is
    in the error, whatever 4xx it answers with (Laravel's 419 "page expired" too)."""
    with BackgroundServer(guarded_app(token_in_form=False, refusal=refusal)) as url:
        guarded_config(workdir, url)
        result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert stored(workdir) == [("other.fields", 2.0)]  # no token input: user, pw
    assert run_errors(workdir) == (
        f"login refused by {url}/session (HTTP {refusal}): 403 Forbidden Forbidden (403) CSRF "
        "verification failed. Request aborted. CSRF token missing or incorrect.; sent POST "
        "with user, pw; check the values in `fields:`"
    )
    assert PASSWORD not in result.stdout + result.stderr + store_dump(workdir)


def test_a_refusal_in_the_pages_charset_is_quoted_as_the_page_says_it(workdir: Path) -> None:
    app = web.Application()
    form = (
        "<form method=post><input name=user><input type=password name=pw><button>Go</button></form>"
    )
    refusal = "<html><head><title>Fehler \u2013 403</title></head><body><p>Sitzung abgelaufen \u2013 bitte erneut anmelden (Pr\u00fcfsumme)</p></body></html>"

    async def login_page(request: web.Request) -> web.Response:
        return web.Response(text=form, content_type="text/html")

    async def login_post(request: web.Request) -> web.Response:
        body = refusal.encode("cp1252")
        return web.Response(
            body=body, status=403, headers={"Content-Type": "text/html; charset=windows-1252"}
        )

    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: app
    type: html
    url: {url}/stats
    login: {{url: {url}/login, fields: {{user: me, pw: "${{APP_PASSWORD}}"}}}}
    metrics: {{members: "#members"}}
""")
        (workdir / ".env").write_text(f"APP_PASSWORD={PASSWORD}\n")
        run_kpi(workdir, "run")
    assert run_errors(workdir) == (
        f"login refused by {url}/login (HTTP 403): Fehler \u2013 403 Sitzung abgelaufen \u2013 "
        "bitte erneut anmelden (Pr\u00fcfsumme); sent POST with user, pw; check the values in "
        "`fields:`"
    )


def test_a_password_echoed_as_a_legacy_form_sent_it_stays_hidden(workdir: Path) -> None:
    """On a windows-1252 form a password goes as its bytes in that charset (`M%FCller`),
    what the charset lacks as `&#NNNN;`: a server that echoes it back in either form, in a
    refusal, never has it shown."""
    from html import escape
    from urllib.parse import parse_qsl

    password = "Kennwort-\u2713-M\u00fcller-7781"
    app = web.Application()
    form = "<meta charset=windows-1252><form method=post><input name=user><input type=password name=pw><button>Go</button></form>"

    async def login_page(request: web.Request) -> web.Response:
        return web.Response(body=form.encode(), headers={"Content-Type": "text/html"})

    async def login_post(request: web.Request) -> web.Response:
        raw = (await request.read()).decode("ascii")
        typed = dict(parse_qsl(raw, encoding="cp1252"))["pw"]
        page = f"<p>Falsches Kennwort: {escape(typed)}</p><p>Anfrage: {escape(raw)}</p>"
        return web.Response(
            body=page.encode("cp1252", "xmlcharrefreplace"),
            status=403,
            headers={"Content-Type": "text/html; charset=windows-1252"},
        )

    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: app
    type: html
    url: {url}/stats
    login: {{url: {url}/login, fields: {{user: me, pw: "${{APP_PASSWORD}}"}}}}
    metrics: {{members: "#members"}}
""")
        (workdir / ".env").write_text(f"APP_PASSWORD={password}\n", encoding="utf-8")
        result = run_kpi(workdir, "run")
    error = run_errors(workdir)
    assert error.startswith(f"login refused by {url}/login (HTTP 403): Falsches Kennwort: ")
    for shown in (error, result.stdout + result.stderr, store_dump(workdir)):
        assert "M\u00fcller" not in shown and "M%FCller" not in shown, shown


def test_a_password_with_a_trailing_line_end_is_typed_without_it(workdir: Path) -> None:
    """A password from the environment with its line end (a CI secret set from `echo`): no
    one types a line break into a password input (the standard strips them from its value),
    so it goes without; so does a query key's."""
    with BackgroundServer(guarded_app()) as url:
        guarded_config(workdir, url)
        (workdir / ".env").unlink()
        result = run_kpi(workdir, "run", env={"APP_PASSWORD": f"{PASSWORD}\r\n"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("community.members", 2048.0), ("other.fields", 3.0)]


def test_a_login_page_that_fails_to_load_says_it_was_the_login_page(workdir: Path) -> None:
    """The login URL is wrong (the site moved its sign-in): the 404 names the login page, so
    the user fixes `login: url:`, not the page's `url:`, which is fine."""
    with BackgroundServer(guarded_app()) as url:
        guarded_config(workdir, url)
        config = (workdir / "kpi.yaml").read_text()
        (workdir / "kpi.yaml").write_text(
            config.replace(f"url: {url}/login,", f"url: {url}/signin,", 1)
        )
        result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert run_errors(workdir) == (
        f"HTTP 404 from {url}/signin (the login page, `login: url:`): not found: check the URL "
        "or the name in the config — 404: Not Found"
    )


def test_a_session_that_expires_after_the_login_logs_in_again(workdir: Path) -> None:
    with BackgroundServer(guarded_app(expired=1)) as url:
        guarded_config(workdir, url)
        result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("community.members", 2048.0), ("other.fields", 3.0)]


def test_a_login_form_back_on_the_page_is_known_with_a_field_it_lacks(workdir: Path) -> None:
    """`fields:` with a name the form has no input for (a `remember` its script sets): the
    login form that comes back on the page (the session expired) is still the login form,
    logged in again, and never read as the page."""
    with BackgroundServer(guarded_app(expired=1)) as url:
        guarded_config(workdir, url)
        config = (workdir / "kpi.yaml").read_text()
        (workdir / "kpi.yaml").write_text(
            config.replace("fields: {user: me,", "fields: {remember: '1', user: me,")
        )
        result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("community.members", 2048.0), ("other.fields", 3.0)]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_secure_cookies_are_kept_on_a_loopback_http_origin_as_a_browser_keeps_them(
    workdir: Path, host: str
) -> None:
    """An app reached at http://localhost (a port-forward, an SSH tunnel) that marks its
    session cookie `Secure`: browsers count loopback origins as secure and send it, so the
    login holds; without it the page answered with the login form again."""
    app = web.Application()
    form = (
        "<form method=post><input name=user><input type=password name=pw><button>Go</button></form>"
    )

    async def login_page(request: web.Request) -> web.Response:
        return web.Response(text=form, content_type="text/html")

    async def login_post(request: web.Request) -> web.Response:
        if (await request.post()).get("pw") != PASSWORD:
            return await login_page(request)
        response = web.HTTPFound("/stats")
        response.set_cookie("sid", "ok", secure=True, httponly=True, samesite="Lax")
        raise response

    async def stats(request: web.Request) -> web.Response:
        if request.cookies.get("sid") != "ok":
            return await login_page(request)
        return web.Response(text="<p id=members>2,048</p>", content_type="text/html")

    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_get("/stats", stats)
    with BackgroundServer(app) as url:
        url = url.replace("127.0.0.1", host)
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: app
    type: html
    url: {url}/stats
    login: {{url: {url}/login, fields: {{user: me, pw: "${{APP_PASSWORD}}"}}}}
    metrics: {{members: "#members"}}
""")
        (workdir / ".env").write_text(f"APP_PASSWORD={PASSWORD}\n")
        result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("app.members", 2048.0)]


@pytest.mark.parametrize(
    "cookie",
    [
        "MTcwMDAwMDAwMHxEdi1CQkFFQ180SUFBUkFCRUFBQUJQLUNBQUE9fA==",  # gorilla/sessions, base64
        '{"user":"me","exp":1700000000}',  # a JSON value
        "v1,tok:abc[1]",  # a comma, a colon, brackets
        '"quoted"',  # quotes of its own, which a browser sends as they are
    ],
)
def test_session_cookies_go_back_as_the_site_set_them(workdir: Path, cookie: str) -> None:
    """A browser sends a cookie's value back byte for byte (RFC 6265, 5.4); a site that
    reads its session cookie as it wrote it (PHP, a Go or Java app reading the raw header)
    does not know `"MTcw...=="`, a copy in quotes, nor `"v1\\054tok..."`."""
    app = web.Application()
    form = (
        "<form method=post><input name=user><input type=password name=pw><button>Go</button></form>"
    )

    async def login_page(request: web.Request) -> web.Response:
        return web.Response(text=form, content_type="text/html")

    async def login_post(request: web.Request) -> web.Response:
        if (await request.post()).get("pw") != PASSWORD:
            return await login_page(request)
        response = web.HTTPFound("/stats")
        response.headers["Set-Cookie"] = f"sid={cookie}; Path=/; HttpOnly; SameSite=Lax"
        raise response

    async def stats(request: web.Request) -> web.Response:
        pairs = [part.strip() for part in request.headers.get("Cookie", "").split(";")]
        if f"sid={cookie}" not in pairs:
            return await login_page(request)
        return web.Response(text="<p id=members>2,048</p>", content_type="text/html")

    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_get("/stats", stats)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: app
    type: html
    url: {url}/stats
    login: {{url: {url}/login, fields: {{user: me, pw: "${{APP_PASSWORD}}"}}}}
    metrics: {{members: "#members"}}
""")
        (workdir / ".env").write_text(f"APP_PASSWORD={PASSWORD}\n")
        result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("app.members", 2048.0)]


def test_a_session_that_never_holds_is_a_login_error_saying_so(workdir: Path) -> None:
    with BackgroundServer(guarded_app(expired=2)) as url:
        guarded_config(workdir, url)
        result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert stored(workdir) == [("other.fields", 3.0)]
    assert run_errors(workdir) == (
        f"logged in, but {url}/stats answered with the login form again (from {url}/login), "
        "after a second login too: the site does not keep the session (a cookie it needs, a "
        "check on the browser) or ends it at once"
    )
    assert PASSWORD not in result.stdout + result.stderr + store_dump(workdir)


def test_a_login_form_that_changed_names_the_fields_it_lacks(workdir: Path) -> None:
    """The site renamed `user` to `login`: the refusal says which configured names the
    form has no input for, besides the ones it sent empty."""
    app = web.Application()

    async def login_page(request: web.Request) -> web.Response:
        page = _GUARDED_LOGIN.format(token="").replace('name="user"', 'name="login"')
        return web.Response(text=page, content_type="text/html")

    async def session(request: web.Request) -> web.Response:
        return await login_page(request)

    app.router.add_get("/login", login_page)
    app.router.add_post("/session", session)
    with BackgroundServer(app) as url:
        guarded_config(workdir, url)
        result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert run_errors(workdir) == (
        f"login refused: the login form came back from {url}/session; sent POST with login, "
        "pw, user; left empty: login (give them in `fields:`); the form has no input named "
        "user (did it change? its inputs: login, pw)"
    )


def test_a_meta_refresh_is_followed_as_a_browser_follows_it(workdir: Path) -> None:
    """A page that sends on with `<meta http-equiv="refresh">` (after a login too): the
    page it names is read, in the same session; a refresh loop is an error saying so."""
    app = guarded_app()

    async def moved(request: web.Request) -> web.Response:
        page = '<html><head><meta http-equiv="Refresh" content="0; URL=\'/stats\'"></head></html>'
        return web.Response(text=page, content_type="text/html")

    async def circle(request: web.Request) -> web.Response:
        page = '<meta http-equiv="refresh" content="1;url=/circle">'
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/moved", moved)
    app.router.add_get("/circle", circle)
    with BackgroundServer(app) as url:
        guarded_config(workdir, url)
        config = (
            (workdir / "kpi.yaml").read_text().replace(f"url: {url}/stats", f"url: {url}/moved")
        )
        config += f"  - {{name: circle, type: html, url: {url}/circle, metrics: {{n: p}}}}\n"
        (workdir / "kpi.yaml").write_text(config)
        result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert stored(workdir) == [("community.members", 2048.0), ("other.fields", 3.0)]
    assert run_errors(workdir) == (
        f"refresh loop: {url}/circle sends on with <meta http-equiv=refresh> to {url}/circle, "
        "where it had been (after 1 hop); check the URL"
    )


@pytest.mark.parametrize(
    ("tag", "target"),
    [
        ('<meta http-equiv="refresh" content="0; url=/next">', "http://h.test/next"),
        ("<META HTTP-EQUIV=Refresh CONTENT=\"5;URL='next?x=1'\">", "http://h.test/a/next?x=1"),
        ('<meta content="0, https://other.test/" http-equiv="refresh">', "https://other.test/"),
        ('<meta http-equiv="refresh" content="300">', None),  # a reload, not a redirect
        ('<meta http-equiv="refresh" content="0; url=javascript:go()">', None),
        ('<meta name="refresh" content="0; url=/next">', None),
        # anywhere in the page, as a browser processes it: in the body, past 64 KB
        ("<body><p>moved</p><meta http-equiv=refresh content='0;url=/b'>", "http://h.test/b"),
        (
            "<p>" + "x" * 100_000 + "</p><meta http-equiv=refresh content=1;url=/far>",
            "http://h.test/far",
        ),
        # the first one that says something: an empty one is passed over (HTML standard)
        (
            '<meta http-equiv=refresh content=""><meta http-equiv=refresh content="0;/2">',
            "http://h.test/2",
        ),
        ('<meta http-equiv="refresh-x" content="0; url=/next">', None),  # not the keyword
        ('<meta http-equiv="refresh" content="soon; url=/next">', None),  # no seconds first
        ('<!-- <meta http-equiv="refresh" content="0; url=/old"> --><p>1</p>', None),
        ('<script>"<meta http-equiv=refresh content=0;url=/js>"</script>', None),
        ('<meta http-equiv="refresh" content="0; url=/caf\u00e9">', "http://h.test/caf\u00e9"),
        # as the standard's steps read `content`: a quote ends at the next quote, not at
        # the end; seconds followed by other text are no refresh, and are passed over
        ("<meta http-equiv=refresh content=\"0; url='/next' (moved)\">", "http://h.test/next"),
        ("<meta http-equiv=refresh content=\"0;'/quoted' x\">", "http://h.test/quoted"),
        ('<meta http-equiv=refresh content="0a; url=/typo">', None),
        ('<meta http-equiv=refresh content="5 URL = /spaced ">', "http://h.test/spaced"),
        ('<meta http-equiv=refresh content=".5;url=/half">', "http://h.test/half"),
        ('<meta http-equiv=refresh content="0; urn=/u">', "http://h.test/a/urn=/u"),
        (
            '<meta http-equiv=refresh content="soon; url=/a">'
            '<meta http-equiv=refresh content="0; url=/b">',
            "http://h.test/b",
        ),
        (
            '<meta http-equiv=refresh content="60"><meta http-equiv=refresh content="0;url=/c">',
            None,  # the first is a reload: the second is never reached
        ),
    ],
)
def test_meta_refresh_reads_the_url_a_browser_goes_to(tag: str, target: str | None) -> None:
    assert HtmlDocument(tag).refresh_url("http://h.test/a/page") == target


_LEGACY_LOGIN = """<html><head>{meta}<title>Login</title></head><body>
<form method="post" action="/login"{accept}>
<input type="hidden" name="realm" value="{word}">
<input name="user"><input type="password" name="pw">
<input type="submit" name="go" value="{word} »"></form></body></html>"""


@pytest.mark.parametrize(
    ("content_type", "meta", "accept", "page_charset", "sent_as", "word", "password"),
    [
        # windows-1252 labelled iso-8859-1 in the header, as old PHP setups send it
        (
            "text/html; charset=ISO-8859-1",
            "",
            "",
            "cp1252",
            "cp1252",
            "B\u00fccher",
            "M\u00fcller-\u20ac",
        ),
        (
            "text/html",
            '<meta charset="Shift_JIS">',
            "",
            "cp932",
            "cp932",
            "\u66f8\u7c4d",
            "\u30d1\u30b9\u30ef\u30fc\u30c97781",
        ),
        (
            "text/html",
            '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">',
            "",
            "koi8_r",
            "koi8_r",
            "\u041a\u043d\u0438\u0433\u0438",
            "\u043f\u0430\u0440\u043e\u043b\u044c-7781",
        ),
        (
            "text/html; charset=gb18030",
            "",
            "",
            "gb18030",
            "gb18030",
            "\u4e66\u7c4d",
            "\u5bc6\u7801-7781",
        ),
        # what the charset cannot hold goes as a character reference, as a browser sends it
        (
            "text/html; charset=windows-1252",
            "",
            "",
            "cp1252",
            "cp1252",
            "B\u00fccher",
            "ok-\u2713-\u5bc6",
        ),
        # the form's accept-charset wins over the page's (its first label known)
        (
            "text/html; charset=shift_jis",
            "",
            ' accept-charset="utf-8"',
            "cp932",
            "utf-8",
            "\u66f8\u7c4d",
            "\u30d1\u30b97781",
        ),
        (
            "text/html; charset=utf-8",
            "",
            ' accept-charset="bogus windows-1252"',
            "utf-8",
            "cp1252",
            "B\u00fccher",
            "caf\u00e9-7781",
        ),
    ],
)
def test_a_login_form_is_sent_in_the_pages_charset_as_a_browser_sends_it(
    workdir: Path,
    content_type: str,
    meta: str,
    accept: str,
    page_charset: str,
    sent_as: str,
    word: str,
    password: str,
) -> None:
    """A legacy app reads its form in its page's own charset (the HTML standard's "picking
    an encoding for the form": `accept-charset`, else the document's encoding): a non-ASCII
    password, and the page's own non-ASCII hidden value, sent as UTF-8 never match."""
    from urllib.parse import parse_qsl

    app = web.Application()
    page = _LEGACY_LOGIN.format(meta=meta, accept=accept, word=word)
    body = page.encode(page_charset, "xmlcharrefreplace")  # `»` as `&#187;` where it must

    async def login_page(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def login_post(request: web.Request) -> web.Response:
        sent = (await request.read()).decode("ascii")
        form = dict(parse_qsl(sent, encoding=sent_as, errors="strict"))

        def typed(text: str) -> str:
            return text.encode(sent_as, "xmlcharrefreplace").decode(sent_as)

        expected = {
            "realm": word,
            "user": typed("j\u00fcrgen"),
            "pw": typed(password),
            "go": typed(f"{word} \u00bb"),
        }
        if form != expected:
            return await login_page(request)
        response = web.HTTPFound("/stats")
        response.set_cookie("sid", "ok")
        raise response

    async def stats(request: web.Request) -> web.Response:
        if request.cookies.get("sid") != "ok":
            raise web.HTTPFound("/login")
        return web.Response(text="<p id=members>2,048</p>", content_type="text/html")

    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_get("/stats", stats)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(
            f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: legacy
    type: html
    url: {url}/stats
    login: {{url: {url}/login, fields: {{user: "j\u00fcrgen", pw: "${{APP_PASSWORD}}"}}}}
    metrics: {{members: "#members"}}
""",
            encoding="utf-8",
        )
        (workdir / ".env").write_text(f"APP_PASSWORD={password}\n", encoding="utf-8")
        result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("legacy.members", 2048.0)]


def _cross_host_apps(
    action: str, redirect: str | None = None, status: int = 307
) -> tuple[web.Application, web.Application]:
    """A login page whose form goes to `action` (`{other}`: the other host's URL), the POST
    answered with a redirect (`status`) to `redirect` if given; and that other host, which
    records what reaches it."""
    app, other = web.Application(), web.Application()
    other["got"] = got = []
    app["hosts"] = hosts = {}  # "other": the other host's URL, once it is known

    async def login_page(request: web.Request) -> web.Response:
        target = action.format(other=hosts["other"])
        page = f"<form method=post action='{target}'><input name=user><input type=password name=pw><button>Go</button></form>"
        return web.Response(text=page, content_type="text/html")

    async def login_post(request: web.Request) -> web.Response:
        if redirect is not None:
            location = redirect.format(other=hosts["other"])
            return web.Response(status=status, headers={"Location": location})
        raise web.HTTPFound("/home")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<p id=members>2,048</p>", content_type="text/html")

    async def record(request: web.Request) -> web.Response:
        got.append((request.method, request.path, request.headers.get("Referer", "")))
        raise web.HTTPFound("/home")

    app.router.add_get("/login", login_page)
    app.router.add_post("/session", login_post)
    app.router.add_get("/stats", page)
    app.router.add_get("/home", page)
    other.router.add_post("/session", record)
    other.router.add_get("/home", page)
    return app, other


def _cross_host_run(
    workdir: Path,
    action: str,
    redirect: str | None = None,
    submit_url: str = "",
    status: int = 307,
    query: str = "",
    render: bool = False,
) -> tuple[str, str, str, list[tuple[str, str, str]]]:
    """(the login page's server URL, the other host's, the run's error or "", what reached
    the other host: method, path, Referer) for a `kpi run` in a new folder under `workdir`
    of a login through `_cross_host_apps` (its login page's URL ending with `query`; with
    `render`, the page rendered and the form filled in Chromium)."""
    workdir = Path(tempfile.mkdtemp(dir=workdir))
    app, other = _cross_host_apps(action, redirect, status)
    with BackgroundServer(other) as other_url, BackgroundServer(app) as url:
        other_url = other_url.replace("127.0.0.1", "localhost")  # another host name
        app["hosts"]["other"] = other_url
        extra = f", submit_url: {submit_url.format(other=other_url)}" if submit_url else ""
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: app
    type: html
    url: {url}/stats
    render: {str(render).lower()}
    login: {{url: "{url}/login{query}", fields: {{user: me, pw: "${{APP_PASSWORD}}"}}{extra}}}
    metrics: {{members: "#members"}}
""")
        (workdir / ".env").write_text(f"APP_PASSWORD={PASSWORD}\n")
        result = run_kpi(workdir, "run")
    assert PASSWORD not in result.stdout + result.stderr + store_dump(workdir)
    error = run_errors(workdir) if result.returncode else ""
    return url, other_url, error, other["got"]


def test_a_login_form_that_posts_to_another_host_is_refused_unless_configured(
    workdir: Path,
) -> None:
    """The password is for the login page's host: a form whose action names another host (a
    tampered page, a wrong `<base href>`) gets nothing, and the error says how to allow it;
    `submit_url:` naming that host is the user's word that it is the site's own sign-in."""
    url, other, error, got = _cross_host_run(workdir, "{other}/session?next=/x")
    assert got == []
    assert error == (
        f"login: the form on {url}/login sends the login fields to {other}/session, another "
        f"host; if that is the site's own sign-in, give `submit_url: {other}/session`"
    )
    url, other, error, got = _cross_host_run(
        workdir, "{other}/session", submit_url="{other}/session", query="?invite=s3cr3t-1"
    )
    assert error == ""
    # what a browser sends another origin: the login page's origin, not its URL and query
    assert got == [("POST", "/session", f"{url}/")]


def test_a_login_post_redirected_to_another_host_keeps_its_fields(workdir: Path) -> None:
    """A 307 or 308 sends a POST on with its body: to another host, the login's fields would
    follow; that is refused, where a redirect to a page there (a GET) is followed."""
    url, other, error, got = _cross_host_run(workdir, "/session", redirect="{other}/session")
    assert got == []
    assert error == (
        f"login: {url}/session redirects the login fields (a 307 or 308 sends them on) to "
        f"{other}/session, another host; if that is the site's own sign-in, give "
        f"`submit_url: {other}/session`"
    )
    for status in (308, 307):
        _, _, error, got = _cross_host_run(workdir, "/session", "{other}/home", status=status)
        assert (error.split(" redirects ")[1][:20], got) == ("the login fields (a ", [])
    for status in (301, 302, 303):  # the POST becomes a GET, without the fields
        _, _, error, got = _cross_host_run(workdir, "/session", "{other}/home", status=status)
        assert (error, got) == ("", [])


def test_a_login_post_is_not_redirected_from_https_to_http(tmp_path: Path) -> None:
    """A 307 from the https sign-in to http on the same host would send the password in
    clear text: refused, as a form that posts to http from an https page is."""
    import ssl

    from kpi_collector.destinations.email.fake import self_signed
    from kpi_collector.sources._fake import BackgroundServer as Base

    cert, key = self_signed(tmp_path)  # for localhost and 127.0.0.1
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    got: list[str] = []

    async def login_page(request: web.Request) -> web.Response:
        form = "<form method=post action=/session><input name=user><input type=password name=pw><button>Go</button></form>"
        return web.Response(text=form, content_type="text/html")

    async def downgrade(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": f"{plain}/session"})

    async def record(request: web.Request) -> web.Response:
        got.append(request.method)
        return web.Response(text="<p id=members>2,048</p>", content_type="text/html")

    secure, clear = web.Application(), web.Application()
    secure.router.add_get("/login", login_page)
    secure.router.add_post("/session", downgrade)
    clear.router.add_route("*", "/session", record)

    class TlsServer(Base):
        async def _start(self) -> None:
            self._runner = web.AppRunner(self.app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"https://localhost:{self.port}"

    with BackgroundServer(clear) as plain, TlsServer(secure) as url:
        plain = plain.replace("127.0.0.1", "localhost")  # the same host name, over http
        (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: app
    type: html
    url: {url}/login
    login: {{url: "{url}/login", fields: {{user: me, pw: "${{APP_PASSWORD}}"}}}}
    metrics: {{members: "#members"}}
""")
        (tmp_path / ".env").write_text(f"APP_PASSWORD={PASSWORD}\n")
        result = run_kpi(tmp_path, "run", env={"SSL_CERT_FILE": str(cert)})
    assert got == []
    assert run_errors(tmp_path) == (
        f"login: {url}/session redirects the login fields (a 307 or 308 sends them on) to "
        f"{plain}/session, unencrypted (http), from an https page; if that is the site's own "
        f"sign-in, give `submit_url: {plain}/session`"
    )
    assert PASSWORD not in result.stdout + result.stderr


def test_a_login_form_on_an_https_page_is_not_sent_unencrypted() -> None:
    from kpi_collector.collect.http import _check_destination
    from kpi_collector.errors import LoginError

    _check_destination("https://app.test/login", "https://app.test:8443/session")  # same host
    _check_destination("http://app.test/login", "https://app.test/session")  # upgraded
    with pytest.raises(LoginError) as caught:
        _check_destination("https://app.test/login?token=s3", "http://app.test/session?k=v")
    assert str(caught.value) == (
        "login: the form on https://app.test/login sends the login fields to "
        "http://app.test/session, unencrypted (http), from an https page; if that is the "
        "site's own sign-in, give `submit_url: http://app.test/session`"
    )


def _welcome_app() -> web.Application:
    """An old windows-1252 app: its login form (`type=PASSWORD`, as old pages write it) comes
    back with "Kennwort ungültig" on a wrong password; the right one lands on "Willkommen
    zurück"."""
    app = web.Application()
    form = "<form method=post><input name=user><input type=PASSWORD name=pw><input type=submit value=Los></form>"

    def page(html: str) -> web.Response:
        body = f"<html><head><meta charset=windows-1252></head><body>{html}</body></html>"
        return web.Response(body=body.encode("cp1252"), content_type="text/html")

    async def login_page(request: web.Request) -> web.Response:
        return page(form)

    async def login_post(request: web.Request) -> web.Response:
        sent = await request.post()
        if sent.get("pw") != PASSWORD:
            return page(f"<p class=err>Kennwort ung\u00fcltig</p>{form}")
        response = page("<p class=hello>Willkommen zur\u00fcck</p>")
        response.set_cookie("sid", "ok")
        return response

    async def stats(request: web.Request) -> web.Response:
        if request.cookies.get("sid") != "ok":
            return await login_page(request)
        return page("<p id=members>2.048</p>")

    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_get("/stats", stats)
    return app


@pytest.mark.parametrize(
    ("checks", "password", "error"),
    [
        ("success: \"p:contains('zur\u00fcck')\"", PASSWORD, ""),
        (
            "failure: \"p:contains('ung\u00fcltig')\"",
            "wrong-7781",
            "login refused: {url}/login shows `failure:` \"p:contains('ung\u00fcltig')\"; sent "
            "POST with user, pw; check the values in `fields:`",
        ),
        (
            "failure: p.nothing",
            "wrong-7781",
            "login refused: the login form came back from {url}/login; sent POST with user, pw; "
            "check the values in `fields:`",
        ),
    ],
)
def test_what_a_login_lands_on_is_read_as_a_browser_shows_it(
    workdir: Path, checks: str, password: str, error: str
) -> None:
    """`success:` and `failure:` see the page's text as its charset says (not its bytes
    taken as UTF-8), and the login form that comes back is known by its password input
    whatever the case of its `type`."""
    with BackgroundServer(_welcome_app()) as url:
        (workdir / "kpi.yaml").write_text(
            f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: old
    type: html
    locale: de
    url: {url}/stats
    login:
      url: {url}/login
      fields: {{user: me, pw: "${{APP_PASSWORD}}"}}
      {checks}
    metrics: {{members: "#members"}}
""",
            encoding="utf-8",
        )
        (workdir / ".env").write_text(f"APP_PASSWORD={password}\n")
        result = run_kpi(workdir, "run")
        assert run_errors(workdir) == error.format(url=url)
    assert result.returncode == (1 if error else 0)
    assert stored(workdir) == ([("old.members", 2048.0)] if not error else [])


def _pin_app(expired: int = 0) -> web.Application:
    """A kiosk app whose login is an access code in a text field (no password input): a
    wrong code answers 200 with the form again, and the login page shows a number of its
    own (the visitors online). The first `expired` sessions end right after the login."""
    app = web.Application()
    live: set[str] = set()
    left = [expired]
    form = (
        "<html><body><p>Visitors online: <b class=count>37</b></p>{error}"
        '<form id="code-login" method="post" action="/enter">'
        '<input type="text" name="code" inputmode="numeric" autocomplete="one-time-code">'
        "<button>Enter</button></form></body></html>"
    )

    async def login_page(request: web.Request, error: str = "") -> web.Response:
        response = web.Response(text=form.format(error=error), content_type="text/html")
        if "sid" not in request.cookies:
            response.set_cookie("sid", secrets.token_hex(8))
        return response

    async def enter(request: web.Request) -> web.Response:
        if (await request.post()).get("code") != "482916":
            return await login_page(request, "<p class=error>Wrong code</p>")
        live.add(request.cookies.get("sid", ""))
        raise web.HTTPFound("/welcome")

    async def welcome(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Welcome</h1>", content_type="text/html")

    async def board(request: web.Request) -> web.Response:
        sid = request.cookies.get("sid", "")
        if sid in live and left[0] > 0:
            left[0] -= 1
            live.discard(sid)
        if sid not in live:
            return await login_page(request)
        return web.Response(text="<p>Orders <b class=count>1,204</b></p>", content_type="text/html")

    app.router.add_get("/login", login_page)
    app.router.add_post("/enter", enter)
    app.router.add_get("/welcome", welcome)
    app.router.add_get("/board", board)
    return app


@pytest.mark.parametrize("code", ["482916", "111111"])
@pytest.mark.parametrize("expired", [0, 1, 2])
def test_a_login_without_a_password_field_knows_its_form_by_form(
    workdir: Path, code: str, expired: int
) -> None:
    """A login whose secret goes in a text field (an access code), its form named by
    `form:`: a wrong code, which brings the form back, is a refused login, not the login
    page's numbers; a session that ends brings the form back on the page, which logs in
    again, as a login with a password field does."""
    with BackgroundServer(_pin_app(expired)) as url:
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: kiosk
    type: html
    url: {url}/board
    login: {{url: {url}/login, form: "#code-login", fields: {{code: "${{KIOSK_CODE}}"}}}}
    metrics: {{orders: ".count"}}
""")
        (workdir / ".env").write_text(f"KIOSK_CODE={code}\n")
        result = run_kpi(workdir, "run")
    if code == "482916" and expired < 2:
        assert result.returncode == 0, result.stdout + result.stderr
        assert stored(workdir) == [("kiosk.orders", 1204.0)]
        return
    assert result.returncode == 1, result.stdout + result.stderr
    assert stored(workdir) == []
    if code != "482916":
        assert run_errors(workdir) == (
            f"login refused: the login form came back from {url}/enter; sent POST with code; "
            "check the values in `fields:`"
        )
    else:
        assert run_errors(workdir).startswith(
            f"logged in, but {url}/board answered with the login form again"
        )
    assert code not in result.stdout + result.stderr + store_dump(workdir)


def test_a_password_field_in_a_template_of_the_page_logged_in_to_is_no_login_form(
    workdir: Path,
) -> None:
    """The page a login lands on keeps a re-authentication dialog in a `<template>` (its
    script shows it when needed): a `<template>`'s content is not on the page, so the
    login went through, and the page is read; it was "login refused"."""
    app = web.Application()
    form = (
        "<form method=post><input name=user><input type=password name=pw><button>Go</button></form>"
    )
    dialog = "<template id=reauth>" + form + "</template>"

    async def login_page(request: web.Request) -> web.Response:
        return web.Response(text=form, content_type="text/html")

    async def login_post(request: web.Request) -> web.Response:
        if (await request.post()).get("pw") != PASSWORD:
            return await login_page(request)
        response = web.HTTPFound("/stats")
        response.set_cookie("sid", "ok")
        raise response

    async def stats(request: web.Request) -> web.Response:
        if request.cookies.get("sid") != "ok":
            return await login_page(request)
        page = f"<p id=members>2,048</p>{dialog}"
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_get("/stats", stats)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - name: app
    type: html
    url: {url}/stats
    login: {{url: {url}/login, fields: {{user: me, pw: "${{APP_PASSWORD}}"}}}}
    metrics: {{members: "#members"}}
""")
        (workdir / ".env").write_text(f"APP_PASSWORD={PASSWORD}\n")
        result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("app.members", 2048.0)]
