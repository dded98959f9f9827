"""A local single-page app, as the web apps `render: true` is for build their pages: an empty
`<div id="app">`, a script that asks a JSON API for the number 300 ms after the page loaded
and writes it into the DOM; a login form drawn by JavaScript with a CSRF token it fetched;
a dashboard behind that login; a page whose awaited element never comes."""

from __future__ import annotations

import asyncio
import secrets

from aiohttp import web

SPA_DELAY_MS = 300
USER, PASSWORD = "ana@example.com", "pod-pass-7f3k"
TOKEN = "tok-spa-8c1d2e"


def spa_value(n: int) -> int:
    """The number page `n` shows: chosen so that it needs a group separator."""
    return 10_000 + 137 * n


def _shell(title: str, script: str) -> str:
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{title}</title></head><body><div id="app"></div><script>{script}</script></body></html>"""


_SPA_SCRIPT = """
window.addEventListener('load', () => setTimeout(async () => {
  const answer = await fetch('/api/stats/%(n)d');
  const data = await answer.json();
  const card = document.createElement('div');
  card.className = 'card';
  card.innerHTML = '<h3>Downloads</h3><span id="downloads"></span>';
  card.querySelector('#downloads').textContent = data.downloads.toLocaleString('en-US');
  document.getElementById('app').appendChild(card);
}, %(delay)d));
"""

_LOGIN_SCRIPT = """
(async () => {
  const answer = await fetch('/api/csrf');
  const {token} = await answer.json();
  const form = document.createElement('form');
  form.method = 'post';
  form.action = '/session';
  form.innerHTML = '<input type="hidden" name="csrf">' +
    '<label>Email <input name="email" type="email"></label>' +
    '<label>Password <input name="password" type="password"></label>' +
    '<button type="submit">Sign in</button>';
  form.querySelector('[name=csrf]').value = token;
  document.getElementById('app').appendChild(form);
})();
"""

_DASHBOARD_SCRIPT = """
setTimeout(async () => {
  const answer = await fetch('/api/listeners');
  if (!answer.ok) { document.title = 'Error'; return; }
  const data = await answer.json();
  document.getElementById('app').innerHTML =
    '<section class="stat"><span class="label">Listeners</span>' +
    '<b class="value" data-kpi="listeners">' + data.listeners.toLocaleString('en-US') + '</b></section>';
}, %(delay)d);
"""


_PRIVATE_SCRIPT = """
(async () => {
  const data = await (await fetch('/api/private')).json();
  document.getElementById('app').innerHTML = '<p>MRR <b id="mrr">' + data.mrr + '</b></p>';
  if ('%(elsewhere)s') {
    const img = document.createElement('img');
    img.src = '%(elsewhere)s/pixel.gif';
    document.body.appendChild(img);
    await (await fetch('%(elsewhere)s/api/track', {mode: 'cors'})).text();
  }
  document.body.dataset.done = '1';
})();
"""


_FLAKY_SCRIPT = "document.getElementById('app').innerHTML = '<b id=n>' + (6 * 7) + '</b>';"


# a live counter that long-polls (as live pages do): the first answer comes at once, each
# later one is held for a second and asked again as soon as it arrives, so a request is
# always open and the network never goes idle, however slowly a loaded machine runs timers
_POLLING_SCRIPT = """
(async () => {
  for (let i = 0; ; i++) {
    const data = await (await fetch('/api/ping?hold=' + (i ? 1 : 0))).json();
    document.getElementById('app').innerHTML = '<b id="online">' + data.online + '</b>';
  }
})();
"""


# a number drawn in place of a placeholder the page's HTML holds ("…", "--", or nothing), by a
# timer that fires well after the network went idle, with no request of its own
PLACEHOLDERS = {"dots": "\u2026", "dashes": "--", "empty": "", "loading": "Loading\u2026"}
PLACEHOLDER_DELAY_MS = 1500

_PLACEHOLDER_SCRIPT = """
window.addEventListener('load', () => setTimeout(() => {
  document.getElementById('n').textContent = (12345).toLocaleString('en-US');
}, %(delay)d));
"""


# web components: a number drawn inside a shadow root (its label slotted in from the page),
# another inside a shadow root within that one, and a light-DOM number the component does
# not show (no slot takes it)
_SHADOW_SCRIPT = """
customElements.define('stat-card', class extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({mode: 'open'});
    root.innerHTML = '<h3><slot name="label">Untitled</slot></h3>' +
      '<b class="value" id="' + this.dataset.id + '">' + this.dataset.value + '</b>' +
      (this.dataset.inner ? '<inner-card></inner-card>' : '');
  }
});
customElements.define('inner-card', class extends HTMLElement {
  connectedCallback() {
    this.attachShadow({mode: 'open'}).innerHTML = '<i class="deep">7,001</i>';
  }
});
document.getElementById('app').innerHTML =
  '<stat-card data-id="users" data-value="12,345" data-inner="1">' +
  '<span slot="label">Users</span><b id="unshown">99</b></stat-card>';
"""


# a login drawn without a `<form>` (as many web apps draw theirs): inputs in a `<div>` and a
# button whose click handler posts them with `fetch`, then sends the browser on
_DIV_LOGIN_SCRIPT = """
(async () => {
  const {token} = await (await fetch('/api/csrf')).json();
  document.getElementById('app').innerHTML =
    '<div class="login"><label>Email <input name="email" type="email"></label>' +
    '<label>Password <input name="password" type="password"></label>' +
    '<button class="primary">Sign in</button></div>' +
    '<footer><input name="q" placeholder="Search"><button>Go</button></footer>';
  document.querySelector('.primary').addEventListener('click', async () => {
    const value = name => document.querySelector('[name=' + name + ']').value;
    const body = new URLSearchParams({csrf: token, email: value('email'),
                                      password: value('password')});
    const answer = await fetch('/session', {method: 'POST', body});
    if (new URL(answer.url).pathname === '/dashboard') location.href = '/dashboard';
    else document.getElementById('app').insertAdjacentHTML('beforeend', '<p>Wrong</p>');
  });
})();
"""


def make_spa(*, delay_ms: int = SPA_DELAY_MS, listeners: int = 48_213) -> web.Application:
    """The app: the pages above and the JSON calls their scripts make."""
    app = web.Application()
    app["sessions"] = set()
    app["tokens"] = set()
    app["flaky"] = [0]

    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        script = _SPA_SCRIPT % {"n": n, "delay": delay_ms}
        return web.Response(text=_shell(f"Stats {n}", script), content_type="text/html")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"downloads": spa_value(int(request.match_info["n"]))})

    async def login(request: web.Request) -> web.Response:
        return web.Response(text=_shell("Sign in", _LOGIN_SCRIPT), content_type="text/html")

    async def csrf(request: web.Request) -> web.Response:
        if "failed=1" in request.headers.get("Referer", ""):
            # the refusal page draws its form again only after this answer: slow, as on a
            # busy server, so that "the password field is gone" is not taken for a success
            await asyncio.sleep(0.6)
        token = secrets.token_hex(16)
        app["tokens"].add(token)
        return web.json_response({"token": token})

    async def session(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("csrf") not in app["tokens"]:
            return web.Response(status=403, text="CSRF token missing or wrong")
        app["tokens"].discard(form.get("csrf"))
        if form.get("email") != USER or form.get("password") != PASSWORD:
            raise web.HTTPFound("/login?failed=1")
        sid = secrets.token_hex(16)
        app["sessions"].add(sid)
        response = web.HTTPFound("/dashboard")
        response.set_cookie("sid", sid, httponly=True)
        raise response

    def logged_in(request: web.Request) -> bool:
        return request.cookies.get("sid") in app["sessions"]

    async def dashboard(request: web.Request) -> web.Response:
        if not logged_in(request):
            raise web.HTTPFound("/login")
        script = _DASHBOARD_SCRIPT % {"delay": delay_ms}
        return web.Response(text=_shell("Dashboard", script), content_type="text/html")

    async def api_listeners(request: web.Request) -> web.Response:
        if not logged_in(request):
            return web.json_response({"error": "login required"}, status=401)
        return web.json_response({"listeners": listeners})

    async def never(request: web.Request) -> web.Response:
        body = "<h1>Still loading…</h1><p>12 items</p>"
        return web.Response(
            text=f"<!DOCTYPE html><html><head><title>Loading</title></head><body>{body}</body></html>",
            content_type="text/html",
        )

    async def missing(request: web.Request) -> web.Response:
        return web.Response(
            status=404,
            text="<html><head><title>Not here</title></head><body>gone</body></html>",
            content_type="text/html",
        )

    async def private(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401, text="token required")
        elsewhere = request.query.get("elsewhere", "")
        script = _PRIVATE_SCRIPT % {"elsewhere": elsewhere}
        return web.Response(text=_shell("Private", script), content_type="text/html")

    async def api_private(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "token required"}, status=401)
        return web.json_response({"mrr": 8_250})

    async def polling(request: web.Request) -> web.Response:
        return web.Response(text=_shell("Live", _POLLING_SCRIPT), content_type="text/html")

    async def ping(request: web.Request) -> web.Response:
        if request.query.get("hold") == "1":
            await asyncio.sleep(1.0)  # a long poll: open until the next change
        return web.json_response({"online": 17})

    async def flaky(request: web.Request) -> web.Response:
        app["flaky"][0] += 1
        if app["flaky"][0] % 2:  # every other load fails, as a busy server's do
            return web.Response(status=503, text="busy")
        return web.Response(text=_shell("Flaky", _FLAKY_SCRIPT), content_type="text/html")

    async def placeholder(request: web.Request) -> web.Response:
        shown = {**PLACEHOLDERS, "zero": "0"}[request.match_info["kind"]]
        script = _PLACEHOLDER_SCRIPT % {"delay": PLACEHOLDER_DELAY_MS}
        if request.query.get("stays"):
            script = ""
        body = f'<p>Downloads <span id="n">{shown}</span></p><script>{script}</script>'
        return web.Response(
            text=f"<!DOCTYPE html><html><head><title>Stats</title></head><body>{body}</body></html>",
            content_type="text/html",
        )

    async def shadow(request: web.Request) -> web.Response:
        return web.Response(text=_shell("Cards", _SHADOW_SCRIPT), content_type="text/html")

    async def div_login(request: web.Request) -> web.Response:
        return web.Response(text=_shell("Sign in", _DIV_LOGIN_SCRIPT), content_type="text/html")

    async def framed(request: web.Request) -> web.Response:
        body = '<h1>Stats</h1><iframe src="/spa/1?embed_token=abc"></iframe>'
        return web.Response(
            text=f"<!DOCTYPE html><html><head><title>Framed</title></head><body>{body}</body></html>",
            content_type="text/html",
        )

    async def go(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])  # on to another host, as a CDN or SSO sends

    async def responsive(request: web.Request) -> web.Response:
        # the same number twice, one copy hidden by the stylesheet (as responsive pages
        # draw a mobile and a desktop version), a stale one hidden, one made invisible
        body = (
            "<style>.mobile{display:none}.gone{visibility:hidden}</style>"
            '<section class="desktop"><h3>Users</h3><b class="users">1,234</b></section>'
            '<section class="mobile"><h3>Users</h3><b class="users">1,234</b></section>'
            '<p class="gone">Old <b>77</b></p>'
            "<script>document.body.insertAdjacentHTML('beforeend', "
            "'<p>Seats <b id=seats>40</b></p>')</script>"
        )
        return web.Response(
            text=f"<!DOCTYPE html><html><head><title>Stats</title></head><body>{body}</body></html>",
            content_type="text/html",
        )

    app.router.add_get("/responsive", responsive)
    app.router.add_get("/go", go)
    app.router.add_get("/framed", framed)
    app.router.add_get("/login-div", div_login)
    app.router.add_get("/placeholder/{kind}", placeholder)
    app.router.add_get("/shadow", shadow)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/polling", polling)
    app.router.add_get("/api/ping", ping)
    app.router.add_get("/private", private)
    app.router.add_get("/api/private", api_private)
    app.router.add_get("/spa/{n:\\d+}", page)
    app.router.add_get("/api/stats/{n:\\d+}", stats)
    app.router.add_get("/login", login)
    app.router.add_get("/api/csrf", csrf)
    app.router.add_post("/session", session)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/api/listeners", api_listeners)
    app.router.add_get("/never", never)
    app.router.add_get("/missing", missing)
    return app
