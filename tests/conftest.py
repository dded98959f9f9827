"""Shared fixtures: a real local HTTP server that behaves like the sources users point at."""

from __future__ import annotations

import asyncio
import atexit
import base64
import os
import secrets
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kpi_collector.demo.server import BackgroundServer
from tests.services import SkipGuard

# The only skips that may happen under KPI_REQUIRE_SERVICES (CI): a test id pattern (fnmatch)
# and why skipping it there hides nothing. Any other skip under the switch fails the session.
ALLOWED_SKIPS: dict[str, str] = {
    "tests/test_dashboard.py::test_rollup_gets_a_transaction_that_commits_after_a_later_one"
    "[[]sqlite[]]": "SQLite has one writer at a time: there is no out-of-order commit to test",
    "tests/test_destinations_contract.py::test_secret_never_leaks[[]*[]]": "a destination "
    "with no secret of its own (a file, a local database) has nothing to leak",
    "tests/test_bounded.py::test_a_killed_run_leaves_no_command_running": "it needs "
    "PR_SET_PDEATHSIG, which exists on Linux only",
    "tests/test_bounded.py::test_the_run_that_takes_over_kills_what_a_killed_runs_command_left": "it needs PR_SET_PDEATHSIG and /proc, which exist on Linux only",
    "tests/test_bounded.py::test_a_left_group_is_killed_only_when_it_is_the_one_recorded": "it "
    "reads /proc, which exists on Linux only",
    "tests/test_schedule.py::test_a_second_sigterm_stops_at_once_even_when_a_source_never_returns": "it reads /proc, which exists on Linux only",
    "tests/test_store.py::test_tens_of_thousands_of_kpi_ids_are_asked_in_chunks[[]*-False[]]": "a"
    " store on a database server has one path (SQLAlchemy), which its `True` case runs; only"
    " SQLite has a second, direct one",
    "tests/test_schedule.py::test_the_watchdog_is_pinged_while_the_job_loop_lives_and_not_once_it"
    "_hangs": "it reads /proc, which exists on Linux only",
}


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipGuard(ALLOWED_SKIPS), "kpi-skip-guard")


def _measure_children_with_bare_environments() -> None:
    """Under `make coverage` (coverage's `patch = subprocess`) a child is measured when its
    environment holds COVERAGE_PROCESS_CONFIG; the tests that start `kpi` with a bare
    environment (nothing of the test's own may leak into the run) dropped it, so their runs
    counted as not covered. This adds that one variable back, and nothing else."""
    measured = os.environ.get("COVERAGE_PROCESS_CONFIG")
    if not measured:
        return
    start = subprocess.Popen.__init__

    def start_measured(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        env = kwargs.get("env")
        if env is not None and "COVERAGE_PROCESS_CONFIG" not in env:
            kwargs["env"] = {**env, "COVERAGE_PROCESS_CONFIG": measured}
        start(self, *args, **kwargs)

    subprocess.Popen.__init__ = start_measured  # type: ignore[method-assign]


_measure_children_with_bare_environments()


# the config cache (kpi_collector.config.cache) of every test and `kpi` process it starts
# goes to a folder of this session's own, not the user's ~/.cache
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="kpi-tests-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)

TOKEN = "s3cr3t-token-value-42"
BLOG_LINKS = 7


def _blog(n: int) -> str:
    links = "".join(f'<li><a class="anthrazit" href="/p/{i}">Post {i}</a></li>' for i in range(n))
    return (
        "<html><body><ul>" + links + "</ul>"
        '<div id="downloads">12,374 downloads</div><span class="ratio" data-value="59.5%">x</span>'
        '<p class="status">GREEN</p><p class="money">$1,200</p><p class="big">3.4M</p>'
        "</body></html>"
    )


_LOGIN = """<html><body>{error}<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}"><input name="email"><input type="password" name="password">
<input type="submit" value="go"></form></body></html>"""


def make_site() -> web.Application:
    app = web.Application()
    hits: Counter[str] = Counter()
    app["hits"] = hits
    app["csrf"] = set()
    app["sessions"] = set()

    async def count(request: web.Request) -> None:
        hits[request.path] += 1

    async def stats(request: web.Request) -> web.Response:
        await count(request)
        return web.json_response(
            {"data": {"customers": {"paying": 42, "trial": 7}, "items": [1, 2, 3]}}
        )

    async def flaky(request: web.Request) -> web.Response:
        await count(request)
        if hits[request.path] == 1:
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"value": 5})

    async def always500(request: web.Request) -> web.Response:
        await count(request)
        return web.Response(status=503, text="down for maintenance")

    async def ratelimited(request: web.Request) -> web.Response:
        await count(request)
        if hits[request.path] == 1:
            return web.json_response(
                {"message": "slow down"}, status=429, headers={"Retry-After": "1"}
            )
        return web.json_response({"value": 9})

    async def ratelimited_long(request: web.Request) -> web.Response:
        await count(request)
        return web.json_response(
            {"message": "slow down"}, status=429, headers={"Retry-After": "3600"}
        )

    async def slow(request: web.Request) -> web.Response:
        await count(request)
        await asyncio.sleep(10)
        return web.json_response({"value": 1})

    async def malformed(request: web.Request) -> web.Response:
        await count(request)
        return web.Response(text='{"value": 1,,', content_type="application/json")

    async def missing(request: web.Request) -> web.Response:
        await count(request)
        return web.json_response({"message": "Not Found"}, status=404)

    async def blog(request: web.Request) -> web.Response:
        return web.Response(text=_blog(BLOG_LINKS), content_type="text/html")

    async def empty(request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body><p>nothing here</p></body></html>", content_type="text/html"
        )

    async def bearer(request: web.Request) -> web.Response:
        await count(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response({"value": 1})

    async def basic(request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"me:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response({"value": 2})

    async def header(request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != TOKEN:
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response({"value": 3})

    async def query(request: web.Request) -> web.Response:
        if request.query.get("key") != TOKEN:
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response({"value": 4})

    async def login_page(request: web.Request) -> web.Response:
        csrf = secrets.token_hex(8)
        app["csrf"].add(csrf)
        return web.Response(text=_LOGIN.format(csrf=csrf, error=""), content_type="text/html")

    async def login_post(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("csrf") not in app["csrf"]:
            return web.Response(status=403, text="CSRF check failed")
        if form.get("email") != "me@example.com" or form.get("password") != TOKEN:
            page = _LOGIN.format(csrf=form.get("csrf"), error="<p>wrong password</p>")
            return web.Response(text=page, content_type="text/html")
        session = secrets.token_hex(8)
        app["sessions"].add(session)
        response = web.HTTPSeeOther("/private")
        response.set_cookie("session", session)
        raise response

    async def private(request: web.Request) -> web.Response:
        if request.cookies.get("session") not in app["sessions"]:
            raise web.HTTPFound("/login")
        return web.Response(
            text='<html><body><b id="total">1.2k</b></body></html>', content_type="text/html"
        )

    for path, handler in {
        "/stats": stats,
        "/flaky": flaky,
        "/down": always500,
        "/ratelimited": ratelimited,
        "/ratelimited-long": ratelimited_long,
        "/slow": slow,
        "/malformed": malformed,
        "/missing": missing,
        "/blog": blog,
        "/empty": empty,
        "/auth/bearer": bearer,
        "/auth/basic": basic,
        "/auth/header": header,
        "/auth/query": query,
        "/login": login_page,
        "/private": private,
    }.items():
        app.router.add_get(path, handler)
    app.router.add_post("/login", login_post)
    return app


@pytest.fixture
def site() -> Iterator[tuple[str, web.Application]]:
    """A fresh local site per test: (base URL, app) — app["hits"] counts requests per path."""
    app = make_site()
    with BackgroundServer(app) as url:
        yield url, app


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as the current directory, with no KPI_* settings from outside."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    return tmp_path


class Waits:
    """Every deliberate wait the code asks for (`retry.pause`), on a clock of its own: the
    waits are recorded and pass at once, and the `Pacer` sees the clock move by them."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.now = 1000.0
        self.real = False  # True: the waits also pass on the wall clock

    def clock(self) -> float:
        return self.now

    async def pause(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.now += seconds
        await asyncio.sleep(seconds if self.real else 0)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Waits:
    from kpi_collector.collect import retry

    recorder = Waits()
    monkeypatch.setattr(retry, "pause", recorder.pause)
    monkeypatch.setattr(retry, "monotonic", recorder.clock)
    return recorder


@pytest.fixture
def fast_delivery_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of deliveries within a run back off 0.01 s instead of seconds."""
    from kpi_collector.deliver import engine as delivery

    monkeypatch.setattr(delivery, "BACKOFF", 0.01)


@pytest.fixture(autouse=True)
def _secrets_of_this_test_only() -> Iterator[None]:
    """The registry of secret values is per process, as a process runs one config: each test
    starts with the registry it found, so one test's secrets (a login's `username: admin`)
    never mask another test's text."""
    from kpi_collector import secrets as registry

    known = set(registry._KNOWN)
    yield
    registry._KNOWN.clear()
    registry._KNOWN.update(known)
