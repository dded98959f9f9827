"""Local demo services on 127.0.0.1: a GitHub-like API, a blog index, a podcast analytics page
behind a login form (with a CSRF token), and a token-protected CRM API. Values grow with the
day so history looks plausible. Runs in a background thread; used by `kpi demo` and tests.
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from kpi_collector.demo import devtools

# the thread that serves the demo; it lives with the connectors' fakes, below this layer
from kpi_collector.sources._fake import BackgroundServer as BackgroundServer

DEMO_USER = "founder@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_CRM_TOKEN = "demo-crm-token-123"
EPOCH = date(2026, 1, 1)


#: name -> (value on EPOCH, growth per day, size of the weekly rhythm)
SHAPES = {
    "stars": (1200, 4.5, 2.5),
    "forks": (180, 0.6, 0.3),
    "watchers": (45, 0.08, 0.04),
    "open_issues": (90, 0.05, 3),
    "posts": (40, 0.12, 0),
    "downloads": (9000, 38.0, 20),
    "paying": (20, 0.35, 0.2),
    "open_prs": (12, 0.02, 2),
    "contributors": (30, 0.15, 0),
    "releases": (8, 0.05, 0),
}
#: running totals and counts that only grow: their daily step is never negative
TOTALS = frozenset(
    {"stars", "forks", "watchers", "posts", "downloads", "paying", "contributors", "releases"}
)
_WEEK = 2 * math.pi / 7


def _sine_sum(n: int) -> float:
    """sin(x) + sin(2x) + ... + sin(nx) for x = 2π/7, in closed form (any integer n):
    f(n) - f(n - 1) = sin(nx) holds for negative n too."""
    return (math.cos(_WEEK / 2) - math.cos((2 * n + 1) * _WEEK / 2)) / (2 * math.sin(_WEEK / 2))


def metric(name: str, day: date) -> float:
    """A plausible, deterministic value of a demo metric on a day: growth with a weekly rhythm.

    A running total (`TOTALS`) grows every day by `growth` plus a rhythm no larger than it
    (busier and quieter weekdays), so it never drops from one day to the next; the others
    (open issues and pull requests) wave around their trend."""
    n = (day - EPOCH).days
    base, growth, wave = SHAPES[name]
    if name in TOTALS:
        value = base + growth * n + min(wave, growth) * _sine_sum(n)
    else:
        value = base + growth * n + wave * math.sin(n * _WEEK)
    return float(round(value))


def releases_downloads(day: date) -> float:
    """The downloads of every release asset on a day (what `github_list` serves)."""
    count = int(metric("releases", day))
    return float(sum(150 * (i + 1) for i in range(count)))


def signups(day: date) -> int:
    """How many users of the demo's app signed up on a day (3 to 7)."""
    return 3 + (day.toordinal() * 7) % 5


def _today() -> date:
    return datetime.now(UTC).date()


async def github_repo(request: web.Request) -> web.Response:
    day = _today()
    owner, repo = request.match_info["owner"], request.match_info["repo"]
    return web.json_response(
        {
            "id": 1,
            "full_name": f"{owner}/{repo}",
            "stargazers_count": int(metric("stars", day)),
            "forks_count": int(metric("forks", day)),
            "subscribers_count": int(metric("watchers", day)),
            # like GitHub's, the count includes open pull requests
            "open_issues_count": int(metric("open_issues", day) + metric("open_prs", day)),
        },
        headers=_RATE,
    )


_RATE = {"x-ratelimit-remaining": "4999", "x-ratelimit-limit": "5000"}


def _page(request: web.Request, items: list[dict[str, Any]]) -> web.Response:
    """One page of a list, with a GitHub-style `Link` header (per_page, page)."""
    per_page = int(request.query.get("per_page", "30"))
    page = int(request.query.get("page", "1"))
    last = max(1, math.ceil(len(items) / per_page))
    headers = dict(_RATE)
    if last > 1:
        query = {k: v for k, v in request.query.items() if k != "page"}
        base = request.url.with_query(query)
        links = [f'<{base.update_query(page=last)}>; rel="last"']
        if page < last:
            links.insert(0, f'<{base.update_query(page=page + 1)}>; rel="next"')
        headers["Link"] = ", ".join(links)
    return web.json_response(items[(page - 1) * per_page : page * per_page], headers=headers)


async def github_list(request: web.Request) -> web.Response:
    day = _today()
    listing = request.match_info["listing"]
    if listing == "pulls":
        items = [{"number": i, "state": "open"} for i in range(int(metric("open_prs", day)))]
    elif listing == "contributors":
        items = [
            {"login": f"dev{i}", "contributions": 100 - i}
            for i in range(int(metric("contributors", day)))
        ]
    else:
        count = int(metric("releases", day))
        items = [
            {
                "tag_name": f"v0.{i}.0",
                "assets": [{"name": "wheel", "download_count": 150 * (i + 1)}],
            }
            for i in range(count)
        ]
    return _page(request, items)


async def blog(request: web.Request) -> web.Response:
    posts = int(metric("posts", _today()))
    items = "\n".join(
        f'<li><a class="anthrazit" href="/blog/post-{i}">Post {i}</a></li>'
        for i in range(posts, 0, -1)
    )
    html = f"<html><head><title>Blog</title></head><body><nav><a href='/'>Home</a></nav><ul>{items}</ul></body></html>"
    return web.Response(text=html, content_type="text/html")


_LOGIN_PAGE = """<html><body><h1>Podcast analytics</h1>{error}
<form method="post" action="/podcast/login">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="email" name="email"><input type="password" name="password">
<button type="submit">Sign in</button></form></body></html>"""


async def login_page(request: web.Request) -> web.Response:
    csrf = secrets.token_hex(8)
    request.app["csrf"].add(csrf)
    response = web.Response(text=_LOGIN_PAGE.format(csrf=csrf, error=""), content_type="text/html")
    response.set_cookie("csrf", csrf)
    return response


async def login_post(request: web.Request) -> web.Response:
    form = await request.post()
    csrf = str(form.get("csrf_token", ""))
    if csrf not in request.app["csrf"] or request.cookies.get("csrf") != csrf:
        return web.Response(status=403, text="CSRF token missing or wrong")
    if form.get("email") != DEMO_USER or form.get("password") != DEMO_PASSWORD:
        page = _LOGIN_PAGE.format(csrf=csrf, error="<p class='error'>Wrong email or password</p>")
        return web.Response(text=page, content_type="text/html")
    session = secrets.token_hex(16)
    request.app["sessions"].add(session)
    response = web.HTTPFound("/podcast/analytics")
    response.set_cookie("session", session)
    raise response


async def analytics(request: web.Request) -> web.Response:
    if request.cookies.get("session") not in request.app["sessions"]:
        raise web.HTTPFound("/podcast/login")
    total = int(metric("downloads", _today()))
    html = f"<html><body><h1>Analytics</h1><div id='total-downloads'>{total:,}</div></body></html>"
    return web.Response(text=html, content_type="text/html")


async def crm_stats(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {DEMO_CRM_TOKEN}":
        return web.json_response({"error": "invalid token"}, status=401)
    paying = int(metric("paying", _today()))
    return web.json_response({"data": {"customers": {"paying": paying, "trial": paying // 3}}})


def make_app() -> web.Application:
    app = web.Application()
    app["csrf"] = set()
    app["sessions"] = set()
    app.router.add_get("/github/repos/{owner}/{repo}", github_repo)
    app.router.add_get(
        "/github/repos/{owner}/{repo}/{listing:pulls|contributors|releases}", github_list
    )
    app.router.add_get("/blog/", blog)
    app.router.add_get("/podcast/login", login_page)
    app.router.add_post("/podcast/login", login_post)
    app.router.add_get("/podcast/analytics", analytics)
    app.router.add_get("/crm/v1/stats", crm_stats)
    devtools.mount(app, _today())  # website, crate, model and forum numbers, from the fakes
    return app
