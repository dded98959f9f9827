"""No secret in any form anywhere (issue 12, section 2).

Every kind of credential a config can hold is set from `${VAR}`s with values that change
under every encoding; the sources and destinations all talk to a server that echoes what it
was sent (URL, headers, body; as text and as JSON). Then every output surface is searched
for every secret in every form a server or program is likely to echo it in: the `kpi run`
table and its JSON, both reports, the SQLite store (its file bytes too), a PostgreSQL store
and the dashboard's pages and API. A redirect to another origin must carry no credential.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from aiohttp import web

from tests.cli import run_kpi
from tests.services import require_postgres_url

ROOT = Path(__file__).resolve().parents[1]
SPECIALS = '"q/r+s&t=u%v\\w'  # each changes under URL, JSON or HTML encoding
NAMES = [
    "S_PARAM", "S_HEADER", "S_BEARER", "S_BASIC", "S_XKEY", "S_QUERY", "S_LOGIN", "S_CMD",
    "S_CMD_OUT", "S_JSONHDR", "S_PAGEHDR", "S_DBPW", "S_GITHUB", "S_SLACK_SRC",
    "S_HOOK_URL", "S_HOOK_HDR", "S_HOOK_SIG", "S_SLACK_HOOK", "S_DISCORD", "S_SEGMENT",
    "S_NOTION", "S_PUSH", "S_RD_XKEY", "S_RD_QUERY", "S_RD_BEARER", "S_RD_BASIC",
    "S_RD_HEADER", "S_RD_PARAM",
]  # fmt: skip
BASIC_USER = "kpiuser"
#: secrets written into a webhook URL's path: a backslash there is a config error at load
#: (no webhook URL holds one; a browser would send it as `/`), the other specials stay
IN_URL_PATH = {"S_HOOK_URL", "S_SLACK_HOOK", "S_DISCORD"}


def make_secrets() -> dict[str, str]:
    # a unique start per secret, so that a leaked prefix is found too
    return {
        name: f"zq{name[2:].lower().replace('_', '')}{uuid.uuid4().hex[:10]}"
        + (SPECIALS.replace("\\", "") if name in IN_URL_PATH else SPECIALS)
        for name in NAMES
    }


def forms(secret: str) -> set[str]:
    """The forms a secret may be echoed in, computed here (not by the code under test)."""
    out = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        quote(secret),
        json.dumps(secret)[1:-1],
        html.escape(secret),
        secret[:12],  # a prefix left by a cut before redaction
    }
    pair = f"{BASIC_USER}:{secret}".encode()
    out.add(base64.b64encode(pair).decode().rstrip("="))
    out.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Servers:
    """The echoing server and, on another origin, one that records what a redirect sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.other_port = free_port()
        self.captured: list[str] = []
        self.loop_ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _echo(self, request: web.Request, body: bytes) -> str:
        lines = [f"{request.method} {request.path_qs}"]
        # what carries secrets first, so that it lands in the 200 characters of a snippet
        lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower().startswith("x-")]
        lines += [f"Authorization: {request.headers.get('Authorization', '')}"]
        lines.append(body.decode("utf-8", "replace"))
        lines += [f"{k}: {v}" for k, v in request.headers.items() if not k.lower().startswith("x-")]
        return "\n".join(lines)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        text = self._echo(request, body)
        if request.path == "/loginpage":
            return web.Response(
                text='<form method="post" action="/echo/500"><input name="user">'
                '<input type="password" name="password"></form>',
                content_type="text/html",
            )
        if request.path.startswith("/redirect"):
            target = f"http://127.0.0.1:{self.other_port}/capture?{request.query_string}"
            raise web.HTTPFound(target)
        if request.path.startswith("/echo/"):
            status = int(request.path.split("/")[2])
            return web.Response(status=status, text=text)
        # anything else answers like an API: JSON with the echo as its message
        return web.json_response({"message": text, "error": text}, status=500)

    async def capture(self, request: web.Request) -> web.Response:
        self.captured.append(self._echo(request, await request.read()))
        return web.json_response({"v": 1})

    def _serve(self) -> None:
        import asyncio

        async def main() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self.handle)
            other = web.Application()
            other.router.add_route("*", "/{tail:.*}", self.capture)
            runners = []
            for application, port in ((app, self.port), (other, self.other_port)):
                runner = web.AppRunner(application)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                runners.append(runner)
            self.stop = asyncio.Event()
            self.loop = asyncio.get_running_loop()
            self.loop_ready.set()
            await self.stop.wait()
            for runner in runners:
                await runner.cleanup()

        asyncio.run(main())

    def __enter__(self) -> Servers:
        self.thread.start()
        self.loop_ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


def config(port: int, store: str | None) -> str:
    echo = f"http://127.0.0.1:{port}"
    py = sys.executable
    store_line = f"store: {store}\n" if store else ""
    return f"""\
{store_line}defaults: {{timeout: 5, retries: 0}}
sources:
  - name: p_params
    type: http_json
    url: {echo}/echo/500
    params: {{auth: "${{S_PARAM}}"}}
    headers: {{X-Api: "${{S_HEADER}}"}}
    metrics: {{v: v}}
  - {{name: p_bearer, type: http_json, url: {echo}/echo/401, auth: {{bearer: "${{S_BEARER}}"}}, metrics: {{v: v}}}}
  - {{name: p_basic, type: http_json, url: {echo}/echo/500, auth: {{basic: [{BASIC_USER}, "${{S_BASIC}}"]}}, metrics: {{v: v}}}}
  - {{name: p_header, type: http_json, url: {echo}/echo/500, auth: {{header: {{X-Key: "${{S_XKEY}}"}}}}, metrics: {{v: v}}}}
  - {{name: p_query, type: http_json, url: {echo}/echo/500, auth: {{query: {{key: "${{S_QUERY}}"}}}}, metrics: {{v: v}}}}
  - {{name: p_json, type: http_json, url: {echo}/echo/200, headers: {{X-Json: "${{S_JSONHDR}}"}}, metrics: {{v: v}}}}
  - {{name: p_page, type: html, url: {echo}/echo/200, headers: {{X-Page: "${{S_PAGEHDR}}"}}, metrics: {{v: {{css: body}}}}}}
  - name: p_login
    type: html
    url: {echo}/echo/200
    login: {{url: {echo}/loginpage, fields: {{user: {BASIC_USER}, password: "${{S_LOGIN}}"}}}}
    metrics: {{v: {{css: body}}}}
  - name: p_cmd
    type: command
    env: {{API_KEY: "${{S_CMD}}"}}
    command: [{py}, -c, "import os, sys; print('using', os.environ['API_KEY'], file=sys.stderr); sys.exit(3)"]
  - name: p_cmd_out
    type: command
    env: {{OUT: "${{S_CMD_OUT}}"}}
    command: [{py}, -c, "import os; print(os.environ['OUT'])"]
  - {{name: p_sql, type: sql, url: "postgresql+psycopg://nobody:${{S_DBPW}}@127.0.0.1:1/x", metrics: {{v: SELECT 1}}}}
  - {{name: p_github, type: github, repo: a/b, token: "${{S_GITHUB}}", api_url: {echo}/gh}}
  - {{name: p_slack, type: slack, token: "${{S_SLACK_SRC}}", api_url: {echo}/slack}}
  - {{name: rd_header, type: http_json, url: {echo}/redirect, auth: {{header: {{X-Key: "${{S_RD_XKEY}}"}}}}, metrics: {{v: v}}}}
  - {{name: rd_query, type: http_json, url: {echo}/redirect, auth: {{query: {{key: "${{S_RD_QUERY}}"}}}}, metrics: {{v: v}}}}
  - {{name: rd_bearer, type: http_json, url: {echo}/redirect, auth: {{bearer: "${{S_RD_BEARER}}"}}, metrics: {{v: v}}}}
  - {{name: rd_basic, type: http_json, url: {echo}/redirect, auth: {{basic: [{BASIC_USER}, "${{S_RD_BASIC}}"]}}, metrics: {{v: v}}}}
  - {{name: rd_plain, type: http_json, url: {echo}/redirect, headers: {{X-Other: "${{S_RD_HEADER}}"}}, params: {{sig: "${{S_RD_PARAM}}"}}, metrics: {{v: v}}}}
destinations:
  - type: webhook
    url: "{echo}/hook/${{S_HOOK_URL}}"
    headers: {{X-Hook: "${{S_HOOK_HDR}}"}}
    secret: "${{S_HOOK_SIG}}"
  - {{type: slack, webhook_url: "{echo}/slackhook/${{S_SLACK_HOOK}}"}}
  - {{type: discord, webhook_url: "{echo}/discord/${{S_DISCORD}}"}}
  - {{type: segment, write_key: "${{S_SEGMENT}}", api_url: {echo}/segment}}
  - {{type: notion, token: "${{S_NOTION}}", database: 0123456789abcdef0123456789abcdef, api_url: {echo}/notion}}
  - {{type: pushgateway, url: {echo}/push, username: {BASIC_USER}, password: "${{S_PUSH}}"}}
"""


def store_text(url: str) -> str:
    """Every value in every table of a store, as text."""
    engine = sa.create_engine(url)
    out = []
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                    out.append(" ".join(str(v) for v in row))
    finally:
        engine.dispose()
    return "\n".join(out)


def dashboard_text(folder: Path, env: dict[str, str]) -> str:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "kpi_collector", "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        pages = []
        kpis = json.loads(urllib.request.urlopen(f"{base}/api/kpis", timeout=10).read())
        paths = ["/", "/runs", "/api/kpis", "/api/runs", "/metrics", "/healthz"]
        ids = [k["id"] for k in kpis.get("kpis", [])] if isinstance(kpis, dict) else []
        paths += [f"/kpi/{kid}" for kid in ids] + [f"/api/kpis/{kid}/series" for kid in ids]
        for path in paths:
            try:
                pages.append(urllib.request.urlopen(base + path, timeout=10).read().decode())
            except urllib.error.HTTPError as exc:
                pages.append(exc.read().decode())
        return "\n".join(pages)
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=20)
        pages_log = out or ""
        assert "Traceback" not in pages_log, pages_log


@pytest.fixture
def postgres_store() -> Iterator[str]:
    url = require_postgres_url()
    name = f"kpi_leak_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    try:
        yield url + f"?options=-csearch_path%3D{name}"
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()


def find_leaks(surface: str, text: str, secrets: dict[str, str]) -> list[str]:
    return [
        f"{surface}: {name} as {form!r}"
        for name, secret in secrets.items()
        for form in forms(secret)
        if form in text
    ]


def test_no_secret_in_any_form_on_any_surface(tmp_path: Path, postgres_store: str) -> None:
    secrets = make_secrets()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPI_", "S_"))}
    env.update(secrets)
    env["PYTHONPATH"] = str(ROOT)
    run_env = {**secrets, "PYTHONPATH": str(ROOT)}  # run_kpi's bare environment, and these
    surfaces: dict[str, str] = {}
    with Servers() as servers:
        (tmp_path / "kpi.yaml").write_text(config(servers.port, None), encoding="utf-8")
        table = run_kpi(tmp_path, "run", env=run_env)
        assert table.returncode == 1, table.stderr  # every source fails, or reads an echo
        surfaces["kpi run (table)"] = table.stdout + table.stderr
        as_json = run_kpi(tmp_path, "run", "--format", "json", env=run_env)
        surfaces["kpi run --format json"] = as_json.stdout + as_json.stderr
        # -v logs every request, retry, login step and read value, and keeps failed pages
        verbose = run_kpi(tmp_path, "-v", "run", env=run_env)
        assert "DEBUG kpi_collector.http: " in verbose.stderr
        surfaces["kpi -v run (log)"] = verbose.stdout + verbose.stderr
        for kept in re.findall(r"the answer as fetched is saved in (\S+)", verbose.stderr):
            surfaces[f"kept page {kept}"] = Path(kept).read_text(encoding="utf-8")
            Path(kept).unlink()
        document = json.loads(as_json.stdout)
        assert document  # the JSON document was written
        for out in ("report.html", "report.md"):
            done = run_kpi(tmp_path, "report", "--out", out, env=run_env)
            assert done.returncode == 0, done.stderr
            surfaces[out] = (tmp_path / out).read_text(encoding="utf-8") + done.stderr
        database = tmp_path / "kpi.db"
        surfaces["SQLite store"] = store_text(f"sqlite:///{database}")
        with sqlite3.connect(database) as conn:  # the file's bytes, free pages included
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        surfaces["SQLite file"] = database.read_bytes().decode("utf-8", "replace")
        surfaces["dashboard"] = dashboard_text(tmp_path, env)
        (tmp_path / "pg").mkdir()
        (tmp_path / "pg" / "kpi.yaml").write_text(
            config(servers.port, postgres_store), encoding="utf-8"
        )
        pg_run = run_kpi(tmp_path / "pg", "run", env=run_env)
        surfaces["kpi run (PostgreSQL)"] = pg_run.stdout + pg_run.stderr
        surfaces["PostgreSQL store"] = store_text(postgres_store)
        captured = "\n".join(servers.captured)

    if os.environ.get("KPI_LEAK_DUMP"):  # for a look at what each surface shows
        Path(os.environ["KPI_LEAK_DUMP"]).write_text(
            "\n\n".join(f"== {k}\n{v}" for k, v in surfaces.items()) + f"\n== captured\n{captured}"
        )
    # the echo really carried the secrets: the test checks something
    assert "p_params" in surfaces["kpi run (table)"] and "***" in surfaces["SQLite store"]
    assert "HTTP 500" in surfaces["SQLite store"] and "exited with 3" in surfaces["SQLite store"]
    leaks = [
        leak for surface, text in surfaces.items() for leak in find_leaks(surface, text, secrets)
    ]
    assert not leaks, "\n".join(leaks)
    # the redirects reached the other origin, with none of the configured credentials
    assert len(servers.captured) >= 5
    leaked = find_leaks("redirect to another origin", captured, secrets)
    assert not leaked, "\n".join(leaked)


@pytest.mark.parametrize(
    "auth",
    [
        {"header": {"X-Key": "hdr-secret-1"}},
        {"query": {"key": "query-secret-2"}},
        {"bearer": "bearer-secret-3"},
        {"basic": ["kpiuser", "basic-secret-4"]},
        None,
    ],
)
def test_no_configured_credential_follows_a_redirect_to_another_origin(
    auth: dict[str, object] | None,
) -> None:
    import asyncio

    from kpi_collector.collect.http import Auth, HttpClient

    async def fetch(url: str) -> object:
        async with HttpClient() as client:
            session = client.session(
                auth=Auth.model_validate(auth) if auth else None,
                headers={"X-Config": "config-header-secret-5"},
                retries=0,
            )
            response = await session.get(url, params={"sig": "param-secret-6"})
            return response.json()

    with Servers() as servers:
        # the first server answers 302 to the other origin, keeping the query string
        answer = asyncio.run(fetch(f"http://127.0.0.1:{servers.port}/redirect"))
        assert answer == {"v": 1}
        assert len(servers.captured) == 1
        sent = servers.captured[0]
    assert sent.startswith("GET /capture")
    for secret in ("secret-1", "secret-2", "secret-3", "secret-5", "secret-6"):
        assert secret not in sent, sent
    assert "Authorization: \n" in sent  # no basic (its base64) either


def test_a_key_in_the_urls_own_query_does_not_follow_a_redirect_to_another_origin() -> None:
    """A key given in `params:` was kept from another origin a redirect copies the query to,
    but the same key written into the URL (`?api_key=...`) went along; now the URL's own
    credentials (named as one, or a known secret's value) stay too, and the rest goes."""
    import asyncio

    from kpi_collector.collect.http import HttpClient
    from kpi_collector.secrets import remember

    remember("zqvar-given-value-77")

    async def fetch(url: str) -> object:
        async with HttpClient() as client:
            return (await client.session(retries=0).get(url)).json()

    with Servers() as servers:
        query = "api_key=zqurl-key-4242&page=2&access=zqvar-given-value-77"
        answer = asyncio.run(fetch(f"http://127.0.0.1:{servers.port}/redirect?{query}"))
        assert answer == {"v": 1}
        (sent,) = servers.captured
    assert sent.startswith("GET /capture?page=2\n")
    assert "zqurl" not in sent and "zqvar" not in sent, sent


def test_credentials_still_go_along_a_redirect_within_the_same_origin() -> None:
    import asyncio

    from kpi_collector.collect.http import Auth, HttpClient

    seen: list[str] = []

    async def main() -> None:
        async def first(request: web.Request) -> web.Response:
            raise web.HTTPFound("/second")

        async def second(request: web.Request) -> web.Response:
            seen.append(f"{request.headers.get('X-Key')} {request.headers.get('X-Config')}")
            return web.json_response({"v": 2})

        app = web.Application()
        app.router.add_get("/first", first)
        app.router.add_get("/second", second)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with HttpClient() as client:
                session = client.session(
                    auth=Auth.model_validate({"header": {"X-Key": "same-origin-key"}}),
                    headers={"X-Config": "same-origin-header"},
                    retries=0,
                )
                assert (await session.get(f"http://127.0.0.1:{port}/first")).json() == {"v": 2}
        finally:
            await runner.cleanup()

    asyncio.run(main())
    assert seen == ["same-origin-key same-origin-header"]


def test_short_option_words_written_in_the_file_do_not_rewrite_messages() -> None:
    """`params: {state: open}` is an option, not a key: masking it would turn every
    `github.open_issues` into `github.***_issues`. A long literal and any ${VAR} value are
    hidden as before."""
    from kpi_collector.secrets import redact, remember_values

    remember_values({"state": "open", "per_page": "100", "sort": "created"})
    assert redact("github.open_issues: sorted by created, 100 per page") == (
        "github.open_issues: sorted by created, 100 per page"
    )
    remember_values({"key": "k3y-written-in-file-42"})
    assert "k3y-written-in-file-42" not in redact("GET /?key=k3y-written-in-file-42 failed")


def test_a_secret_that_is_a_word_is_masked_where_echoed_not_in_the_prose() -> None:
    """A token literally `wrong` and a login user `admin` (issue 13 §5): the sentence around
    them stays as written; every place the value was sent or echoed back is masked."""
    from kpi_collector.secrets import redact, remember

    remember("wrong")
    remember("admin")
    prose = "the API token is missing or wrong; log in as another user than the admin account"
    assert redact(prose) == prose
    assert redact("wrongly administered") == "wrongly administered"
    echoed = {
        "GET /api?token=wrong&page=2 failed": "GET /api?token=***&page=2 failed",
        "sent api_key=wrong": "sent api_key=***",
        "Authorization: Bearer wrong": "Authorization: Bearer ***",
        "Authorization: token wrong": "Authorization: token ***",
        "X-Api-Key: wrong": "X-Api-Key: ***",
        '{"error": "bad key", "key": "wrong"}': '{"error": "bad key", "key": "***"}',
        "user 'admin' was refused": "user '***' was refused",
        "https://admin@example.test/u/admin/": "https://***@example.test/u/***/",
        "username=admin&password=wrong": "username=***&password=***",
    }
    for text, expected in echoed.items():
        assert redact(text) == expected, text


def test_a_short_secret_is_masked_where_it_is_sent() -> None:
    """A password of three characters was never masked (shorter than 4); masked everywhere it
    would rewrite any text, so it is masked where it stands as a value (issue 13 §5)."""
    from kpi_collector.secrets import redact, remember

    remember("q7x")
    assert redact("POST /login: password=q7x&user=me refused") == (
        "POST /login: password=***&user=me refused"
    )
    assert redact('{"pin": "q7x"}') == '{"pin": "***"}'
    assert redact("the q7x form and q7xy stay") == "the q7x form and q7xy stay"


def test_a_key_in_a_sources_url_is_hidden_where_the_server_echoes_it_alone(
    tmp_path: Path,
) -> None:
    """`url: ${STATS_URL}` whose value carries `?key=...`: the variable's name says nothing of
    a secret, and `redact` hid the key only as `key=...`; a server answering `invalid key
    abcd...` showed it in the run's output and the store."""
    from kpi_collector.demo.server import BackgroundServer

    key = "k3yAbcd1234Efgh"

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403, text=f"invalid key {request.query['key']}")

    app = web.Application()
    app.router.add_get("/stats", refuse)
    with BackgroundServer(app) as url:
        (tmp_path / "kpi.yaml").write_text(
            "sources:\n"
            '  - {name: stats, type: html, url: "${STATS_URL}", retries: 0,'
            ' metrics: {n: "#n"}}\n'
        )
        result = run_kpi(
            tmp_path, "run", "--no-deliver", env={"STATS_URL": f"{url}/stats?key={key}"}
        )
    assert result.returncode == 1
    assert "invalid key ***" in result.stdout + result.stderr
    assert key not in result.stdout + result.stderr
    assert key.encode() not in (tmp_path / "kpi.db").read_bytes()


def test_credentials_in_a_urls_userinfo_show_nowhere(tmp_path: Path) -> None:
    """A token written as a URL's user (`http://TOKEN@host/`, no password) showed in every
    "cannot reach" message, on screen, in the log and in the store: messages named the URL
    without its query but with its userinfo, and only a password was known as secret. A
    server echoing the `Authorization: Basic` a URL's userinfo is sent as showed its base64.
    Now messages name the URL without userinfo, and the userinfo and its basic form are
    secret, written in the file or not."""
    from kpi_collector.demo.server import BackgroundServer

    token, password = "ghp_u5erinfoT0ken42", "pw-in-url-7781"
    closed = free_port()

    async def echo(request: web.Request) -> web.Response:
        said = request.headers.get("Authorization", "")
        user = base64.b64decode(said.removeprefix("Basic ")).decode()
        return web.Response(status=401, text=f"refused {said} ({user})")

    app = web.Application()
    app.router.add_get("/echo", echo)
    with BackgroundServer(app) as url:
        port = url.rsplit(":", 1)[1]
        urls = {
            "token": f"http://{token}@127.0.0.1:{port}/echo",
            "pair": f"http://kpiuser:{password}@127.0.0.1:{port}/echo",
            "token_gone": f"http://{token}@127.0.0.1:{closed}/x?page=1",
            "pair_gone": f"http://kpiuser:{password}@127.0.0.1:{closed}/x",
        }
        (tmp_path / "kpi.yaml").write_text(
            "defaults: {retries: 1}\nsources:\n"
            + "".join(
                f"  - {{name: {name}, type: http_json, url: '{where}', metrics: {{v: value}}}}\n"
                for name, where in urls.items()
            )
        )
        result = run_kpi(tmp_path, "-v", "run")
    shown = result.stdout + result.stderr + store_text(f"sqlite:///{tmp_path / 'kpi.db'}")
    assert result.returncode == 1, result.stderr
    assert f"HTTP 401 from http://127.0.0.1:{port}/echo: unauthorized" in shown
    assert f"cannot reach http://127.0.0.1:{closed}/x: " in shown
    for name in ("token", "pair"):  # the echo came, masked
        assert re.search(rf"failed {name}: .* refused Basic \*\*\*=* \(\*\*\*\)", shown)
    for secret in (token, password, f"{token}:", f"kpiuser:{password}"):
        for form in (secret, base64.b64encode(secret.encode()).decode().rstrip("=")):
            assert form not in shown, form


def test_a_sources_host_for_display_has_no_userinfo() -> None:
    """`Source.host()` (for display) gave the URL's whole netloc, a token in its userinfo
    (`https://TOKEN@host/`) included."""
    from kpi_collector.sources import HTML

    with_token = HTML(name="a", url="https://tok:s3cr3t@example.com:8443/x", metrics={"n": "p"})
    assert with_token.host() == "example.com:8443"
    assert HTML(name="b", url="https://example.com/x", metrics={"n": "p"}).host() == "example.com"
