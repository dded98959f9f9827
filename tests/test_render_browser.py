"""`render: true` end to end: `kpi run` (a subprocess) renders local single-page apps in real
headless Chromium (/usr/bin/chromium through Playwright) and stores what they show."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpi_collector.demo.server import BackgroundServer
from tests.conftest import Waits
from tests.fakes.spa import PASSWORD, PLACEHOLDERS, TOKEN, USER, make_spa, spa_value
from tests.test_dashboard_browser import require_chromium

pytestmark = pytest.mark.browser

KPI = [sys.executable, "-m", "kpi_collector"]


@pytest.fixture(scope="module")
def spa() -> Iterator[str]:
    require_chromium()
    with BackgroundServer(make_spa()) as url:
        yield url


def kpi(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    full_env.update(env or {})
    return subprocess.run(
        [*KPI, *args], cwd=folder, env=full_env, capture_output=True, text=True, timeout=120
    )


def stored(folder: Path) -> dict[str, float]:
    with sqlite3.connect(folder / "kpi.db") as db:
        return dict(db.execute("SELECT kpi, value FROM observations").fetchall())


def run_errors(folder: Path) -> dict[str, str]:
    with sqlite3.connect(folder / "kpi.db") as db:
        rows = db.execute("SELECT source, message FROM run_errors").fetchall()
    return {source: message for source, message in rows}


def test_spa_numbers_that_arrive_after_load_are_read_and_a_missing_wait_for_fails_alone(
    spa: str, tmp_path: Path
) -> None:
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8, retries: 0, render_concurrency: 2}}
sources:
  - {{name: one, type: html, url: "{spa}/spa/1", render: true, wait_for: "#downloads",
      metrics: {{downloads: "#downloads"}}}}
  - {{name: two, type: html, url: "{spa}/spa/2", render: true,
      metrics: {{downloads: "#downloads"}}}}
  - {{name: three, type: html, url: "{spa}/spa/3", render: true, wait_for: ".card h3",
      metrics: {{downloads: {{xpath: "//span[@id='downloads']"}}, cards: {{css: ".card", count: true}}}}}}
  - {{name: stuck, type: html, url: "{spa}/never?token=abc", render: true, wait_for: "#never",
      timeout: 2, metrics: {{items: "#never"}}}}
  - {{name: plain, type: html, url: "{spa}/spa/4", metrics: {{apps: {{css: "#app", count: true}}}}}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 1, result.stderr
    values = stored(tmp_path)
    # the numbers exist only after the script ran: 10,000 + 137 n, written with a comma
    assert values["one.downloads"] == 10_137
    assert values["two.downloads"] == 10_274  # network idle: the 300 ms timer and its fetch
    assert values["three.downloads"] == 10_411
    assert values["three.cards"] == 1
    assert values["plain.apps"] == 1  # the same page without rendering: only the empty shell
    assert "stuck.items" not in values
    message = run_errors(tmp_path)["stuck"]
    assert "waited 2s for `wait_for:` '#never'" in message
    assert "title 'Loading'" in message
    assert f"{spa}/never" in message and "abc" not in message


def test_a_page_that_fails_to_load_is_loaded_again_within_retries(spa: str, tmp_path: Path) -> None:
    # /flaky answers 503 on every other load
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8}}
sources:
  - {{name: again, type: html, url: "{spa}/flaky", render: true, retries: 1,
      wait_for: "#n", metrics: {{n: "#n"}}}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(tmp_path) == {"again.n": 42}
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8}}
sources:
  - {{name: once, type: html, url: "{spa}/flaky", render: true, retries: 0,
      wait_for: "#n", metrics: {{n: "#n"}}}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 1
    assert run_errors(tmp_path)["once"].startswith(f"HTTP 503 from {spa}/flaky: server error")


def test_a_page_that_cannot_load_is_named_without_its_query(tmp_path: Path) -> None:
    import socket

    require_chromium()
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - {{name: gone, type: html, url: "http://127.0.0.1:{port}/stats?session=s3ss10n",
     render: true, metrics: {{n: "#n"}}}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 1
    message = run_errors(tmp_path)["gone"]
    assert message.startswith(f"cannot load http://127.0.0.1:{port}/stats: "), message
    assert "ERR_CONNECTION_REFUSED" in message
    assert "s3ss10n" not in message + result.stdout + result.stderr


def test_a_page_that_never_goes_idle_says_to_set_wait_for(spa: str, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 2, retries: 0}}
sources:
  - {{name: live, type: html, url: "{spa}/polling", render: true, metrics: {{n: "#online"}}}}
  - {{name: waits, type: html, url: "{spa}/polling", render: true, wait_for: "#online",
      timeout: 30, metrics: {{n: "#online"}}}}
""")
    # `waits` ends once its element shows: its long timeout only spares it a loaded machine's
    # slow browser start (2 s was missed once, under a full test suite beside other work)
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 1
    assert stored(tmp_path) == {"waits.n": 17}
    assert run_errors(tmp_path)["live"] == (
        f"waited 2s for the network to go idle; the page showed title 'Live' at {spa}/polling"
        "; a page that keeps polling never does: set `wait_for:` to the element that holds "
        "the number"
    )


def test_a_placeholder_is_read_again_until_the_number_replaces_it(spa: str, tmp_path: Path) -> None:
    # each page shows "…", "--", nothing or "Loading…" where its number goes, and writes the
    # number 1.5 s after it loaded, by a timer: long after the network went idle, and after
    # `wait_for: "#n"` matched the placeholder
    lines = []
    for kind in PLACEHOLDERS:
        lines.append(
            f'  - {{name: idle_{kind}, type: html, url: "{spa}/placeholder/{kind}", render: true,'
            ' metrics: {n: "#n"}}'
        )
        lines.append(
            f'  - {{name: waits_{kind}, type: html, url: "{spa}/placeholder/{kind}", render: true,'
            ' wait_for: "#n", metrics: {n: "#n"}}'
        )
    lines.append(
        f'  - {{name: stays, type: html, url: "{spa}/placeholder/dots?stays=1", render: true,'
        ' timeout: 2, metrics: {n: "#n"}}'
    )
    # a placeholder that is a number is told apart by the metric's `expect:`
    lines.append(
        f'  - {{name: zero, type: html, url: "{spa}/placeholder/zero", render: true,'
        ' wait_for: "#n", metrics: {n: {css: "#n", expect: {min: 1}}}}'
    )
    (tmp_path / "kpi.yaml").write_text(
        "defaults: {timeout: 15, retries: 0, render_concurrency: 4}\nsources:\n"
        + "\n".join(lines)
        + "\n"
    )
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 1, result.stdout + result.stderr
    values = stored(tmp_path)
    expected = {f"{how}_{kind}.n": 12_345 for kind in PLACEHOLDERS for how in ("idle", "waits")}
    expected["zero.n"] = 12_345
    assert values == expected
    # a placeholder that never changes fails, within the timeout, saying what it shows
    assert run_errors(tmp_path)["stays"] == "n: no number in '\u2026'"


def test_numbers_drawn_in_shadow_roots_are_read_as_the_page_shows_them(
    spa: str, tmp_path: Path
) -> None:
    # `wait_for:` finds an element in an open shadow root (Playwright's selectors pierce
    # them): the metrics read the page as it shows, shadow roots and slotted labels included
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8, retries: 0}}
sources:
  - {{name: cards, type: html, url: "{spa}/shadow", render: true, wait_for: "#users",
      metrics: {{users: "#users", deep: "stat-card .deep",
      labels: {{css: "stat-card h3 > [slot=label]", count: true}},
      unshown: {{css: "#unshown", count: true, allow_zero: true}}}}}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 0, result.stdout + result.stderr
    # the heading holds the slotted label; the light-DOM number no slot takes is not shown
    assert stored(tmp_path) == {
        "cards.users": 12_345,
        "cards.deep": 7_001,
        "cards.labels": 1,
        "cards.unshown": 0,
    }


def test_a_number_in_a_frame_says_which_page_to_read(spa: str, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 3, retries: 0}}
sources:
  - {{name: framed, type: html, url: "{spa}/framed", render: true,
      metrics: {{downloads: "#downloads"}}}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 1
    assert run_errors(tmp_path)["framed"] == (
        "downloads: CSS selector '#downloads' matched nothing; the page shows another page "
        f"in a frame ({spa}/spa/1): set `url:` to the frame's page"
    )


def test_a_spa_without_render_reads_the_empty_shell(spa: str, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 0}}
sources:
  - {{name: shell, type: html, url: "{spa}/spa/1", metrics: {{downloads: "#downloads"}}}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 1
    assert "'#downloads' matched nothing" in run_errors(tmp_path)["shell"]


def test_login_form_drawn_by_javascript_with_a_csrf_token(spa: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"POD_USER={USER}\nPOD_PASSWORD={PASSWORD}\nBAD=wrong-pass-99\n")
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8, retries: 0}}
sources:
  - name: podcast
    type: html
    url: {spa}/dashboard
    render: true
    wait_for: "[data-kpi=listeners]"
    login: {{url: {spa}/login, fields: {{email: "${{POD_USER}}", password: "${{POD_PASSWORD}}"}}}}
    metrics: {{listeners: "[data-kpi=listeners]"}}
  - name: refused
    type: html
    url: {spa}/dashboard
    render: true
    timeout: 6
    login: {{url: {spa}/login, fields: {{email: "${{POD_USER}}", password: "${{BAD}}"}}}}
    metrics: {{listeners: "[data-kpi=listeners]"}}
  - name: nobody
    type: html
    url: {spa}/dashboard
    render: true
    timeout: 3
    wait_for: "[data-kpi=listeners]"
    metrics: {{listeners: "[data-kpi=listeners]"}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 1, result.stderr
    assert stored(tmp_path) == {"podcast.listeners": 48_213}
    errors = run_errors(tmp_path)
    assert errors["refused"].startswith("login refused: the login form is still there")
    assert "sent email, password" in errors["refused"]
    # without a login the app sends the browser to its login page: said, with where it landed
    assert "waited 3s for `wait_for:` '[data-kpi=listeners]'" in errors["nobody"]
    assert f"title 'Sign in' at {spa}/login" in errors["nobody"]
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        dump = "\n".join(db.iterdump())
    for secret in (PASSWORD, "wrong-pass-99"):
        assert secret not in result.stdout + result.stderr + dump


def test_login_fields_drawn_without_a_form_element(spa: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"POD_USER={USER}\nPOD_PASSWORD={PASSWORD}\n")
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8, retries: 0}}
sources:
  - name: podcast
    type: html
    url: {spa}/dashboard
    render: true
    wait_for: "[data-kpi=listeners]"
    login: {{url: {spa}/login-div, fields: {{email: "${{POD_USER}}", password: "${{POD_PASSWORD}}"}}}}
    metrics: {{listeners: "[data-kpi=listeners]"}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(tmp_path) == {"podcast.listeners": 48_213}
    assert PASSWORD not in result.stdout + result.stderr


def test_a_login_page_that_answers_an_error_status_says_so(spa: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"POD_USER={USER}\nPOD_PASSWORD={PASSWORD}\n")
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8, retries: 0}}
sources:
  - name: podcast
    type: html
    url: {spa}/dashboard
    render: true
    login: {{url: "{spa}/missing?next=1", fields: {{email: "${{POD_USER}}", password: "${{POD_PASSWORD}}"}}}}
    metrics: {{listeners: "[data-kpi=listeners]"}}
""")
    result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 1
    # the status, as for the page itself; not a wait for a form the error page never draws
    assert run_errors(tmp_path)["podcast"] == (
        f"HTTP 404 from {spa}/missing (the login page): request refused; the page showed "
        f"title 'Not here' at {spa}/missing"
    )


def test_auth_goes_to_the_page_and_its_calls_and_to_no_other_host(spa: str, tmp_path: Path) -> None:
    from aiohttp import web

    seen: list[tuple[str, str | None]] = []
    tracker = web.Application()

    async def record(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization")))
        return web.Response(text="ok", headers={"Access-Control-Allow-Origin": "*"})

    tracker.router.add_get("/{tail:.*}", record)
    with BackgroundServer(tracker) as elsewhere:
        (tmp_path / ".env").write_text(f"SPA_TOKEN={TOKEN}\n")
        (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8, retries: 0}}
sources:
  - name: app
    type: html
    url: "{spa}/private"
    params: {{elsewhere: "{elsewhere}"}}
    auth: {{bearer: "${{SPA_TOKEN}}"}}
    render: true
    wait_for: "body[data-done]"
    metrics: {{mrr: "#mrr"}}
""")
        result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(tmp_path) == {"app.mrr": 8_250}
    # the page's calls to another host went out, without the token
    assert {path for path, _ in seen} == {"/pixel.gif", "/api/track"}
    assert all(header is None for _, header in seen)
    assert TOKEN not in result.stdout + result.stderr


def test_auth_does_not_follow_a_redirect_to_another_host(spa: str, tmp_path: Path) -> None:
    from aiohttp import web

    seen: list[tuple[str, str | None, str | None]] = []
    elsewhere_app = web.Application()

    async def landing(request: web.Request) -> web.Response:
        seen.append(
            (request.path, request.headers.get("Authorization"), request.headers.get("X-Api-Key"))
        )
        return web.Response(text="<p>Total <b id=n>77</b></p>", content_type="text/html")

    elsewhere_app.router.add_get("/{tail:.*}", landing)
    with BackgroundServer(elsewhere_app) as elsewhere:
        (tmp_path / ".env").write_text(f"SPA_TOKEN={TOKEN}\n")
        (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8, retries: 0}}
sources:
  - name: moved
    type: html
    url: "{spa}/go"
    params: {{to: "{elsewhere}/landing"}}
    auth: {{bearer: "${{SPA_TOKEN}}"}}
    headers: {{X-Api-Key: "${{SPA_TOKEN}}"}}
    render: true
    metrics: {{n: "#n"}}
""")
        result = kpi(tmp_path, "run", "--no-deliver")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(tmp_path) == {"moved.n": 77}
    # the page was read where the redirect sent it, and that host never saw the credentials
    assert seen == [("/landing", None, None)]


def test_a_rendered_login_sends_its_fields_to_the_login_page_s_host_only(tmp_path: Path) -> None:
    """The rule of the login without a browser, in Chromium: a form whose action names
    another host, or a 307/308 that would send the POST (the password in its body) on to
    one, is refused before anything reaches that host, with the same line; a 301/302/303
    there (a GET, no fields) is followed, and `submit_url:` naming the host allows it."""
    from tests.test_login_forms import _cross_host_run

    require_chromium()
    url, other, error, got = _cross_host_run(tmp_path, "{other}/session?next=/x", render=True)
    assert got == []
    assert error == (
        f"login: the form on {url}/login sends the login fields to {other}/session, another "
        f"host; if that is the site's own sign-in, give `submit_url: {other}/session`"
    )
    for status in (307, 308):
        url, other, error, got = _cross_host_run(
            tmp_path, "/session", redirect="{other}/session", status=status, render=True
        )
        assert got == []
        assert error == (
            f"login: {url}/session redirects the login fields (a 307 or 308 sends them on) to "
            f"{other}/session, another host; if that is the site's own sign-in, give "
            f"`submit_url: {other}/session`"
        )
    for status in (302, 303):  # the POST becomes a GET, without the fields
        _, _, error, got = _cross_host_run(
            tmp_path, "/session", "{other}/home", status=status, render=True
        )
        assert (error, got) == ("", [])
    url, other, error, got = _cross_host_run(
        tmp_path, "{other}/session", submit_url="{other}/session", render=True
    )
    assert error == ""
    assert got == [("POST", "/session", f"{url}/")]


def test_without_chromium_one_line_says_how_to_install_it(spa: str, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(f"""\
sources:
  - {{name: one, type: html, url: "{spa}/spa/1", render: true, metrics: {{n: "#downloads"}}}}
  - {{name: plain, type: html, url: "{spa}/spa/4", metrics: {{apps: {{css: "#app", count: true}}}}}}
""")
    result = kpi(tmp_path, "run", "--no-deliver", env={"KPI_CHROMIUM": "/nonexistent/chromium"})
    assert result.returncode == 1
    assert stored(tmp_path) == {"plain.apps": 1}
    assert run_errors(tmp_path)["one"] == (
        "KPI_CHROMIUM=/nonexistent/chromium is not an executable file; "
        "point it at a Chromium binary"
    )


def test_without_playwright_one_line_says_how_to_install_it(spa: str, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(f"""\
sources:
  - {{name: one, type: html, url: "{spa}/spa/1", render: true, metrics: {{n: "#downloads"}}}}
""")
    # the interpreter as it is where the `browser` extra was not installed
    hide = (
        "import sys; sys.modules['playwright'] = None; from kpi_collector.cli import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    result = subprocess.run(
        [sys.executable, "-c", hide, "run", "--no-deliver"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert run_errors(tmp_path)["one"] == (
        "`render: true` needs Playwright, which is not installed: "
        "pip install 'kpi-collector[browser]'"
    )


def test_wait_for_needs_render(tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text("""\
sources:
  - {name: one, type: html, url: "http://127.0.0.1:9/", wait_for: "#x", metrics: {n: "#x"}}
""")
    result = kpi(tmp_path, "validate")
    assert result.returncode == 2
    assert "`wait_for:` waits in the browser: add `render: true`" in result.stderr


# no orphaned Chromium ------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def is_chromium(pid: int) -> bool:
    try:
        return "chromium" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has ended: it only waits for its parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(check: object, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return bool(check())  # type: ignore[operator]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killing_the_run_mid_render_leaves_no_chromium(
    spa: str, tmp_path: Path, how: signal.Signals
) -> None:
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 60, retries: 0}}
sources:
  - {{name: stuck, type: html, url: "{spa}/never", render: true, wait_for: "#never",
      metrics: {{items: "#never"}}}}
  - {{name: stuck2, type: html, url: "{spa}/never", render: true, wait_for: "#never",
      metrics: {{items: "#never"}}}}
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    run = subprocess.Popen(
        [*KPI, "run", "--no-deliver"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    chromium: list[int] = []
    try:
        # mid-render: Chromium runs and has both pages open (a renderer per page)
        def rendering() -> bool:
            chromium[:] = [p for p in descendants(run.pid) if is_chromium(p)]
            renderers = [p for p in chromium if "--type=renderer" in _cmdline(p)]
            return len(renderers) >= 2

        assert wait_until(rendering, 60), "Chromium never rendered the pages"
        run.send_signal(how)
        run.wait(timeout=30)
        # every Chromium process of the run ends (the driver closes it when we are gone)
        assert wait_until(lambda: not [p for p in chromium if alive(p)], 30), [
            (p, _cmdline(p)[:80]) for p in chromium if alive(p)
        ]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in chromium:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    if how == signal.SIGTERM:
        assert run.returncode == -signal.SIGTERM


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_probe_render_lists_the_number_the_script_wrote(spa: str, tmp_path: Path) -> None:
    import json

    result = kpi(tmp_path, "probe", f"{spa}/spa/5", "--render", "--format", "json")
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)["findings"]
    # "10,685": as the page's en writes it, named so a config's other `locale:` reads it so
    assert [(f["metric"], f["value"], f["label"]) for f in findings] == [
        ({"css": "#downloads", "locale": "en"}, float(spa_value(5)), "Downloads")
    ]
    # the shell alone has no number: probe says so and exits 1
    shell = kpi(tmp_path, "probe", f"{spa}/spa/5")
    assert shell.returncode == 1
    assert "no numbers found" in shell.stdout
    assert "try again with --render" in shell.stdout


def test_probe_with_a_source_logs_in_in_the_browser(spa: str, tmp_path: Path) -> None:
    import json

    (tmp_path / ".env").write_text(f"POD_USER={USER}\nPOD_PASSWORD={PASSWORD}\n")
    (tmp_path / "kpi.yaml").write_text(f"""\
sources:
  - name: podcast
    type: html
    url: {spa}/dashboard
    render: true
    wait_for: ".stat"
    login: {{url: {spa}/login, fields: {{email: "${{POD_USER}}", password: "${{POD_PASSWORD}}"}}}}
    metrics: {{listeners: ".value"}}
""")
    result = kpi(tmp_path, "probe", "--source", "podcast", "--format", "json")
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [(f["metric"], f["value"], f["label"]) for f in findings] == [
        ({"css": '[data-kpi="listeners"]'}, 48_213.0, "Listeners")
    ]
    assert PASSWORD not in result.stdout + result.stderr


def test_probe_with_a_source_waits_for_its_metrics_to_replace_a_placeholder(
    spa: str, tmp_path: Path
) -> None:
    import json

    # as `kpi run` reads it: the number the script writes 1.5 s later, not the "…" before it
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 15}}
sources:
  - {{name: stats, type: html, url: "{spa}/placeholder/dots", render: true,
      metrics: {{downloads: "#n"}}}}
""")
    result = kpi(tmp_path, "probe", "--source", "stats", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [(f["metric"], f["value"]) for f in findings] == [({"css": "#n"}, 12_345.0)]


def test_probe_render_lists_only_the_numbers_the_page_shows(spa: str, tmp_path: Path) -> None:
    import json

    result = kpi(tmp_path, "probe", f"{spa}/responsive", "--render", "--format", "json")
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [(f["value"], f["label"]) for f in findings] == [(1234.0, "Users"), (40.0, "Seats")]
    # each listed metric reads the shown number in a run
    (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 8, retries: 0}}
sources:
  - name: page
    type: html
    url: {spa}/responsive
    render: true
    metrics: {{{", ".join(f["yaml"] for f in findings)}}}
""")
    run = kpi(tmp_path, "run", "--no-deliver")
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(stored(tmp_path).values()) == [40, 1234]


def test_a_rendered_page_on_a_host_that_does_not_exist_fails_at_once(waits: Waits) -> None:
    """Chromium's ERR_NAME_NOT_RESOLVED for a name no DNS server knows (`.invalid`): the same
    line as without `render`, terminal, and no reload spent on it."""
    from kpi_collector.config.models import Defaults
    from kpi_collector.sources import HTML
    from tests.fakes.collect import run

    require_chromium()
    result = run(
        HTML(
            name="gone",
            url="http://kpi-nosuch.invalid/stats?session=s3ss10n",
            render=True,
            metrics={"n": "#n"},
        ),
        defaults=Defaults(timeout=10, retries=2),
    )
    assert result.errors == {
        "gone": "cannot reach http://kpi-nosuch.invalid/stats: no such host kpi-nosuch.invalid "
        "(the name does not resolve); check the host name in the URL"
    }
    assert [failure.transient for o in result.outcomes for failure in o.errors] == [False]
    assert waits.asked == []


def test_a_rendered_page_with_a_status_http_does_not_define_is_not_reloaded(
    waits: Waits,
) -> None:
    """LinkedIn's 999 to bots, rendered: no server error and no reload (the same refusal
    comes back), as without `render`."""
    from aiohttp import web

    from kpi_collector.config.models import Defaults
    from kpi_collector.sources import HTML
    from tests.fakes.collect import run

    require_chromium()
    hits: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=999, text="<title>Denied</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/in", refuse)
    with BackgroundServer(app) as url:
        result = run(
            HTML(name="li", url=f"{url}/in", render=True, metrics={"n": "#n"}),
            defaults=Defaults(timeout=10, retries=2),
        )
    assert result.errors == {
        "li": f"HTTP 999 from {url}/in: a status HTTP does not define (LinkedIn refuses "
        f"automated requests with 999); the page showed title 'Denied' at {url}/in"
    }
    assert [failure.transient for o in result.outcomes for failure in o.errors] == [False]
    assert hits == ["/in"] and waits.asked == []


def test_a_rendered_page_that_is_rate_limited_waits_its_retry_after(waits: Waits) -> None:
    """A 429 with `Retry-After`, rendered: the reload waits at least that long, and one
    longer than the source's budget fails at once saying when to come back, as without
    `render` (it was reloaded after half a second, whatever the server asked)."""
    from aiohttp import web

    from kpi_collector.config.models import Defaults
    from kpi_collector.sources import HTML
    from tests.fakes.collect import run

    require_chromium()
    hits: list[str] = []

    async def limited(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/soon" and hits.count("/soon") > 1:
            return web.Response(text="<p id=n>42</p>", content_type="text/html")
        wait = "3" if request.path == "/soon" else "3600"
        return web.Response(
            status=429,
            text="<title>Slow down</title>",
            headers={"Retry-After": wait},
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", limited)
    with BackgroundServer(app) as url:
        result = run(
            HTML(name="soon", url=f"{url}/soon", render=True, metrics={"n": "#n"}),
            defaults=Defaults(timeout=10, retries=2),
        )
        assert result.values == {"soon.n": 42} and len(waits.asked) == 1
        assert waits.asked[0] >= 3
        result = run(
            HTML(name="later", url=f"{url}/later", render=True, metrics={"n": "#n"}),
            defaults=Defaults(timeout=10, retries=2),
        )
    assert result.errors == {
        "later": f"HTTP 429 from {url}/later: rate limited (retry after 60 min); the page "
        f"showed title 'Slow down' at {url}/later"
    }
    assert hits.count("/later") == 1 and len(waits.asked) == 1


def test_a_rendered_page_with_a_tls_failure_is_not_reloaded(tmp_path: Path, waits: Waits) -> None:
    """A certificate Chromium does not trust, or an https URL for a port that speaks plain
    HTTP: the same handshake fails on every reload; terminal, saying what to fix, as
    without `render`."""
    import ssl

    from aiohttp import web

    from kpi_collector.config.models import Defaults
    from kpi_collector.destinations.email.fake import self_signed
    from kpi_collector.sources import HTML
    from kpi_collector.sources._fake import BackgroundServer as Base
    from tests.fakes.collect import run

    require_chromium()
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<p id=n>7</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/x", page)

    class TlsServer(Base):
        async def _start(self) -> None:
            self._runner = web.AppRunner(self.app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"https://localhost:{self.port}"

    plain_app = web.Application()
    plain_app.router.add_get("/x", page)
    with TlsServer(app) as tls, BackgroundServer(plain_app) as plain:
        wrong = plain.replace("http://", "https://")
        result = run(
            HTML(name="cert", url=f"{tls}/x?k=s3cret", render=True, metrics={"n": "#n"}),
            HTML(name="plain", url=f"{wrong}/x", render=True, metrics={"n": "#n"}),
            defaults=Defaults(timeout=10, retries=2),
        )
    assert result.errors == {
        "cert": f"cannot load {tls}/x: the TLS certificate of {tls[8:]} is not valid for "
        "Chromium (net::ERR_CERT_AUTHORITY_INVALID); fix the server's certificate, or add "
        "the CA that signed it to Chromium's store: certutil -d sql:$HOME/.pki/nssdb -A -t "
        "C,, -n my-ca -i ca.pem",
        "plain": f"cannot load {wrong}/x: {wrong[8:]} does not answer in TLS "
        "(net::ERR_SSL_PROTOCOL_ERROR); is the URL http://, not https://?",
    }
    assert waits.asked == []


def test_a_rendered_login_form_sent_by_get_to_another_host_is_refused() -> None:
    """A GET form puts the password in its URL: to another host, refused as a POST is."""
    from aiohttp import web

    from kpi_collector.config.models import Defaults
    from kpi_collector.sources import HTML
    from tests.fakes.collect import run

    require_chromium()
    got: list[str] = []

    async def login_page(request: web.Request) -> web.Response:
        form = (
            f"<form method=get action='{hosts['other']}/session'><input name=user>"
            "<input type=password name=pw><button>Go</button></form>"
        )
        return web.Response(text=form, content_type="text/html")

    async def record(request: web.Request) -> web.Response:
        got.append(request.path_qs)
        return web.Response(text="<p id=n>1</p>", content_type="text/html")

    hosts: dict[str, str] = {}
    app, other = web.Application(), web.Application()
    app.router.add_get("/login", login_page)
    other.router.add_get("/{tail:.*}", record)
    with BackgroundServer(other) as elsewhere, BackgroundServer(app) as url:
        hosts["other"] = elsewhere.replace("127.0.0.1", "localhost")
        result = run(
            HTML(
                name="app",
                url=f"{url}/login",
                render=True,
                login={"url": f"{url}/login", "fields": {"user": "me", "pw": "get-pass-4417"}},
                metrics={"n": "#n"},
            ),
            defaults=Defaults(timeout=10, retries=0),
        )
    assert got == []
    assert result.errors == {
        "app": f"login: the form on {url}/login sends the login fields to {hosts['other']}"
        f"/session, another host; if that is the site's own sign-in, give `submit_url: "
        f"{hosts['other']}/session`"
    }


def test_a_rendered_login_on_a_legacy_charset_page_keeps_its_password_too() -> None:
    """A windows-1252 page sends `ä` as `%E4`, not UTF-8's `%C3%A4`: the password in the
    page's charset is looked for too, so it does not go to another host either."""
    from aiohttp import web

    from kpi_collector.config.models import Defaults
    from kpi_collector.sources import HTML
    from tests.fakes.collect import run

    require_chromium()
    got: list[bytes] = []

    async def login_page(request: web.Request) -> web.Response:
        form = (
            "<html><head><meta charset=windows-1252></head><body>"
            f"<form method=post action='{hosts['other']}/session'><input name=user>"
            "<input type=password name=pw><button>Los</button></form></body></html>"
        )
        return web.Response(body=form.encode("cp1252"), content_type="text/html")

    async def record(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(text="<p id=n>1</p>", content_type="text/html")

    hosts: dict[str, str] = {}
    app, other = web.Application(), web.Application()
    app.router.add_get("/login", login_page)
    other.router.add_route("*", "/{tail:.*}", record)
    with BackgroundServer(other) as elsewhere, BackgroundServer(app) as url:
        hosts["other"] = elsewhere.replace("127.0.0.1", "localhost")
        result = run(
            HTML(
                name="app",
                url=f"{url}/login",
                render=True,
                login={"url": f"{url}/login", "fields": {"user": "me", "pw": "Kennwört-9914"}},
                metrics={"n": "#n"},
            ),
            defaults=Defaults(timeout=10, retries=0),
        )
    assert got == []
    assert result.errors["app"].startswith(f"login: the form on {url}/login sends the login")


def test_the_forms_a_typed_password_is_looked_for_in() -> None:
    """As Chromium writes a form: `*` as is, `~` escaped, a space as `+`; in the page's
    charset (`%E4`) and in UTF-8 (`%C3%A4`, what a script's fetch sends)."""
    from kpi_collector.collect.browser import _sent_forms

    forms = _sent_forms(["ä*b~c d"], "windows-1252")
    assert {b"%E4*b%7Ec+d", b"%C3%A4*b%7Ec+d", "ä*b~c d".encode(), b"\xe4*b~c d"} <= set(forms)
    assert _sent_forms([], "UTF-8") == []


def test_a_rendered_page_reads_in_its_content_language_header(tmp_path: Path) -> None:
    """A page whose language only its HTTP `Content-Language` header names (no `lang`, no
    meta): rendered, its script's `12.374` was read as en (12.374) where the page is
    German (12374), as fetched it is read; `kpi probe --render` lists it the same way."""
    import json

    from aiohttp import web

    require_chromium()

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body><p id=n>…</p><script>"
            "setTimeout(() => { document.getElementById('n').textContent = '12.374' }, 50)"
            "</script></body></html>",
            content_type="text/html",
            headers={"Content-Language": "de"},
        )

    app = web.Application()
    app.router.add_get("/", page)
    with BackgroundServer(app) as url:
        (tmp_path / "kpi.yaml").write_text(
            "sources:\n"
            f"  - {{name: shop, type: html, url: '{url}/', render: true, metrics: {{n: '#n'}}}}\n"
        )
        result = kpi(tmp_path, "run", "--format", "json")
        assert result.returncode == 0, result.stdout + result.stderr
        assert stored(tmp_path) == {"shop.n": 12374}
        probed = kpi(tmp_path, "probe", f"{url}/", "--render", "--format", "json")
    assert probed.returncode == 0, probed.stderr
    assert [f["value"] for f in json.loads(probed.stdout)["findings"]] == [12374]


@pytest.mark.parametrize("what", ["browser", "renderer"])
def test_a_chromium_that_dies_mid_run_is_started_again(tmp_path: Path, what: str) -> None:
    """Chromium ends mid-run (the OOM killer, a crash), or only the page's renderer does (a
    page too heavy, "Aw, Snap!"): the page it was loading is loaded again within `retries`
    (in a new Chromium), and the sources after it render too; without retries the page's
    error says what happened, in one line."""
    require_chromium()
    from aiohttp import web

    runs: list[int] = []
    killed: list[int] = []

    def kill(kind: str) -> None:
        for pid in descendants(runs[0]):
            line = _cmdline(pid)
            if is_chromium(pid) and (
                "--type=" not in line if kind == "browser" else "--type=renderer" in line
            ):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    async def page(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "victim" and what == "browser" and not killed:
            kill("browser")
            await asyncio.sleep(2)
        script = "<script>fetch('/crash')</script>" if name == "victim" else ""
        return web.Response(
            text=f"<html><title>{name}</title><p id=n>{len(name)},000</p>{script}</html>",
            content_type="text/html",
        )

    async def crash(request: web.Request) -> web.Response:
        if what == "renderer" and not killed:
            kill("renderer")
            await asyncio.sleep(2)
        return web.Response(text="")

    app = web.Application()
    app.router.add_get("/p/{name}", page)
    app.router.add_get("/crash", crash)
    with BackgroundServer(app) as url:
        for retries in (1, 0):
            killed.clear()
            (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 10, retries: {retries}, render_concurrency: 1}}
sources:
  - {{name: victim, type: html, url: "{url}/p/victim", render: true, metrics: {{n: "#n"}}}}
  - {{name: after, type: html, url: "{url}/p/after", render: true, metrics: {{n: "#n"}}}}
""")
            env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
            run = subprocess.Popen(
                [*KPI, "run", "--no-deliver"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            runs[:] = [run.pid]
            out, err = run.communicate(timeout=120)
            assert killed, out + err
            if retries:
                assert run.returncode == 0, out + err
                assert stored(tmp_path) == {"victim.n": 6000.0, "after.n": 5000.0}
            else:
                assert run.returncode == 1, out + err
                assert stored(tmp_path) == {"after.n": 5000.0}
                ended = {
                    "browser": "Chromium ended while it rendered",
                    "renderer": "Chromium's renderer ended while it rendered",
                }[what]
                assert run_errors(tmp_path) == {
                    "victim": f"{ended} {url}/p/victim (it crashed or was killed: out of "
                    "memory?); `retries:` loads it again"
                }
            (tmp_path / "kpi.db").unlink()


def test_a_page_whose_script_never_ends_fails_within_its_timeout(tmp_path: Path) -> None:
    """A script stuck in a loop blocks the page's renderer: what Playwright reads of the
    page (its DOM, its title) never answers. The page fails within the source's timeout
    saying so, in a run (whose budget said only "timed out") and in `kpi probe`, which has
    no run's budget around it and waited forever."""
    require_chromium()
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        at_once = request.match_info["when"] == "now"
        loop = "while (true) {}" if at_once else "setTimeout(() => { while (true) {} }, 300)"
        # later: `#n` is there at once, its number never comes (the placeholder is read
        # again until the loop begins)
        return web.Response(
            text=f"<html><title>busy</title><p id=n>…</p><script>{loop}</script></html>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/busy/{when}", page)
    with BackgroundServer(app) as url:
        (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 3, retries: 0}}
sources:
  - {{name: now, type: html, url: "{url}/busy/now", render: true, metrics: {{n: "#n"}}}}
  - {{name: later, type: html, url: "{url}/busy/later", render: true, wait_for: "#n",
      metrics: {{n: "#n"}}}}
""")
        result = kpi(tmp_path, "run", "--no-deliver")
        probed = kpi(tmp_path, "probe", "--source", "later")
    assert result.returncode == 1, result.stdout + result.stderr
    busy = "its scripts keep Chromium busy (a script that never ends?)"
    errors = run_errors(tmp_path)
    assert errors["now"] == (
        f"{url}/busy/now did not load within the timeout; the page at {url}/busy/now "
        f"did not answer: {busy}"
    )
    # stuck in the wait (the loop began before `#n` was seen) or in reading the page after it
    assert errors["later"] in (
        f"waited 3s for `wait_for:` '#n'; the page at {url}/busy/later did not answer: {busy}",
        f"the page {url}/busy/later did not answer within the timeout: {busy}",
    )
    assert probed.returncode == 1
    assert f"{url}/busy/later did not answer" in probed.stderr and busy in probed.stderr


def test_a_rendered_login_picks_the_radio_button_of_the_value_given(tmp_path: Path) -> None:
    """`fields: {role: admin}` for a group of radio buttons picks the one whose value is
    `admin`, as a person does; the first of the group (`user`) was ticked instead, and the
    login was refused."""
    require_chromium()
    from aiohttp import web

    form = """<html><title>Sign in</title><form method=post action=/session>
      <input name=user><input type=password name=pw>
      <label><input type=radio name=role value=user checked> User</label>
      <label><input type=radio name=role value=admin> Admin</label>
      <input type=checkbox name=tags value=a><input type=checkbox name=tags value=b>
      <button>Sign in</button></form></html>"""

    async def login(request: web.Request) -> web.Response:
        return web.Response(text=form, content_type="text/html")

    async def session(request: web.Request) -> web.Response:
        posted = await request.post()
        if (posted.get("pw"), posted.get("role"), posted.getall("tags", [])) != (
            PASSWORD,
            "admin",
            ["b"],
        ):
            return web.Response(text=form, content_type="text/html")
        response = web.HTTPFound("/stats")
        response.set_cookie("sid", "admin")
        raise response

    async def stats(request: web.Request) -> web.Response:
        if request.cookies.get("sid") != "admin":
            raise web.HTTPFound("/login")
        return web.Response(text="<p id=n>4,096</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_post("/session", session)
    app.router.add_get("/stats", stats)
    with BackgroundServer(app) as url:
        (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 10, retries: 0}}
sources:
  - name: admin
    type: html
    url: {url}/stats
    render: true
    login: {{url: {url}/login, fields: {{user: me, pw: "${{PW}}", role: admin, tags: b}}}}
    metrics: {{n: "#n"}}
""")
        result = kpi(tmp_path, "run", "--no-deliver", env={"PW": PASSWORD})
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(tmp_path) == {"admin.n": 4096.0}


class _Counting:
    """A Playwright page that counts the characters its reads hand over from Chromium."""

    def __init__(self, page: object) -> None:
        self._page = page
        self.received = 0

    def __getattr__(self, name: str) -> object:
        found = getattr(self._page, name)
        if name not in ("evaluate", "content"):
            return found

        async def counted(*args: object, **kwargs: object) -> object:
            answer = await found(*args, **kwargs)  # type: ignore[operator]
            self.received += len(str(answer)) if answer is not None else 0
            return answer

        return counted


@pytest.mark.parametrize("shadow", [False, True], ids=["plain", "shadow-root"])
@pytest.mark.parametrize("shown", [False, True], ids=["page", "shown"])
def test_a_rendered_dom_over_max_bytes_is_refused_before_it_leaves_chromium(
    shown: bool, shadow: bool
) -> None:
    """A page whose script builds a huge DOM is refused with `max_bytes:` named, and the DOM
    never crosses to kpi-collector: the whole of it was handed over first, then measured (a
    hostile page could build a gigabyte of it). A page within the limit reads as before."""
    executable = require_chromium()
    from kpi_collector.collect.browser import CHROMIUM_ARGS, _content
    from kpi_collector.errors import ExtractError

    host = "const h = document.createElement('div'); document.body.append(h);" + (
        "h.attachShadow({mode: 'open'}).append('9'.repeat(4000000));"
        if shadow
        else "h.append('9'.repeat(4000000));"
    )

    async def main() -> tuple[str, int, str]:
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            chromium = await pw.chromium.launch(
                executable_path=executable, args=list(CHROMIUM_ARGS)
            )
            try:
                page = await chromium.new_page()
                await page.set_content("<!DOCTYPE html><title>big</title><p>1 234</p>")
                small = await _content(page, 10_000, shown, time.monotonic() + 10)
                await page.evaluate(host)
                counting = _Counting(page)
                with pytest.raises(ExtractError) as caught:
                    await _content(counting, 1_000_000, shown, time.monotonic() + 10)
                return small, counting.received, str(caught.value)
            finally:
                await chromium.close()

    small, received, message = asyncio.run(main())
    assert ">1 234</p>" in small and small.startswith("<!DOCTYPE html>")
    assert message == ("the rendered page about:blank is larger than 1000000 bytes (`max_bytes:`)")
    assert received < 1_000_000


def test_a_rendered_login_field_that_takes_no_value_fails_within_the_source_timeout(
    tmp_path: Path,
) -> None:
    """Typing into a login field waits for it to take a value (enabled, editable); it waited
    Playwright's own 30 s, not the source's timeout, and `kpi probe` (no run budget around
    it) hung that long, then said only Playwright's words. It fails within the timeout now,
    naming the field."""
    require_chromium()
    from aiohttp import web

    async def login(request: web.Request) -> web.Response:
        return web.Response(
            text="<html><title>Sign in</title><form method=post action=/session>"
            "<input name=user disabled><input type=password name=pw><button>Go</button>"
            "</form></html>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/login", login)
    with BackgroundServer(app) as url:
        (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 3, retries: 0}}
sources:
  - name: stats
    type: html
    url: {url}/stats
    render: true
    login: {{url: {url}/login, fields: {{user: me, pw: "${{PW}}"}}}}
    metrics: {{n: "#n"}}
""")
        result = kpi(tmp_path, "probe", "--source", "stats", env={"PW": PASSWORD})
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"login: the field 'user' on {url}/login took no value within the timeout (disabled, "
        f"read-only or hidden?); the page showed title 'Sign in' at {url}/login"
    ) in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_a_rendered_login_refused_in_an_alert_says_what_the_alert_said(tmp_path: Path) -> None:
    """A login page that refuses in an `alert()` (or asks in a `confirm()`) instead of on
    the page: Chromium dismissed the dialog unseen and the error said only that the form was
    still there. The dialog's words are in the error now, the password masked."""
    require_chromium()
    from aiohttp import web

    form = """<html><title>Sign in</title><form method=post action=/session>
      <input name=user><input type=password name=pw><button>Sign in</button></form>
      <script>document.forms[0].addEventListener('submit', e => {
        e.preventDefault();
        if (confirm('Sign out of your other session?')) return;
        alert('Wrong password ' + e.target.pw.value + ' for ' + e.target.user.value + ', 2 tries left');
      });</script></html>"""

    async def login(request: web.Request) -> web.Response:
        return web.Response(text=form, content_type="text/html")

    app = web.Application()
    app.router.add_get("/login", login)
    with BackgroundServer(app) as url:
        (tmp_path / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 4, retries: 0}}
sources:
  - name: stats
    type: html
    url: {url}/stats
    render: true
    login: {{url: {url}/login, fields: {{user: me, pw: "${{PW}}"}}}}
    metrics: {{n: "#n"}}
""")
        result = kpi(tmp_path, "run", "--no-deliver", env={"PW": PASSWORD})
    assert result.returncode == 1, result.stdout + result.stderr
    error = run_errors(tmp_path)["stats"]
    assert error.startswith("login refused: the login form is still there"), error
    assert error.endswith(
        "; the page said: confirm 'Sign out of your other session?' (dismissed), "
        "alert 'Wrong password *** for me, 2 tries left'"
    ), error
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        dump = "\n".join(db.iterdump())
    assert PASSWORD not in result.stdout + result.stderr + dump
