"""The source contract and the HTTP layer (retries, auth, login forms, errors, the store of a
run) through `http_json` and `html` against a real local server, with the Pipeline API.
`sql`, `python` and `command` have their own tests/test_connectors_<type>.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web

from kpi_collector import Pipeline
from kpi_collector.collect.http import HttpClient, LoginForm, printable, retry_after_seconds
from kpi_collector.config.models import Defaults
from kpi_collector.destinations import Pushgateway, Store
from kpi_collector.errors import HttpError
from kpi_collector.sources import CSS, HTML, HttpJson, JMESPath
from kpi_collector.sources.base import Source
from kpi_collector.sources.homebrew import Homebrew
from tests.conftest import BLOG_LINKS, TOKEN, Waits
from tests.fakes.collect import FAST, run
from tests.test_connectors_python import get_blog_stats

Site = tuple[str, web.Application]


def test_http_json_and_html(site: Site) -> None:
    url, _ = site
    result = run(
        HttpJson(
            name="crm",
            url=f"{url}/stats",
            metrics={
                "paying": "data.customers.paying",
                "items": JMESPath("data.items", count=True),
            },
        ),
        HTML(
            name="blog",
            url=f"{url}/blog",
            metrics={
                "posts": CSS("a.anthrazit", count=True),
                "downloads": CSS("#downloads"),
                "ratio": CSS("span.ratio", attr="data-value"),
                "status": CSS("p.status", map={"GREEN": 2, "AMBER": 1, "RED": 0}),
                "money": CSS("p.money"),
                "big": CSS("p.big"),
            },
        ),
    )
    assert result.errors == {}
    assert result.values == {
        "crm.paying": 42,
        "crm.items": 3,
        "blog.posts": BLOG_LINKS,
        "blog.downloads": 12374,
        "blog.ratio": 59.5,
        "blog.status": 2,
        "blog.money": 1200,
        "blog.big": 3_400_000,
    }


def test_one_failing_source_does_not_stop_the_others(site: Site) -> None:
    url, _ = site
    result = run(
        HTML(name="empty", url=f"{url}/empty", metrics={"posts": CSS("a.anthrazit", count=True)}),
        HttpJson(name="bad", url=f"{url}/malformed", metrics={"v": "value"}),
        HttpJson(name="gone", url=f"{url}/missing", metrics={"v": "value"}),
        HttpJson(name="ok", url=f"{url}/stats", metrics={"paying": "data.customers.paying"}),
    )
    assert result.values == {"ok.paying": 42}
    assert "matched nothing" in result.errors["empty.posts"]
    assert "not valid JSON" in result.errors["bad"]
    assert "HTTP 404" in result.errors["gone"]
    assert result.exit_code == 1


def test_partial_metrics_keep_the_good_ones(site: Site) -> None:
    url, _ = site
    result = run(
        HTML(
            name="blog",
            url=f"{url}/blog",
            metrics={"posts": CSS("a.anthrazit", count=True), "nothing": CSS("#nope")},
        )
    )
    assert result.values == {"blog.posts": BLOG_LINKS}
    assert "matched nothing" in result.errors["blog.nothing"]


def test_500_then_success_is_retried(site: Site) -> None:
    url, app = site
    result = run(HttpJson(name="f", url=f"{url}/flaky", metrics={"v": "value"}))
    assert result.values == {"f.v": 5}
    assert app["hits"]["/flaky"] == 2


def test_429_honours_retry_after(site: Site, waits: Waits) -> None:
    url, app = site
    result = run(HttpJson(name="r", url=f"{url}/ratelimited", metrics={"v": "value"}))
    assert result.values == {"r.v": 9}
    assert app["hits"]["/ratelimited"] == 2
    assert len(waits.asked) == 1 and waits.asked[0] >= 1.0  # waited for Retry-After: 1


def test_long_retry_after_fails_at_once_and_says_when(site: Site, waits: Waits) -> None:
    url, app = site
    result = run(HttpJson(name="r", url=f"{url}/ratelimited-long", metrics={"v": "value"}))
    assert "HTTP 429" in result.errors["r"] and "retry after 60 min" in result.errors["r"]
    assert app["hits"]["/ratelimited-long"] == 1
    assert waits.asked == []


def test_persistent_5xx_gives_up_after_retries(site: Site) -> None:
    url, app = site
    result = run(
        HttpJson(name="d", url=f"{url}/down", metrics={"v": "value"}),
        defaults=Defaults(timeout=2, retries=1),
    )
    assert "HTTP 503" in result.errors["d"]
    assert app["hits"]["/down"] == 2


def test_terminal_errors_are_not_retried(site: Site) -> None:
    url, app = site
    result = run(
        HttpJson(name="a", url=f"{url}/auth/bearer", metrics={"v": "value"}),
        HttpJson(name="m", url=f"{url}/missing", metrics={"v": "value"}),
    )
    assert "HTTP 401" in result.errors["a"] and "credentials" in result.errors["a"]
    assert app["hits"]["/auth/bearer"] == 1 and app["hits"]["/missing"] == 1


def test_timeout(site: Site) -> None:
    url, _ = site
    result = run(
        HttpJson(name="s", url=f"{url}/slow", metrics={"v": "value"}),
        defaults=Defaults(timeout=0.5, retries=0),
    )
    assert "timed out" in result.errors["s"]


def test_connection_refused() -> None:
    result = run(
        HttpJson(name="c", url="http://127.0.0.1:9/x", metrics={"v": "value"}),
        defaults=Defaults(timeout=1, retries=0),
    )
    assert "cannot reach http://127.0.0.1:9/x" in result.errors["c"]


def test_a_host_name_that_does_not_exist_fails_at_once(waits: Waits) -> None:
    """A name no DNS server knows (`.invalid` resolves nowhere, RFC 6761) is a typo in the
    URL: the same answer comes on every retry, so none is spent, and the line says so."""
    result = run(
        HttpJson(name="j", url="http://kpi-nosuch.invalid/api?key=s3cr3t", metrics={"v": "v"}),
        HTML(name="h", url="https://shop.kpi-nosuch.invalid:8443/stats", metrics={"n": "#n"}),
        defaults=Defaults(timeout=5, retries=3),
    )
    assert result.errors == {
        "j": "cannot reach http://kpi-nosuch.invalid/api: no such host kpi-nosuch.invalid (the "
        "name does not resolve); check the host name in the URL",
        "h": "cannot reach https://shop.kpi-nosuch.invalid:8443/stats: no such host "
        "shop.kpi-nosuch.invalid (the name does not resolve); check the host name in the URL",
    }
    assert waits.asked == []
    assert [failure.transient for o in result.outcomes for failure in o.errors] == [False, False]


def test_a_redirect_to_a_host_that_does_not_exist_names_it(waits: Waits) -> None:
    """The name that does not resolve is the redirect's, not the URL's: the line says so."""
    from kpi_collector.demo.server import BackgroundServer

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("http://kpi-nosuch.invalid/api")

    app = web.Application()
    app.router.add_get("/old", moved)
    with BackgroundServer(app) as url:
        result = run(
            HttpJson(name="j", url=f"{url}/old", metrics={"v": "v"}),
            defaults=Defaults(timeout=5, retries=3),
        )
    assert result.errors == {
        "j": f"cannot reach {url}/old: it redirects to kpi-nosuch.invalid, no such host (the "
        "name does not resolve); check the URL"
    }
    assert waits.asked == []


def test_an_unknown_host_written_in_another_script_is_no_redirect(waits: Waits) -> None:
    """A host name with letters outside ASCII is asked for in its IDNA form (`xn--...`),
    which differed from the URL's as written: the line said the URL "redirects to
    xn--bcher-kpi-nosuch-jzb.invalid"; it is the URL's own host, named as written."""
    result = run(
        HTML(name="idn", url="http://Bücher-kpi-nosuch.invalid/x", metrics={"v": "#n"}),
        defaults=Defaults(timeout=5, retries=3),
    )
    assert result.errors == {
        "idn": "cannot reach http://Bücher-kpi-nosuch.invalid/x: no such host "
        "bücher-kpi-nosuch.invalid (the name does not resolve); check the host name in the URL"
    }
    assert waits.asked == []


def test_a_resolver_that_fails_for_now_is_transient() -> None:
    """EAI_AGAIN (the DNS server did not answer in time, the network is not up yet) may be
    gone on the next try, unlike EAI_NONAME; the one a resolver library raises too."""
    import socket

    import aiohttp

    from kpi_collector.collect.http import _connection_error

    class Key:
        host, port, ssl = "api.example.com", 443, True

    url = "https://api.example.com/x"
    again = aiohttp.ClientConnectorDNSError(
        Key(),  # type: ignore[arg-type]
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    )
    gone = aiohttp.ClientConnectorDNSError(
        Key(),  # type: ignore[arg-type]
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    )
    assert _connection_error(url, again, 5).transient
    assert not _connection_error(url, gone, 5).transient
    assert "Temporary failure in name resolution" in str(_connection_error(url, again, 5))


def test_tls_failures_are_terminal_and_say_what_to_fix(site: Site, tmp_path: Path) -> None:
    """A certificate this machine does not trust, or an https URL for a port that speaks
    plain HTTP: the same answer comes on every retry; the error says why and how to fix it
    (`SSL_CERT_FILE` trusts a private CA, and then the page reads)."""
    import ssl

    from kpi_collector.destinations.email.fake import self_signed
    from kpi_collector.sources._fake import BackgroundServer
    from tests.cli import run_kpi, stored_values

    cert, key = self_signed(tmp_path)  # for localhost and 127.0.0.1
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    url, _ = site
    plain_port = url.rsplit(":", 1)[1]
    hits = [0]

    async def page(request: web.Request) -> web.Response:
        hits[0] += 1
        return web.json_response({"value": 7})

    tls_app = web.Application()
    tls_app.router.add_get("/x", page)

    class TlsServer(BackgroundServer):
        async def _start(self) -> None:
            self._runner = web.AppRunner(self.app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

            self.url = f"https://localhost:{self.port}"

    async def fetch(url: str) -> None:
        async with HttpClient(backoff=0.01) as client:
            await client.session(timeout=3, retries=2).get(url)

    with TlsServer(tls_app) as tls_url:
        for target in (f"{tls_url}/x?key=s3cret", f"https://127.0.0.1:{plain_port}/x"):
            with pytest.raises(HttpError) as caught:
                asyncio.run(fetch(target))
            assert not caught.value.transient  # no retry: the same handshake comes again

        async def to_https(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"https://{request.host}/x")

        upgrading = web.Application()
        upgrading.router.add_get("/up", to_https)
        with BackgroundServer(upgrading) as up_url:
            result = run(
                HttpJson(name="tls", url=f"{tls_url}/x?key=s3cret", metrics={"v": "value"}),
                HttpJson(
                    name="plain", url=f"https://127.0.0.1:{plain_port}/x", metrics={"v": "value"}
                ),
                # an http URL the server sends to https on its own plain port: was told "is
                # the URL http://, not https://?", which it is
                HttpJson(name="up", url=f"{up_url}/up", metrics={"v": "value"}),
            )
        assert result.errors == {
            "tls": f"cannot reach {tls_url}/x: the TLS certificate of {tls_url[8:]} is not "
            "valid (self-signed certificate); fix the server's certificate, or trust the CA "
            "that signed it with SSL_CERT_FILE=/path/to/ca.pem",
            "plain": f"cannot reach https://127.0.0.1:{plain_port}/x: 127.0.0.1:{plain_port} "
            "does not answer in TLS (wrong version number); is the URL http://, not https://?",
            "up": f"cannot reach {up_url}/up: it redirects to https://{up_url[7:]}, which does "
            "not answer in TLS (wrong version number); the server's redirect is wrong, or set "
            "the URL to the page meant",
        }
        assert hits == [0]
        (tmp_path / "kpi.yaml").write_text(
            f"sources: [{{name: tls, type: http_json, url: '{tls_url}/x', metrics: {{v: value}}}}]\n"
        )
        ran = run_kpi(tmp_path, "run", env={"SSL_CERT_FILE": str(cert)})
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert stored_values(tmp_path) == {"tls.v": 7.0}


@pytest.mark.parametrize(
    ("path", "auth", "value"),
    [
        ("/auth/bearer", {"bearer": TOKEN}, 1),
        ("/auth/basic", {"basic": ["me", TOKEN]}, 2),
        ("/auth/header", {"header": {"X-Api-Key": TOKEN}}, 3),
        ("/auth/query", {"query": {"key": TOKEN}}, 4),
    ],
)
def test_auth(site: Site, path: str, auth: dict[str, Any], value: int) -> None:
    url, _ = site
    result = run(HttpJson(name="a", url=f"{url}{path}", auth=auth, metrics={"v": "value"}))
    assert result.values == {"a.v": value}


def test_login_form_with_csrf(site: Site) -> None:
    url, _ = site
    login = LoginForm(url=f"{url}/login", fields={"email": "me@example.com", "password": TOKEN})
    result = run(
        HTML(name="pod", url=f"{url}/private", login=login, metrics={"downloads": CSS("#total")})
    )
    assert result.errors == {}
    assert result.values == {"pod.downloads": 1200}


def test_login_refused_says_so_without_the_password(site: Site) -> None:
    url, _ = site
    wrong = "wrong-password-123"
    login = LoginForm(url=f"{url}/login", fields={"email": "me@example.com", "password": wrong})
    result = run(
        HTML(name="pod", url=f"{url}/private", login=login, metrics={"downloads": CSS("#total")})
    )
    assert "login refused" in result.errors["pod"]
    assert wrong not in str(result.errors)


def test_store_records_runs_values_and_errors(site: Site, tmp_path: Path) -> None:
    url, _ = site
    store = Store(f"sqlite:///{tmp_path / 'kpi.db'}")
    sources = (
        HttpJson(name="crm", url=f"{url}/stats", metrics={"paying": "data.customers.paying"}),
        HttpJson(name="gone", url=f"{url}/missing", metrics={"v": "value"}),
    )
    first = Pipeline(sources=sources, destinations=(store,), defaults=FAST).process()
    second = Pipeline(sources=sources, destinations=(store,), defaults=FAST).process()
    assert second.previous == {"crm.paying": 42}
    history = store.open()
    runs = history.runs()
    assert [r.id for r in runs] == [second.run_id, first.run_id]
    assert runs[0].status == "partial" and runs[0].n_values == 1 and runs[0].n_errors == 1
    assert "HTTP 404" in runs[0].errors[0].message and runs[0].errors[0].source == "gone"
    assert history.latest()["crm.paying"].value == 42


def test_to_pandas() -> None:
    frame = run(get_blog_stats).to_pandas()
    assert list(frame.columns) == ["kpi", "value", "previous", "change", "source", "ts"]
    assert dict(zip(frame.kpi, frame.value, strict=True)) == {
        "get_blog_stats.posts": 12,
        "get_blog_stats.authors": 3,
    }


def test_retry_after_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds(" 1.5 ") == 1.5
    assert retry_after_seconds("-5") == 0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == pytest.approx(10)
    for word in ("soon", "inf", "nan", "1_0", "\u0663", "0x1e", "9" * 400, "30s"):
        assert retry_after_seconds(word) is None, word  # Python's float() takes the first six
    # the three HTTP-date forms are UTC (RFC 9110 5.6.7): asctime's names no zone, and was
    # read in the machine's own, 4 h off in New York (a 30 s wait failed at once as 4.0 h)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        for date in (
            "Wed, 21 Oct 2015 07:28:30 GMT",
            "Wednesday, 21-Oct-15 07:28:30 GMT",
            "Wed Oct 21 07:28:30 2015",
        ):
            assert retry_after_seconds(date, now=1445412480) == pytest.approx(30), date
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("header", "links"),
    [
        (
            '<https://api.test/items?page=2&per_page=1>; rel="next", '
            '<https://api.test/items?page=50&per_page=1>; rel="last"',
            {
                "next": "https://api.test/items?page=2&per_page=1",
                "last": "https://api.test/items?page=50&per_page=1",
            },
        ),
        # a comma inside the URL (`fields=id,name`) or a quoted parameter is no separator
        (
            '<https://api.test/items?fields=id,name&page=2>; rel="next", '
            '<https://api.test/items?fields=id,name&page=9>; title="last, at 9"; rel="last"',
            {
                "next": "https://api.test/items?fields=id,name&page=2",
                "last": "https://api.test/items?fields=id,name&page=9",
            },
        ),
        # several relation types in one rel, any case (RFC 8288 3.3), unquoted
        (
            '<https://api.test/p/3>; rel="Next last", <https://api.test/p/1>;rel=prev',
            {
                "next": "https://api.test/p/3",
                "last": "https://api.test/p/3",
                "prev": "https://api.test/p/1",
            },
        ),
    ],
)
def test_link_headers_are_read_as_rfc_8288_writes_them(header: str, links: dict[str, str]) -> None:
    """A page count read from a `Link` header cut at a comma inside a URL pointed `next` at
    `name&page=2`: the list stopped after its first page, and its length was wrong."""
    from kpi_collector.demo.server import BackgroundServer

    app = web.Application()

    async def listing(request: web.Request) -> web.Response:
        return web.json_response([1], headers={"Link": header})

    async def fetch(url: str) -> dict[str, str]:
        async with HttpClient() as client:
            return (await client.session(timeout=3, retries=0).get(url)).links

    app.router.add_get("/items", listing)
    with BackgroundServer(app) as url:
        assert asyncio.run(fetch(f"{url}/items")) == links


def test_a_credential_with_a_trailing_newline_is_sent_trimmed(site: Site) -> None:
    """A token pasted with its line end (a CI secret set from `echo`, a file read whole):
    a header value has no surrounding whitespace (RFC 9110 5.5), so it goes trimmed; a
    line break inside a value is an error naming the header, never aiohttp's ValueError
    ("Potential header injection attack") nor the value."""
    url, _ = site
    result = run(
        HttpJson(
            name="b",
            url=f"{url}/auth/bearer",
            auth={"bearer": f"{TOKEN}\n"},
            metrics={"v": "value"},
        ),
        HttpJson(
            name="h",
            url=f"{url}/auth/header",
            auth={"header": {"X-Api-Key": f" {TOKEN}\r\n"}},
            metrics={"v": "value"},
        ),
        HttpJson(
            name="q",
            url=f"{url}/auth/query",
            auth={"query": {"key": f"{TOKEN}\n"}},
            metrics={"v": "value"},
        ),
        HttpJson(
            name="inside",
            url=f"{url}/auth/header",
            headers={"X-Api-Key": f"{TOKEN}\nX-Admin: 1"},
            metrics={"v": "value"},
        ),
    )
    assert result.values == {"b.v": 1, "h.v": 3, "q.v": 4}
    assert result.errors == {
        "inside": f"the header X-Api-Key for {url}/auth/header holds a line break or another "
        "control character inside its value; a header value is one line: check it (and the "
        "variable it comes from)"
    }


def test_a_url_that_is_no_url_is_an_error_not_a_bug() -> None:
    """A URL a server hands on (a `next` link, a `Link` header's) may be broken: aiohttp
    raised a bare ValueError ("Invalid IPv6 URL"), reported as a bug in the source."""
    from kpi_collector.errors import HttpError

    async def fetch(url: str) -> None:
        async with HttpClient() as client:
            await client.session(retries=2).get(url)

    for url, why in (
        ("http://[::1/items?key=s3cr3t-in-link", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999/items", "Port out of range 0-65535"),
    ):
        with pytest.raises(HttpError) as caught:
            asyncio.run(fetch(url))
        assert str(caught.value) == f"{url.split('?')[0]} is no valid URL ({why}); check the URL"
        assert not caught.value.transient


def test_a_header_name_that_is_no_token_is_an_error_naming_it(site: Site) -> None:
    """`X-Api-Key:` pasted from curl's `-H` went as `X-Api-Key:: <token>` (the server read the
    value `: <token>` and answered 401, "credentials wrong"); `X Api Key` as a line no
    server reads; a name with a line break failed with aiohttp's ValueError. Each is an
    error naming the header (never its value), and nothing is sent."""
    url, _ = site
    names = {"colon": "X-Api-Key:", "space": "X Api Key", "break": "X-Api\nKey", "empty": ""}
    result = run(
        *(
            HttpJson(
                name=name,
                url=f"{url}/auth/header",
                auth={"header": {header: TOKEN}},
                metrics={"v": "value"},
            )
            for name, header in names.items()
        ),
        HttpJson(
            name="ok",
            url=f"{url}/auth/header",
            auth={"header": {"X-Api-Key": TOKEN}},
            metrics={"v": "value"},
        ),
    )
    assert result.values == {"ok.v": 3}
    assert result.errors == {
        name: f"{header!r} is no header name (for {url}/auth/header): a name is letters, "
        "digits and !#$%&'*+-.^_`|~, without the colon and the value; check `headers:`"
        for name, header in names.items()
    }


def test_a_trimmed_credential_echoed_back_stays_hidden() -> None:
    """The token goes without its line end; a server that echoes what it got (a 401 quoting
    the header, a form quoting the user) shows that trimmed value, which is masked too."""
    from kpi_collector.demo.server import BackgroundServer

    async def echo(request: web.Request) -> web.Response:
        said = request.headers.get("Authorization") or request.headers.get("X-Key") or ""
        return web.json_response({"message": f"bad credentials: {said.split()[-1]}"}, status=401)

    app = web.Application()
    app.router.add_get("/x", echo)
    token, key = "9f8e7d6c5b4a-bearer-echo", "1a2b3c4d5e6f-header-echo"
    with BackgroundServer(app) as url:
        result = run(
            HttpJson(name="b", url=f"{url}/x", auth={"bearer": f"{token}\n"}, metrics={"v": "v"}),
            HttpJson(name="h", url=f"{url}/x", headers={"X-Key": f"{key}\r\n"}, metrics={"v": "v"}),
        )
    assert result.errors == {
        name: f"HTTP 401 from {url}/x: unauthorized: the credentials are missing or wrong — "
        '{"message": "bad credentials: ***"}'
        for name in ("b", "h")
    }


def test_a_page_that_sets_a_cookie_and_redirects_to_itself_is_read(tmp_path: Path) -> None:
    """A session check or cookie wall: the first answer sets a cookie and sends back to the
    same URL, which a browser then loads; without a cookie jar the redirect went round in a
    circle ('redirect loop'). A loop that sets no cookie stays an error."""
    from kpi_collector.demo.server import BackgroundServer

    async def walled(request: web.Request) -> web.Response:
        if request.cookies.get("visited") != "1":
            response = web.HTTPFound(str(request.rel_url))
            response.set_cookie("visited", "1", path="/")
            raise response
        return web.Response(text="<p id=n>2,048</p>", content_type="text/html")

    async def circle(request: web.Request) -> web.Response:
        raise web.HTTPFound("/circle")

    app = web.Application()
    app.router.add_get("/stats", walled)
    app.router.add_get("/circle", circle)
    with BackgroundServer(app) as url:
        result = run(
            HTML(name="walled", url=f"{url}/stats?from=kpi", metrics={"n": "#n"}),
            HTML(name="circle", url=f"{url}/circle", metrics={"n": "#n"}),
        )
    assert result.values == {"walled.n": 2048}
    assert list(result.errors) == ["circle"]
    assert result.errors["circle"].startswith(
        f"redirect loop: {url}/circle was redirected 10 times"
    )


#: (status, Content-Type, the text, its encoding): error answers that are not HTML, in the
#: charset their header declares, as old Java servers and Japanese services answer
_LEGACY_ERRORS = {
    "latin1": (
        403,
        "text/plain; charset=ISO-8859-1",
        "Zugriff verweigert: Schlüssel ungültig",
        "latin-1",
    ),
    "cp1252": (
        503,
        "text/plain; charset=windows-1252",
        "Wartung bis 18 Uhr – 5 € Gutschrift",
        "cp1252",
    ),
    "sjis": (
        503,
        "text/plain; charset=Shift_JIS",
        "メンテナンス中です。しばらくお待ちください",
        "shift_jis",
    ),
    "json": (400, "application/json; charset=iso-8859-1", '{"message": "Clé invalide"}', "latin-1"),
    "quoted": (404, 'text/plain; charset="EUC-JP"', "ページが見つかりません", "euc_jp"),
    "notjson": (200, "text/plain; charset=Shift_JIS", "ただいま混雑しています", "shift_jis"),
}


def test_an_error_answer_that_is_not_html_is_read_in_its_declared_charset() -> None:
    """A 4xx/5xx answer in plain text or JSON, in the charset its `Content-Type` names: the
    one-line error shows its text as written (it was read as UTF-8: `Schl�ssel`, or
    Shift_JIS called binary data)."""
    from kpi_collector.demo.server import BackgroundServer

    async def answer(request: web.Request) -> web.Response:
        status, content_type, text, codec = _LEGACY_ERRORS[request.match_info["case"]]
        return web.Response(
            status=status, body=text.encode(codec), headers={"Content-Type": content_type}
        )

    app = web.Application()
    app.router.add_get("/{case}", answer)
    with BackgroundServer(app) as url:
        result = run(
            *(
                HttpJson(name=case, url=f"{url}/{case}", metrics={"v": "v"})
                for case in _LEGACY_ERRORS
            ),
            defaults=Defaults(timeout=2, retries=0),
        )
    assert result.errors == {
        "latin1": f"HTTP 403 from {url}/latin1: forbidden — Zugriff verweigert: Schlüssel ungültig",
        "cp1252": f"HTTP 503 from {url}/cp1252: server error — Wartung bis 18 Uhr – 5 € Gutschrift",
        "sjis": f"HTTP 503 from {url}/sjis: server error — メンテナンス中です。しばらくお待ちください",
        "json": f'HTTP 400 from {url}/json: request refused — {{"message": "Clé invalide"}}',
        "quoted": f"HTTP 404 from {url}/quoted: not found: check the URL or the name in the "
        "config — ページが見つかりません",
        "notjson": f"the answer from {url}/notjson is not valid JSON (Expecting value: line 1 "
        "column 1 (char 0)): ただいま混雑しています",
    }


def test_credentials_do_not_follow_a_redirect_to_another_host() -> None:
    from kpi_collector.demo.server import BackgroundServer

    seen: dict[str, str | None] = {}
    other = web.Application()

    async def record(request: web.Request) -> web.Response:
        seen["authorization"] = request.headers.get("Authorization")
        seen["query"] = request.query_string
        return web.json_response({"v": 1})

    other.router.add_get("/x", record)
    with BackgroundServer(other) as other_url:
        first = web.Application()

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"{other_url}/x")

        first.router.add_get("/r", redirect)
        with BackgroundServer(first) as url:
            result = run(
                HttpJson(name="b", url=f"{url}/r", auth={"bearer": TOKEN}, metrics={"v": "v"}),
                HttpJson(
                    name="q", url=f"{url}/r", auth={"query": {"key": TOKEN}}, metrics={"v": "v"}
                ),
            )
    assert result.values == {"b.v": 1, "q.v": 1}
    assert seen == {"authorization": None, "query": ""}


def test_a_refusal_after_a_redirect_to_another_origin_says_the_credentials_stayed() -> None:
    """The configured URL redirects to another origin (http to https, a new domain): the
    credentials stay behind, so the 401 there is not about a wrong token; the error says
    where the answer came from and which URL to configure."""
    from kpi_collector.demo.server import BackgroundServer

    async def guarded(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"message": "Requires authentication"}, status=401)
        return web.json_response({"v": 1})

    other = web.Application()
    other.router.add_get("/api/x", guarded)
    with BackgroundServer(other) as other_url:
        moved = other_url.replace("127.0.0.1", "localhost")
        first = web.Application()

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPMovedPermanently(f"{moved}/api/x?page=1")

        first.router.add_get("/x", redirect)
        with BackgroundServer(first) as url:
            in_url = url.replace("http://", "http://kpiuser:url-pw-31@")
            result = run(
                HttpJson(name="b", url=f"{url}/x", auth={"bearer": TOKEN}, metrics={"v": "v"}),
                HttpJson(
                    name="direct", url=f"{moved}/api/x", auth={"bearer": TOKEN}, metrics={"v": "v"}
                ),
                # credentials in the URL's userinfo stay behind too (was: "unauthorized: the
                # credentials are missing or wrong")
                HttpJson(name="u", url=f"{in_url}/x", metrics={"v": "v"}),
            )
    assert result.values == {"direct.v": 1}
    assert result.errors == {
        name: f"HTTP 401 from {moved}/api/x: unauthorized, after a redirect from {url}/x to "
        "another origin, where the configured credentials are not sent; if they are meant "
        f'for it, set the URL to {moved}/api/x — {{"message": "Requires authentication"}}'
        for name in ("b", "u")
    }


def test_credentials_do_not_follow_a_meta_refresh_to_another_host() -> None:
    """A page that sends on with `<meta http-equiv=refresh>` to another host: a browser
    goes there without the source's headers; the configured bearer token, API-key header
    and query key stay with the configured URL's origin (a refresh back to it keeps them)."""
    from kpi_collector.demo.server import BackgroundServer

    seen: list[tuple[str, str | None, str | None, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(
            (
                f"{request.host.split(':')[0]}{request.path}",
                request.headers.get("Authorization"),
                request.headers.get("X-Api-Key"),
                request.query_string,
            )
        )
        if request.path == "/back":
            return web.Response(text="<p id=n>2,048</p>", content_type="text/html")
        return web.Response(
            text=f"<meta http-equiv=refresh content='0;url={nexts[request.app['name']]}'>",
            content_type="text/html",
        )

    other, first = web.Application(), web.Application()
    other["name"], first["name"] = "other", "first"
    nexts: dict[str, str] = {}
    other.router.add_get("/x", record)
    first.router.add_get("/start", record)
    first.router.add_get("/back", record)
    with BackgroundServer(other) as other_url, BackgroundServer(first) as url:
        other_url = other_url.replace("127.0.0.1", "localhost")
        nexts.update(first=f"{other_url}/x", other=f"{url}/back")
        result = run(
            *(
                HTML(name=name, url=f"{url}/start", auth=auth, headers=headers, metrics={"n": "#n"})
                for name, auth, headers in [
                    ("b", {"bearer": TOKEN}, {}),
                    ("h", None, {"X-Api-Key": TOKEN}),
                    ("q", {"query": {"key": TOKEN}}, {}),
                ]
            )
        )
    assert result.values == {"b.n": 2048, "h.n": 2048, "q.n": 2048}
    assert [hop for hop in seen if hop[0] == "localhost/x"] == [("localhost/x", None, None, "")] * 3
    back = {hop[1:] for hop in seen if hop[0] == "127.0.0.1/back"}
    assert back == {(f"Bearer {TOKEN}", None, ""), (None, TOKEN, ""), (None, None, f"key={TOKEN}")}


def test_login_form_options(site: Site) -> None:
    url, _ = site
    good = {"email": "me@example.com", "password": TOKEN}
    bad = {"email": "me@example.com", "password": "nope-nope"}
    result = run(
        HTML(
            name="ok",
            url=f"{url}/private",
            metrics={"d": CSS("#total")},
            login=LoginForm(url=f"{url}/login", fields=good, form="form", success="#total"),
        ),
        HTML(
            name="refused",
            url=f"{url}/private",
            metrics={"d": CSS("#total")},
            login=LoginForm(url=f"{url}/login", fields=bad, failure="p"),
        ),
        HTML(
            name="noform",
            url=f"{url}/private",
            metrics={"d": CSS("#total")},
            login=LoginForm(url=f"{url}/blog", fields=good),
        ),
        HTML(
            name="wrongform",
            url=f"{url}/private",
            metrics={"d": CSS("#total")},
            login=LoginForm(url=f"{url}/login", fields=good, form="form#signin"),
        ),
    )
    assert result.values == {"ok.d": 1200}
    assert "login refused" in result.errors["refused"]
    assert "no form found" in result.errors["noform"]
    assert "no form matches 'form#signin'" in result.errors["wrongform"]


def test_non_finite_values_are_errors_and_the_rest_is_stored(tmp_path: Path) -> None:
    def odd() -> dict[str, float]:
        return {"ok": 1.0, "nan": float("nan"), "inf": float("inf")}

    store = Store(f"sqlite:///{tmp_path / 'kpi.db'}")
    result = Pipeline(sources=(odd,), destinations=(store,), defaults=FAST).process()
    assert result.values == {"odd.ok": 1.0}
    assert "not a finite number" in result.errors["odd.nan"]
    assert "not a finite number" in result.errors["odd.inf"]
    [record] = store.open().runs()
    assert record.status == "partial" and record.n_values == 1


def revenue() -> dict[str, float]:
    return {"mrr": 1000.0, "churned": 0.0}


def test_derived_kpis_in_a_run() -> None:
    kpis = {
        "revenue.arr": {"formula": "revenue.mrr * 12"},
        "revenue.ratio": {"formula": "revenue.mrr / revenue.churned"},
        "revenue.double_ratio": {"formula": "revenue.ratio * 2"},
        "revenue.per_post": {"formula": "revenue.mrr / get_blog_stats.posts"},
    }
    full = run(revenue, get_blog_stats, kpis=kpis)
    assert full.values["revenue.arr"] == 12000 and full.values["revenue.per_post"] == 1000 / 12
    assert "division by zero" in full.errors["revenue.ratio"]
    assert "revenue.ratio failed" in full.errors["revenue.double_ratio"]
    partial = Pipeline(sources=(revenue, get_blog_stats), kpis=kpis, defaults=FAST).process(
        only=["revenue"]
    )
    assert partial.values["revenue.arr"] == 12000
    assert "revenue.per_post" not in partial.values and "revenue.per_post" not in partial.errors


def test_a_formula_over_sources_collected_at_different_times(tmp_path: Path) -> None:
    """A source with its own `schedule` is collected in its own job, the others in the main
    job (both runs of some sources, like `--only`): a formula over KPIs of both was computed
    in neither, never. It now takes the newest stored value of an input that its run did not
    collect, and is computed in each run that collected one of its inputs."""
    kpis = {
        "revenue.per_post": {"formula": "revenue.mrr / get_blog_stats.posts"},
        "revenue.per_post_pct": {"formula": "revenue.per_post * 100"},
        "get_blog_stats.per_author": {"formula": "get_blog_stats.posts / get_blog_stats.authors"},
    }
    store = Store(f"sqlite:///{tmp_path / 'kpi.db'}")
    pipeline = Pipeline(
        sources=(revenue, get_blog_stats), destinations=(store,), kpis=kpis, defaults=FAST
    )
    first = pipeline.process(only=["revenue"])  # nothing stored for the blog yet
    assert "revenue.per_post" not in first.values and "revenue.per_post" not in first.errors
    blog = pipeline.process(only=["get_blog_stats"])  # the blog's own job: mrr is stored
    assert blog.values["revenue.per_post"] == 1000 / 12
    assert blog.values["get_blog_stats.per_author"] == 4
    assert blog.errors == {}
    main = pipeline.process(only=["revenue"])  # the main job: posts is stored
    assert main.values["revenue.per_post"] == 1000 / 12
    assert main.values["revenue.per_post_pct"] == pytest.approx(100_000 / 12)
    # only this run's own inputs and what it computed are stored with it
    assert "get_blog_stats.posts" not in main.values
    assert "get_blog_stats.per_author" not in main.values
    history = store.open().rows(["revenue.per_post"])
    assert [value for _, _, value in history] == [1000 / 12, 1000 / 12]
    # a disabled source's stored values are not an input: as in a full run, no value
    blog_source = next(s for s in pipeline.sources if s.name == "get_blog_stats")
    blog_source.enabled = False
    without = pipeline.process(only=["revenue"])
    assert "revenue.per_post" not in without.values


def huge() -> dict[str, float]:
    return {"x": 1e308, "y": 2.0}


def test_a_formula_that_overflows_fails_its_kpi_not_the_run(tmp_path: Path) -> None:
    """issue 21: round(1e308 * 10) raises OverflowError inside the formula; that KPI and the
    one built on it fail with a message, everything else of the run is computed and stored."""
    kpis = {
        "huge.big": {"formula": "round(huge.x * 10)"},
        "huge.after": {"formula": "huge.big + 1"},
        "huge.half": {"formula": "huge.x / 2"},
    }
    store = Store(f"sqlite:///{tmp_path / 'kpi.db'}")
    result = Pipeline(sources=(huge,), destinations=(store,), kpis=kpis, defaults=FAST).process()
    assert result.values == {"huge.x": 1e308, "huge.y": 2.0, "huge.half": 5e307}
    assert result.errors == {
        "huge.big": "huge.big: formula 'round(huge.x * 10)': the result is too large",
        "huge.after": "huge.after: formula 'huge.big + 1': its input huge.big failed",
    }
    assert result.exit_code == 1
    [record] = store.open().runs()
    assert (record.status, record.n_values) == ("partial", 3)


def test_process_inside_a_running_event_loop(site: Site, tmp_path: Path) -> None:
    """A Jupyter cell or an async web handler calls `process()` with a loop running: the run
    gets its own loop on a worker thread; `await aprocess()` works there too."""
    import asyncio

    url, _ = site
    store = Store(f"sqlite:///{tmp_path / 'kpi.db'}")
    sources = (
        HttpJson(name="crm", url=f"{url}/stats", metrics={"paying": "data.customers.paying"}),
    )

    async def notebook_cell() -> tuple[Any, Any, bool]:
        running = asyncio.get_running_loop().is_running()
        blocking = Pipeline(sources=sources, destinations=(store,), defaults=FAST).process()
        awaited = await Pipeline(sources=sources, destinations=(store,), defaults=FAST).aprocess()
        return blocking, awaited, running

    blocking, awaited, running = asyncio.run(notebook_cell())
    assert running
    assert blocking.values == {"crm.paying": 42} and not blocking.errors
    assert awaited.values == {"crm.paying": 42} and awaited.previous == {"crm.paying": 42}
    assert [r.id for r in store.open().runs()] == [awaited.run_id, blocking.run_id]


@pytest.mark.parametrize(
    "make",
    [
        lambda url: HTML(name="a", url=url, metrics={"n": CSS("p")}),
        lambda url: Homebrew(formula="wget", api_url=url),
        lambda url: Pushgateway(url=url),
    ],
    ids=["html url", "service api_url", "pushgateway url"],
)
def test_a_url_that_is_not_http_is_refused_where_it_is_written(make: Any) -> None:
    """Sources, service sources and destinations share one check (collect.http.check_http_url)."""
    from pydantic import ValidationError

    for url in ("ftp://example.com/stats", "example.com/stats", "http://"):
        with pytest.raises(ValidationError, match=r"is not an http\(s\) URL"):
            make(url)
    assert make("https://example.com/stats") is not None


def test_a_service_api_url_loses_its_trailing_slash() -> None:
    assert (
        Homebrew(formula="wget", api_url="https://brew.example/").api_url == "https://brew.example"
    )


class _RawSource(Source):
    """A third-party source as a plugin writes one: `collect` returns what it has, unchecked."""

    type: ClassVar[str] = "raw_test"
    got: dict[str, Any]

    async def collect(self, ctx: Any) -> dict[str, Any]:
        return dict(self.got)


def test_metric_names_with_control_characters_are_errors(tmp_path: Path) -> None:
    """A function's (or a plugin's) metric named "multi\\nline" or "a\\x1b[31mred" became a KPI
    id that broke every table it was shown in (the row split over two lines, a terminal
    escape in the history table and in the CSV header). Its value is not stored; the error
    names it with the characters written out, and the other metrics are stored."""

    def names() -> dict[str, float]:
        return {"ok": 1.0, "multi\nline": 2.0, "tab\there": 3.0, "a\x1b[31mred": 4.0}

    store = Store(f"sqlite:///{tmp_path / 'kpi.db'}")
    raw = _RawSource(name="plugin", got={"fine": 5, "cr\rhere": 6})
    result = Pipeline(sources=(names, raw), destinations=(store,), defaults=FAST).process()
    assert result.values == {"names.ok": 1.0, "plugin.fine": 5.0}
    assert set(result.errors) == {
        "names.multiline",
        "names.tabhere",
        "names.a[31mred",
        "plugin.crhere",
    }
    message = result.errors["names.multiline"]
    assert "multi\\nline'" in message and "control character" in message
    assert all(printable(m) == m and "\n" not in m for m in result.errors.values())
    assert {kpi for kpi, _ in store.open().series(None).items()} == {"names.ok", "plugin.fine"}


def test_a_plugin_s_integer_a_stored_number_cannot_hold_exactly_is_an_error() -> None:
    """A plugin returning the int 12345678901234567890 had it stored as 12345678901234567168
    (the `python` source checks its function's numbers; a plugin's went straight to float)."""
    got = {"huge": 12345678901234567890, "past": 10**400, "n": 2**53}
    result = run(_RawSource(name="plugin", got=got))
    assert result.values == {"plugin.n": 2.0**53}
    assert "cannot be stored exactly" in result.errors["plugin.huge"]
    # past any double: that metric's error too, not an OverflowError failing the source
    assert "a 401-digit number cannot be stored exactly" in result.errors["plugin.past"]


def test_a_change_is_the_difference_of_the_numbers_as_written() -> None:
    """`kpi run --format json` gave 0.3 after 0.1 a "change" of 0.19999999999999998 (the
    binary floats' difference); the change is 0.2, as the two numbers are written."""
    from datetime import UTC, datetime

    from kpi_collector.run.result import RunResult

    now = datetime(2026, 12, 1, tzinfo=UTC)
    values = {"a.ratio": 0.3, "a.stars": 1647.0, "a.big": 1e21, "a.new": 5.0, "a.tiny": 1e-300}
    previous = {"a.ratio": 0.1, "a.stars": 1620.0, "a.big": 1e21 - 2**20, "a.tiny": 3e-300}
    result = RunResult(1, now, now, values=values, previous=previous)
    assert result.change("a.ratio") == 0.2
    assert result.change("a.stars") == 27.0
    # 1e21 - 2**20 is written 9.99999999999999e+20 (its shortest form, in CSV and JSON too)
    assert repr(previous["a.big"]) == "9.99999999999999e+20"
    assert result.change("a.big") == 1e6
    assert result.change("a.new") is None
    assert result.change("a.tiny") == -2e-300
    assert {v["kpi"]: v["change"] for v in result.to_dict()["values"]}["a.ratio"] == 0.2


def test_a_json_number_no_double_holds_is_an_error_never_0() -> None:
    """`{"rate": 1e-400}` was stored as 0 (Python's reader rounds it to 0.0, and 1e400 to
    infinity). A number that no double holds is now the metric's error saying why; zeros
    written as zeros (0.0, 0e5) and ordinary numbers read as before."""
    from kpi_collector.demo.server import BackgroundServer

    body = (
        b'{"tiny": 1e-400, "negative": -2.5E-999, "huge": 1e400,'
        b' "zero": 0.0, "zeroexp": 0e5, "fine": 1.5e-3}'
    )

    async def answer(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/rates", answer)
    with BackgroundServer(app) as url:
        result = run(
            HttpJson(
                name="api",
                url=f"{url}/rates",
                metrics={k: k for k in ("tiny", "negative", "huge", "zero", "zeroexp", "fine")},
            )
        )
    assert result.values == {"api.zero": 0.0, "api.zeroexp": 0.0, "api.fine": 0.0015}
    assert "too small to store" in result.errors["api.tiny"]
    assert "too small to store" in result.errors["api.negative"]
    assert "cannot be stored exactly" in result.errors["api.huge"]


def test_numbers_of_more_digits_than_python_writes_are_the_metric_s_error() -> None:
    """Python reads and writes no int of more than 4300 digits as text: a function's
    Decimal or Fraction of 5001 digits raised a bare ValueError (`Exceeds the limit (4300
    digits) ...`), and a text of them said to call `sys.set_int_max_str_digits()`. Each is
    an error saying no stored number holds it; zeros before the digits are no digits."""
    from decimal import Decimal
    from fractions import Fraction

    from kpi_collector.collect.extract import Metric, finish_plain
    from kpi_collector.errors import ExtractError

    metric = Metric(query="SELECT x")
    for raw in (
        Decimal("1" + "0" * 5000),
        Fraction(10**5001, 10),
        10**5000,
        "1" + "0" * 5000,
        "-1" + "0" * 5000,
    ):
        with pytest.raises(ExtractError, match="a 5001-digit number cannot be stored exactly"):
            finish_plain("n", raw, metric)
    assert finish_plain("n", "0" * 5000 + "12", metric) == 12


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        # a signed URL's escapes go as written: yarl decoded %7E to ~, %2F in the query
        # to /, %41 to A and upper-cased escapes, and the signature no longer matched
        ("/signed/%7Euser/data?sig=abc%2B%2F%3D&exp=1%7E2", None),
        ("/signed/a%41b?p=%2f%e2%82%ac", None),
        ("/signed/x?a=1&b=2+3&c=%20", None),
        # what may not go on the wire as written is encoded, as a browser encodes it
        ("/signed/ü?q=ü&r='x'", "/signed/%C3%BC?q=%C3%BC&r='x'"),
        ("/signed/100%?q=50%", "/signed/100%25?q=50%25"),
    ],
)
def test_a_url_is_sent_with_its_escapes_as_written(written: str, sent: str | None) -> None:
    """The request line carries the URL's path and query byte for byte, as a browser sends
    them; query parameters the config adds (`params:`, `auth: {query: ...}`) come after."""
    from kpi_collector.demo.server import BackgroundServer

    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"value": 1})

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    with BackgroundServer(app) as url:
        result = run(
            HttpJson(name="s", url=f"{url}{written}", metrics={"v": "value"}),
            HttpJson(
                name="q",
                url=f"{url}{written}",
                auth={"query": {"key": "k%7E"}},
                metrics={"v": "value"},
            ),
        )
    assert result.errors == {} and result.values == {"s.v": 1, "q.v": 1}
    expected = sent or written
    join = "&" if "?" in expected else "?"
    assert sorted(seen) == sorted([expected, f"{expected}{join}key=k%257E"])


@pytest.mark.parametrize(
    ("location", "sent"),
    [
        # a signed URL a server redirects to (a release asset to its storage): its escapes
        # went requoted (%7E as ~, a query's %2F as /), its signature no longer matching
        ("/signed/%7Eblob?sig=abc%2B%2F%3D&e=1%7E", None),
        ("/signed/blob?sig=%2f%e2%82%ac", None),
        # what a Location may not hold on the wire is encoded, as a browser encodes it
        ("/signed/a b?q=ü", "/signed/a%20b?q=%C3%BC"),
    ],
)
def test_a_redirect_is_followed_with_its_escapes_as_written(
    location: str, sent: str | None
) -> None:
    from kpi_collector.demo.server import BackgroundServer

    seen: list[str] = []

    async def start(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": location})

    async def target(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"value": 1})

    app = web.Application()
    app.router.add_get("/start", start)
    app.router.add_get("/signed/{tail:.*}", target)
    with BackgroundServer(app) as url:
        result = run(HttpJson(name="s", url=f"{url}/start", metrics={"v": "value"}))
    assert result.errors == {} and result.values == {"s.v": 1}
    assert seen == [sent or location]
