"""Every source is bounded in memory and time (issue 12 §1): hostile local servers, programs
and patterns, each with healthy sources beside it that must still be stored."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from kpi_collector import Pipeline
from kpi_collector.collect.extract import Metric, backtracking_combinators
from kpi_collector.collect.http import Response
from kpi_collector.collect.offload import run_off_loop
from kpi_collector.collect.patterns import unicode_classes
from kpi_collector.config.models import Defaults
from kpi_collector.demo.server import BackgroundServer
from kpi_collector.errors import ExtractError
from kpi_collector.sources import HTML, Command, HttpJson
from kpi_collector.sources._service import _short, service_message

MiB = 1024 * 1024
CHUNK = b"x" * 65536
LATIN1_PAGE = "<html><body><p id=n>12\xa0374 téléchargements</p></body></html>".encode("latin-1")


@functools.cache
def _gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed (about 1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MiB)
    parts = [packer.compress(block) for _ in range(size // MiB)]
    return b"".join([*parts, packer.flush()])


def hostile_app() -> web.Application:
    app = web.Application()

    async def healthy(request: web.Request) -> web.Response:
        return web.json_response({"value": 7})

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<p id=n>1,234 stars</p>", content_type="text/html")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        for _ in range(32 * 1024):  # 2 GiB at most; the client hangs up long before
            try:
                await response.write(CHUNK)
            except (ConnectionError, RuntimeError):
                break
        return response

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(600):  # a minute at most
            try:
                await response.write(b" ")
            except (ConnectionError, RuntimeError):
                break
            await asyncio.sleep(0.1)
        return response

    async def stall(request: web.Request) -> web.StreamResponse:
        # 12 of the 100 bytes it announces (or, with `?silent`, not even its head), then
        # nothing, for 5 s at most: the client gives up long before
        async def until_gone() -> None:
            for _ in range(50):
                if request.transport is None or request.transport.is_closing():
                    return
                await asyncio.sleep(0.1)

        if "silent" in request.query:
            await until_gone()
            return web.Response(text="{}")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 100
        await response.prepare(request)
        await response.write(b'{"value": 12')
        await until_gone()
        return response

    async def declared_gigabyte(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.content_length = 1024 * MiB
        await response.prepare(request)
        with_room = min(16, 1024)
        for _ in range(with_room):
            try:
                await response.write(CHUNK)
            except (ConnectionError, RuntimeError):
                break
        return response

    async def gzip_bomb(request: web.Request) -> web.Response:
        status = int(request.query.get("status", "200"))
        return web.Response(
            body=_gzip_bomb(200 * MiB),
            status=status,
            headers={"Content-Type": "text/html", "Content-Encoding": "gzip"},
        )

    async def binary_error(request: web.Request) -> web.Response:
        return web.Response(body=bytes(50) + b"\x1b[31m\xff\xfe" * 20, status=500)

    async def latin1(request: web.Request) -> web.Response:
        return web.Response(
            body=LATIN1_PAGE, headers={"Content-Type": "text/html; charset=iso-8859-1"}
        )

    async def latin1_meta(request: web.Request) -> web.Response:
        body = (
            b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
        )
        return web.Response(body=body + LATIN1_PAGE, headers={"Content-Type": "text/html"})

    async def utf16_bom(request: web.Request) -> web.Response:
        text = "<p id=n>12\u202f374 téléchargements</p>"
        return web.Response(
            body="\ufeff".encode("utf-16-le") + text.encode("utf-16-le"),
            headers={"Content-Type": "text/html; charset=iso-8859-1"},  # the BOM wins
        )

    async def broken_utf8(request: web.Request) -> web.Response:
        # a euro sign (E2 82 AC) cut by a NUL, which the parser drops: a browser shows two
        # U+FFFD; the bytes glued back together would read as one euro sign
        return web.Response(
            body=b"<html><body><p id=n>1\xe2\x82\x00\xac2</p></body></html>",
            headers={"Content-Type": "text/html; charset=utf-8"},
        )

    async def large(request: web.Request) -> web.Response:
        filler = "<p class=f>" + "filler text " * 40 + "</p>"
        text = "<html><body>" + filler * 1000 + "<p id=n>98,765 users</p></body></html>"
        return web.Response(text=text, content_type="text/html")

    async def a_run(request: web.Request) -> web.Response:
        return web.Response(text="<p id=n>" + "a" * 32 + "</p>", content_type="text/html")

    async def loop(request: web.Request) -> web.Response:
        target = "/loop-b" if request.path == "/loop-a" else "/loop-a"
        raise web.HTTPFound(target)

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/hop/{int(request.match_info['n']) + 1}")

    async def deep_json(request: web.Request) -> web.Response:
        return web.Response(text="[" * 100_000 + "]" * 100_000, content_type="application/json")

    async def retry_after(request: web.Request) -> web.Response:
        status = int(request.query.get("status", "429"))
        headers = {"Retry-After": request.query["after"]}
        return web.Response(status=status, text="slow down", headers=headers)

    async def nested(request: web.Request) -> web.Response:
        depth = 1000
        text = "<div>" * depth + "<p>1</p>" + "</div>" * depth
        return web.Response(text=text, content_type="text/html")

    async def to_ftp(request: web.Request) -> web.Response:
        raise web.HTTPFound("ftp://files.example/stats.txt")

    async def to_odd(request: web.Request) -> web.Response:
        # a Location 5 KB long with a key in its query, one with no valid port, one that
        # is no hierarchical URL, and one a `300` leaves as it is
        targets = {
            "long": "ftp://files.example/" + "a" * 5000 + "?key=s3cr3t-in-location",
            "port": "http://127.0.0.1:99999/stats",
            "script": "javascript:alert(1)",
        }
        how = request.match_info["how"]
        if how == "choices":
            target, status = "/" + "b" * 5000 + "?key=s3cr3t-in-location", 300
        else:
            target, status = targets[how], 302
        # as written: aiohttp's own HTTPFound would refuse the port
        return web.Response(status=status, headers={"Location": target})

    async def huge_header(request: web.Request) -> web.Response:
        return web.Response(text="{}", headers={"X-Padding": "a" * 100_000})

    async def unfollowed(request: web.Request) -> web.Response:
        # 304 to a request that asked for no cached copy; a 302 without a Location (a
        # framework's redirect whose target was never set); a 300 with one
        status = int(request.match_info["status"])
        headers = {"Location": "/page"} if status == 300 else {}
        body = b"" if status == 304 else b'{"value": 1}'
        return web.Response(status=status, body=body, headers=headers, content_type="text/html")

    async def cut(request: web.Request) -> web.StreamResponse:
        # the connection closes after `{"value": 12` of a body that says it is longer
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if request.match_info["how"] == "length":
            response.content_length = 100
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"value": 12')
        assert request.transport is not None
        request.transport.close()
        return response

    async def hang_up(request: web.Request) -> web.Response:
        # the connection closes before an answer, or in the middle of its head
        assert request.transport is not None
        if request.match_info["how"] == "midway":
            request.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: applic")
        request.transport.close()
        return web.Response()

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["status"]), content_type="text/html")

    asked = [0]

    async def unknown_status(request: web.Request) -> web.Response:
        if "count" in request.query:
            return web.json_response({"value": asked[0]})
        asked[0] += 1
        return web.Response(status=999, text="Request denied")

    for path, handler in [
        ("/status-999", unknown_status),
        ("/empty/{status}", empty),
        ("/cut/{how}", cut),
        ("/hang-up/{how}", hang_up),
        ("/unfollowed/{status}", unfollowed),
        ("/to-ftp", to_ftp),
        ("/to/{how}", to_odd),
        ("/huge-header", huge_header),
        ("/nested", nested),
        ("/retry-after", retry_after),
        ("/deep-json", deep_json),
        ("/healthy", healthy),
        ("/page", page),
        ("/endless", endless),
        ("/trickle", trickle),
        ("/stall", stall),
        ("/gigabyte", declared_gigabyte),
        ("/bomb", gzip_bomb),
        ("/binary-error", binary_error),
        ("/latin1", latin1),
        ("/latin1-meta", latin1_meta),
        ("/utf16", utf16_bom),
        ("/broken-utf8", broken_utf8),
        ("/a-run", a_run),
        ("/large", large),
        ("/loop-a", loop),
        ("/loop-b", loop),
        ("/hop/{n}", hop),
    ]:
        app.router.add_get(path, handler)
    return app


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    _gzip_bomb(200 * MiB)  # made before serving, not while other requests wait
    with BackgroundServer(hostile_app()) as url:
        yield url


def healthy_pair(url: str) -> tuple[HttpJson, HTML]:
    return (
        HttpJson(name="api", url=f"{url}/healthy", metrics={"v": "value"}),
        HTML(name="site", url=f"{url}/page", metrics={"stars": "#n"}),
    )


HEALTHY = {"api.v": 7, "site.stars": 1234}


def run(*sources: Any, timeout: float = 3, retries: int = 0, **defaults: Any) -> Any:
    return Pipeline(
        sources=sources, defaults=Defaults(timeout=timeout, retries=retries, **defaults)
    ).process()


# HTTP bodies ---------------------------------------------------------------------------------


def test_an_endless_body_stops_at_max_bytes(hostile: str) -> None:
    result = run(
        HTML(name="endless", url=f"{hostile}/endless", metrics={"n": "p"}, max_bytes="1MiB"),
        *healthy_pair(hostile),
    )
    assert result.values == HEALTHY
    assert result.errors["endless"] == (
        f"the answer from {hostile}/endless is larger than max_bytes = 1.0MiB; stopped reading "
        "it. If the page is really that large, raise `max_bytes` for this source"
    )


def test_the_default_cap_is_20_mib(hostile: str) -> None:
    result = run(HTML(name="endless", url=f"{hostile}/endless", metrics={"n": "p"}))
    assert "larger than max_bytes = 20.0MiB" in result.errors["endless"]


def test_a_declared_length_past_the_cap_fails_before_reading(hostile: str) -> None:
    result = run(HTML(name="big", url=f"{hostile}/gigabyte", metrics={"n": "p"}))
    assert "larger than max_bytes = 20.0MiB (it says 1.0GiB)" in result.errors["big"]


def test_a_slow_endless_body_fails_at_the_timeout(hostile: str) -> None:
    """A body that trickles or stalls fails at the timeout, saying how far it came: the
    message was "waiting for" the URL, as for a server that never answered."""
    result = run(
        HttpJson(name="slow", url=f"{hostile}/trickle", metrics={"v": "value"}),
        HttpJson(name="stalled", url=f"{hostile}/stall", metrics={"v": "value"}),
        HttpJson(name="silent", url=f"{hostile}/stall?silent=1", metrics={"v": "value"}),
        *healthy_pair(hostile),
        timeout=1,
    )
    assert result.values == HEALTHY
    assert re.fullmatch(
        rf"timed out after 1s reading the answer from {re.escape(hostile)}/trickle \(HTTP "
        r"200\): [\d,]+ bytes of its body, not its end, had come",
        result.errors["slow"],
    )
    assert result.errors["stalled"] == (
        f"timed out after 1s reading the answer from {hostile}/stall (HTTP 200): 12 of the "
        "100 bytes its Content-Length announced had come"
    )
    assert result.errors["silent"] == f"timed out after 1s waiting for {hostile}/stall"


def test_a_gzip_bomb_is_caught_while_decompressing(hostile: str) -> None:
    result = run(
        HTML(name="bomb", url=f"{hostile}/bomb", metrics={"n": "p"}, max_bytes="2MiB"),
        HTML(name="bomb500", url=f"{hostile}/bomb?status=500", metrics={"n": "p"}),
        *healthy_pair(hostile),
    )
    assert result.values == HEALTHY
    assert "larger than max_bytes = 2.0MiB" in result.errors["bomb"]
    # an error page past the cap is its status (was: "larger than max_bytes... raise
    # max_bytes", terminal, for a 500 that a retry may get past)
    assert result.errors["bomb500"] == f"HTTP 500 from {hostile}/bomb: server error"
    assert [o.errors[0].transient for o in result.outcomes if o.errors] == [False, True]


def test_max_bytes_in_defaults(hostile: str) -> None:
    result = run(HTML(name="bomb", url=f"{hostile}/bomb", metrics={"n": "p"}), max_bytes="500kB")
    assert "larger than max_bytes = 488.3KiB" in result.errors["bomb"]
    with pytest.raises(ValidationError):
        Defaults(max_bytes=0)
    assert Defaults(max_bytes="20MiB").max_bytes == 20 * MiB


def test_error_texts_hold_no_binary_garbage(hostile: str) -> None:
    result = run(HttpJson(name="bin", url=f"{hostile}/binary-error", metrics={"v": "value"}))
    assert result.errors["bin"] == (
        f"HTTP 500 from {hostile}/binary-error: server error — (190 bytes of binary data)"
    )


def test_json_nested_too_deep_is_an_error_saying_so(hostile: str) -> None:
    """JSON 100,000 levels deep, from a server and from a program: Python's parser gives up
    with a RecursionError, which must read as what it is, not as a bug in the source."""
    deep = "print('{\"a\":' * 100000 + '1' + '}' * 100000)"
    result = run(
        HttpJson(name="deep", url=f"{hostile}/deep-json", metrics={"v": "value"}),
        Command(name="deepcmd", command=[sys.executable, "-c", deep]),
        *healthy_pair(hostile),
        timeout=20,
    )
    assert result.values == HEALTHY
    assert result.errors["deep"] == (
        f"the answer from {hostile}/deep-json is not valid JSON (it nests deeper than the JSON "
        "reader goes): [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[…"
    )
    assert result.errors["deepcmd"] == (
        "the output is not valid JSON (it nests deeper than the JSON reader goes)"
    )
    # an error body that deep is read as text, the way any other body that is not JSON is
    assert service_message(b"[" * 4000) == _short("[" * 4000)


def test_a_retry_after_past_the_sources_timeout_fails_at_once_saying_when(hostile: str) -> None:
    """A Retry-After the source's time cannot wait out (longer than its `timeout`) ends the
    attempts with the server's answer and when to come back, instead of waiting until the
    source's budget runs out and calling it a timeout; one that is not a finite number of
    seconds or an HTTP date is no Retry-After at all."""

    def source(name: str, after: str, status: int = 429) -> HttpJson:
        url = f"{hostile}/retry-after?status={status}&after={after}"
        return HttpJson(name=name, url=url, metrics={"v": "value"})

    result = run(
        source("unavailable", "30", status=503),
        source("hours", "5400"),
        source("year", "31536000"),
        source("huge", "9" * 300),
        source("date", "Wed,%2021%20Oct%202099%2007:28:00%20GMT"),
        source("infinite", "inf"),
        source("nan", "nan"),
        source("negative", "-5"),
        *healthy_pair(hostile),
        timeout=5,
        retries=1,
    )
    assert result.values == HEALTHY
    where = f"{hostile}/retry-after"
    assert result.errors["unavailable"] == (
        f"HTTP 503 from {where}: server error (retry after 30s) — slow down"
    )
    assert result.errors["hours"] == (
        f"HTTP 429 from {where}: rate limited (retry after 1.5 h) — slow down"
    )
    # the wait in words, not in 300 digits or 10 (a date decades away)
    for name in ("year", "huge", "date"):
        assert result.errors[name] == (
            f"HTTP 429 from {where}: rate limited (retry after a year or more) — slow down"
        )
    for name in ("infinite", "nan"):
        assert result.errors[name] == f"HTTP 429 from {where}: rate limited — slow down"
    assert result.errors["negative"] == (
        f"HTTP 429 from {where}: rate limited (retry after 0s) — slow down"
    )


# redirects -----------------------------------------------------------------------------------


def test_a_redirect_loop_says_so_and_after_how_many_hops(hostile: str) -> None:
    result = run(HttpJson(name="loop", url=f"{hostile}/loop-a", metrics={"v": "value"}))
    assert result.errors["loop"] == (
        f"redirect loop: {hostile}/loop-a was redirected 10 times and came back to "
        f"{hostile}/loop-a; the server sends it in a circle, check the URL (or the login, "
        "when the loop goes through a login page)"
    )


def test_answers_that_are_not_http_to_read_are_terminal_errors_saying_why(hostile: str) -> None:
    """A redirect to another scheme, a header line past aiohttp's 8190 bytes: one clear line,
    no retry (the same answer comes again), no parser dump."""
    result = run(
        HttpJson(name="ftp", url=f"{hostile}/to-ftp", metrics={"v": "value"}),
        HttpJson(name="header", url=f"{hostile}/huge-header", metrics={"v": "value"}),
        *healthy_pair(hostile),
        retries=2,
    )
    assert result.values == HEALTHY
    assert result.errors["ftp"] == (
        f"{hostile}/to-ftp redirects to ftp://files.example/stats.txt, which is not an "
        "http(s) URL; check the URL"
    )
    assert result.errors["header"] == (
        f"the answer from {hostile}/huge-header is not HTTP this client reads: Got more than "
        "8190 bytes when reading"
    )


def test_a_location_is_named_short_without_its_query_and_as_what_it_is(hostile: str) -> None:
    """A `Location` is the server's text: it was put whole into the error (8 KB of it, its
    query and a key there included), and one with a port past 65535 was "not an http(s)
    URL"; `javascript:` came out as `javascript://`."""
    result = run(
        *(
            HttpJson(name=how, url=f"{hostile}/to/{how}", metrics={"v": "value"})
            for how in ("long", "port", "script", "choices")
        )
    )
    assert result.errors == {
        "long": f"{hostile}/to/long redirects to ftp://files.example/{'a' * 179}…, which is "
        "not an http(s) URL; check the URL",
        "port": f"{hostile}/to/port redirects to http://127.0.0.1:99999/stats, which is not "
        "a valid URL; check the URL",
        "script": f"{hostile}/to/script redirects to javascript:alert(1), which is not an "
        "http(s) URL; check the URL",
        "choices": f"HTTP 300 from {hostile}/to/choices: a redirect to "
        f"{(hostile + '/' + 'b' * 200)[:199]}…, which is not followed (only 301, 302, 303, "
        "307 and 308 are); set the URL to the page meant",
    }


def test_a_redirect_or_304_that_is_not_followed_is_an_error_saying_so(hostile: str) -> None:
    """A 3xx answer that is left as it is (no Location, a status no client follows, a 304
    though nothing was cached) holds no page: an error naming it, not `matched nothing` or
    `not valid JSON` on its empty body, nor a number read from it."""
    result = run(
        HTML(name="stale", url=f"{hostile}/unfollowed/304", metrics={"v": "p"}),
        HttpJson(name="nowhere", url=f"{hostile}/unfollowed/302", metrics={"v": "value"}),
        HttpJson(name="choices", url=f"{hostile}/unfollowed/300", metrics={"v": "value"}),
    )
    assert result.values == {}
    assert result.errors == {
        "stale": f"HTTP 304 (not modified) from {hostile}/unfollowed/304, though the request "
        "asked for no cached copy: the server, or a cache in front of it, answers wrongly",
        "nowhere": f"HTTP 302 from {hostile}/unfollowed/302: a redirect without a `Location` "
        "to follow; the server's answer is incomplete, check the URL",
        "choices": f"HTTP 300 from {hostile}/unfollowed/300: a redirect to {hostile}/page, "
        "which is not followed (only 301, 302, 303, 307 and 308 are); set the URL to the "
        "page meant",
    }


def test_a_status_http_does_not_define_is_no_server_error(hostile: str) -> None:
    """LinkedIn answers bots with 999: not a 5xx, so neither "server error" nor a retry
    (the same refusal comes back)."""
    result = run(
        HttpJson(name="li", url=f"{hostile}/status-999", metrics={"v": "value"}), retries=2
    )
    count = run(HttpJson(name="n", url=f"{hostile}/status-999?count=1", metrics={"v": "value"}))
    assert count.values == {"n.v": 1}
    assert result.errors == {
        "li": f"HTTP 999 from {hostile}/status-999: a status HTTP does not define (LinkedIn "
        "refuses automated requests with 999) — Request denied"
    }


def test_an_empty_answer_says_it_is_empty(hostile: str) -> None:
    """A 204, or a 200 without a body (a proxy's, a server's before its app is up): the
    source's error says the answer was empty, not that a selector matched nothing or that
    the JSON lacks a value at line 1 column 1."""
    result = run(
        *(
            kind(
                name=f"{kind.type}_{status}", url=f"{hostile}/empty/{status}", metrics={"v": metric}
            )
            for kind, metric in ((HTML, "p"), (HttpJson, "value"))
            for status in (200, 204)
        )
    )
    assert result.values == {}
    assert result.errors == {
        f"{kind}_{status}": f"the answer from {hostile}/empty/{status} is empty (HTTP "
        f"{status}): nothing to read; check the URL"
        for kind in ("html", "http_json")
        for status in (200, 204)
    }


@pytest.mark.parametrize(
    ("body", "blank"),
    [
        (b"", True),
        (b" \t\r\n\x0b\x0c", True),  # the ASCII whitespace `bytes.strip` removes
        (b"\n<p>1</p>\n", False),
        (b"\xa0", False),  # a NO-BREAK SPACE byte is content to `bytes.strip` too
        (b"\x1c\x85", False),
    ],
)
def test_a_blank_answer_is_one_strip_would_empty(body: bytes, blank: bool) -> None:
    response = Response(200, "http://example.test/", {}, body)
    assert response.blank is blank is (not body.strip())


def test_a_body_cut_before_its_announced_end_says_so(hostile: str) -> None:
    """The connection closes before the `Content-Length` or the last chunk: worth a retry
    (transient), and the error says the answer was cut, not that the host was unreachable."""
    result = run(
        HttpJson(name="length", url=f"{hostile}/cut/length", metrics={"v": "value"}),
        HttpJson(name="chunked", url=f"{hostile}/cut/chunked", metrics={"v": "value"}),
    )
    assert result.values == {}
    assert result.errors == {
        "length": f"the answer from {hostile}/cut/length was cut short: 12 of the 100 bytes "
        "its Content-Length announced came before the connection closed",
        "chunked": f"the answer from {hostile}/cut/chunked was cut short: the connection "
        "closed before its last chunk",
    }


def test_a_server_that_hangs_up_is_said_to_have_hung_up(hostile: str) -> None:
    """Closed with no answer, the line was "cannot reach URL: Server disconnected", though the
    server was reached; closed in the middle of the answer's head, it was aiohttp's repr of
    the half-read head (`<RawResponseMessage(version=..., headers=<CIMultiDictProxy(...`)."""
    result = run(
        HttpJson(name="before", url=f"{hostile}/hang-up/before", metrics={"v": "value"}),
        HttpJson(name="midway", url=f"{hostile}/hang-up/midway", metrics={"v": "value"}),
    )
    assert result.errors == {
        "before": f"{hostile}/hang-up/before closed the connection without answering",
        "midway": f"{hostile}/hang-up/midway closed the connection in the middle of its "
        "answer's headers",
    }
    assert all(o.errors[0].transient for o in result.outcomes)


def test_a_long_redirect_chain_says_how_many_hops(hostile: str) -> None:
    result = run(HttpJson(name="hops", url=f"{hostile}/hop/0", metrics={"v": "value"}))
    assert result.errors["hops"] == (
        f"too many redirects: gave up after 10 hops from {hostile}/hop/0 (the last to "
        f"{hostile}/hop/10); check the URL"
    )


# bytes to text like a browser (issue 11 §2) --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "css", "xpath"),
    [
        ("/latin1", "#n", "//p[@id='n']"),  # the header's charset
        ("/latin1-meta", "#n", "//p[@id='n']"),  # <meta http-equiv>, no charset in the header
        ("/utf16", "#n", "//p[@id='n']"),  # a byte order mark beats the header
    ],
)
def test_pages_are_decoded_like_a_browser(hostile: str, path: str, css: str, xpath: str) -> None:
    result = run(
        HTML(
            name="p",
            url=f"{hostile}{path}",
            metrics={
                "css": {"css": css, "regex": r"^([\d\s]+) t"},
                "xpath": {"xpath": xpath, "regex": r"^([\d\s]+) t"},
                "word": {"css": css, "regex": r"\s(\w+)$", "map": {"téléchargements": 1}},
            },
        )
    )
    assert result.errors == {}
    assert result.values == {"p.css": 12374, "p.xpath": 12374, "p.word": 1}


@pytest.mark.parametrize("path", ["/latin1", "/latin1-meta", "/utf16"])
def test_the_issues_latin1_page_reads_12374_with_a_plain_selector(hostile: str, path: str) -> None:
    """Issue 11 §2 exactly as reported: `12<0xA0>374 téléchargements`, no `regex:` needed."""
    result = run(HTML(name="p", url=f"{hostile}{path}", metrics={"n": {"css": "#n"}}))
    assert result.errors == {}
    assert result.values == {"p.n": 12374}


def test_bytes_that_are_not_utf8_read_as_a_browser_shows_them(hostile: str) -> None:
    """A page said to be UTF-8 with a broken sequence: each broken piece is one U+FFFD, as
    the text decoded by `Response.html()` has it (never the bytes the parser would join)."""
    metric = {"css": "#n", "map": {"1\ufffd\ufffd2": 1, "1\u20ac2": 2}}
    result = run(HTML(name="p", url=f"{hostile}/broken-utf8", metrics={"n": metric}))
    assert result.errors == {}
    assert result.values == {"p.n": 1}


@pytest.mark.parametrize(
    ("content_type", "body", "text", "as_is"),
    [
        # UTF-8 by the header, by <meta charset>, or valid UTF-8 without any label
        ("text/html; charset=utf-8", "<p>€ 12</p>".encode(), "<p>€ 12</p>", True),
        ("text/html; charset=UTF8", "<p>€ 12</p>".encode(), "<p>€ 12</p>", True),
        (
            "text/html",
            '<meta charset="utf-8"><p>é</p>'.encode(),
            '<meta charset="utf-8"><p>é</p>',
            True,
        ),
        (None, "<p>é</p>".encode(), "<p>é</p>", True),
        # a byte order mark is not part of the text
        ("text/html", b"\xef\xbb\xbf<p>1</p>", "<p>1</p>", False),
        # broken UTF-8: the text has U+FFFD where the bytes do not decode
        ("text/html; charset=utf-8", b"<p>1\xff2</p>", "<p>1\ufffd2</p>", False),
        # a U+FFFD the page itself holds: the text again (it cannot be told apart cheaply)
        ("text/html; charset=utf-8", "<p>\ufffd</p>".encode(), "<p>\ufffd</p>", False),
        # another encoding: windows-1252 by the header, and without a label or valid UTF-8
        ("text/html; charset=iso-8859-1", b"<p>\xe9</p>", "<p>\xe9</p>", False),
        (None, b"<p>\x80</p>", "<p>\u20ac</p>", False),
    ],
)
def test_a_page_is_handed_to_the_parser_as_it_came_only_when_it_is_its_utf8(
    content_type: str | None, body: bytes, text: str, as_is: bool
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = Response(200, "http://example.test/", headers, body)
    decoded, utf8 = response.html_page()
    assert decoded == text
    assert response.html() == text
    assert (utf8 is body) if as_is else (utf8 is None)


# patterns ------------------------------------------------------------------------------------


def test_a_catastrophic_regex_does_not_stall_the_others(hostile: str) -> None:
    # a backtracking engine takes minutes for (a+)+b on 32 a's; RE2 a few microseconds
    result = run(
        HTML(name="evil", url=f"{hostile}/a-run", metrics={"n": {"css": "#n", "regex": "(a+)+b"}}),
        *healthy_pair(hostile),
    )
    assert result.values == HEALTHY
    assert result.errors["evil.n"] == f"n: regex '(a+)+b' found nothing in {'a' * 32!r}"


def test_a_css_selector_that_would_backtrack_for_hours_stalls_nothing(
    tmp_path: Path, hostile: str
) -> None:
    """`span div div div p` on 1,000 nested `<div>`s: Lexbor tries every way to pick the
    ancestors, C(1000, 4) of them, holding the GIL, so in the run's process no timeout
    could fire and every other source would wait for hours. It runs in a process of its
    own instead, stopped at the source's timeout; selectors that find their match at once
    read the same page. `kpi run` in a process of its own, since a stall is for hours."""
    nested = f"{hostile}/nested"
    done = _kpi_run_beside_healthy(
        tmp_path,
        hostile,
        [
            {
                "name": "hostile",
                "type": "html",
                "url": nested,
                "timeout": 2,
                "metrics": {"none": {"css": "span div div div p", "count": True}},
            },
            {
                "name": "fine",
                "type": "html",
                "url": nested,
                "metrics": {
                    "deep": "div div div div p",
                    "wide": {"css": "body ~ div div p", "count": True, "allow_zero": True},
                    "p": "body p",
                },
            },
        ],
        timeout=120,  # a stall is for hours: this ends the test, not the run
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] == [
        {
            "where": "hostile",
            "message": f"reading {nested} did not finish within the source's timeout of 2s; "
            "simplify the selector or pattern, or raise `timeout`",
        }
    ]
    values = {row["kpi"]: row["value"] for row in report["values"]}
    assert values == {
        "fine.deep": 1,
        "fine.wide": 0,
        "fine.p": 1,
        "api.v": 7,
        "site.stars": 1234,
    }


def test_backtracking_combinators_are_counted_at_the_top_level() -> None:
    cases = {
        "#n": 0,
        "div p": 1,
        "a > b + c": 0,
        "span div div div p": 4,
        "a ~ b c": 2,
        " a  >  b ": 0,
        "div:not(a b c) p": 1,
        'a[title="x y z"] b': 1,
        "a, b c d": 2,
    }
    assert {selector: backtracking_combinators(selector) for selector in cases} == cases


def test_patterns_re2_cannot_run_are_config_errors() -> None:
    with pytest.raises(ValidationError, match=r"no backreferences or lookaround"):
        Metric(css="p", regex=r"(\d)\1")
    with pytest.raises(ValidationError, match=r"no backreferences or lookaround"):
        Metric(css="p", regex=r"(?<=\$)\d+")


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        (r"([\d\s]+)", "12\u202f374", "12\u202f374"),  # Python's \s takes every space
        (r"(\d+)", "٣٤ users", "٣٤"),  # and \d every decimal digit
        (r"(\w+) users", "Zoë users", "Zoë"),
        (r"(\S+)$", "total\xa012", "12"),
        (r"([\\d]+)", "x\\d", "\\d"),  # an escaped backslash is no class
        (r"([]\d]+)", "x]12", "]12"),  # `]` first in a class is a literal
    ],
)
def test_shorthand_classes_mean_what_they_mean_in_python(
    pattern: str, text: str, found: str
) -> None:
    import re

    import re2

    python = re.search(pattern, text)
    ours = re2.search(unicode_classes(pattern), text)
    assert python is not None and ours is not None
    assert python.group(1) == ours.group(1) == found


def test_work_off_the_loop_fails_at_its_timeout() -> None:
    async def main() -> tuple[str, float]:
        try:
            await run_off_loop(lambda: time.sleep(30), timeout=0.2, what="reading a page")
        except ExtractError as exc:
            return str(exc), 0.0
        raise AssertionError("no timeout")

    message, _ = asyncio.run(main())
    assert message == (
        "reading a page did not finish within the source's timeout of 0.2s; "
        "simplify the selector or pattern, or raise `timeout`"
    )


def test_large_pages_and_xpath_are_read_off_the_loop(hostile: str) -> None:
    result = run(
        HTML(
            name="big",
            url=f"{hostile}/large",
            metrics={"users": "#n", "paras": {"xpath": "//p[@class='f']", "count": True}},
        ),
        HTML(name="x", url=f"{hostile}/page", metrics={"stars": {"xpath": "//p[@id='n']"}}),
    )
    assert result.errors == {}
    assert result.values == {"big.users": 98765, "big.paras": 1000, "x.stars": 1234}


def test_work_that_never_ends_does_not_hold_the_next() -> None:
    release = threading.Event()

    async def main() -> int:
        with pytest.raises(ExtractError):
            await run_off_loop(lambda: release.wait(30), timeout=0.2, what="stuck")
        return await run_off_loop(lambda: 42, timeout=5, what="next")

    try:
        assert asyncio.run(main()) == 42
    finally:
        release.set()


def test_work_off_the_loop_gives_its_result_and_its_errors() -> None:
    async def main() -> int:
        return await run_off_loop(lambda: 6 * 7, timeout=5, what="x")

    assert asyncio.run(main()) == 42

    def broken() -> int:
        raise ExtractError("n: matched nothing")

    with pytest.raises(ExtractError, match="matched nothing"):
        asyncio.run(run_off_loop(broken, timeout=5, what="x"))


# commands ------------------------------------------------------------------------------------


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its reaper is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" not in state.split()[1]


def _gone(pid: int) -> bool:
    """Whether `pid` ends within a few seconds: SIGKILL is sent, not yet delivered, when
    the run returns, and the process is no child of ours to wait for."""
    for _ in range(100):
        if not _running(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_flood_on_stdout_or_stderr_stops_at_max_bytes(hostile: str) -> None:
    result = run(
        Command(name="yes", command=["yes"], max_bytes="1MiB"),
        Command(name="noise", command=["sh", "-c", "yes >&2"], max_bytes="1MiB"),
        *healthy_pair(hostile),
        timeout=20,
    )
    assert result.values == HEALTHY
    assert result.errors["yes"] == (
        "'yes' wrote more than max_bytes = 1.0MiB to stdout: stopped it and every process it "
        "started; raise `max_bytes` if that much output is right"
    )
    assert "'sh' wrote more than max_bytes = 1.0MiB to stderr" in result.errors["noise"]


def test_a_grandchild_neither_holds_the_run_nor_stays(tmp_path: Path, hostile: str) -> None:
    pidfile = tmp_path / "sleep.pid"
    result = run(
        Command(name="bg", command=["sh", "-c", f"sleep 300 & echo $! > {pidfile}; echo 1"]),
        *healthy_pair(hostile),
        timeout=20,
    )
    assert result.errors == {}
    assert result.values == {"bg.value": 1, **HEALTHY}
    assert _gone(int(pidfile.read_text()))


def test_a_grandchild_that_left_the_group_does_not_stay_holding_the_pipes(
    tmp_path: Path,
) -> None:
    """A child that left the program's session (`setsid`, a daemon's double fork) was out
    of reach of the group kill: it kept the run waiting a second on the pipes it holds,
    then ran on for good. A process still holding the program's pipes once it exited is
    one it started, and is killed with the rest, on exit and at the timeout."""
    started = tmp_path / "started.pid"
    hung = tmp_path / "hung.pid"
    escape = "setsid sh -c 'echo $$ > {}; exec sleep 300' &"
    result = run(
        Command(
            name="bg",
            command=["sh", "-c", f"{escape.format(started)} sleep 0.2; echo 1"],
        ),
        Command(
            name="hang",
            command=["sh", "-c", f"{escape.format(hung)} sleep 300"],
        ),
        timeout=1,
    )
    assert result.values == {"bg.value": 1}
    assert "did not finish" in result.errors["hang"]
    for pidfile in (started, hung):
        assert _gone(int(pidfile.read_text())), pidfile


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "sleep.pid"
    result = run(
        Command(name="hang", command=["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"]),
        timeout=1,
    )
    assert result.errors["hang"] == (
        "'sh' did not finish within the source's timeout of 1s: stopped it and every process "
        "it started"
    )
    assert _gone(int(pidfile.read_text()))


def _kpi_run_beside_healthy(
    tmp_path: Path, hostile: str, sources: list[dict[str, Any]], *, timeout: float
) -> subprocess.CompletedProcess[str]:
    """`kpi run --format json --no-deliver`, in a process of its own, of `sources` beside two
    healthy ones read from the hostile server (`api.v` 7, `site.stars` 1234); `timeout`
    seconds end the test (not the run) if it stalls."""
    healthy = [
        {
            "name": "api",
            "type": "http_json",
            "url": f"{hostile}/healthy",
            "metrics": {"v": "value"},
        },
        {"name": "site", "type": "html", "url": f"{hostile}/page", "metrics": {"stars": "#n"}},
    ]
    config = {"defaults": {"timeout": 10, "retries": 0}, "sources": [*sources, *healthy]}
    (tmp_path / "kpi.yaml").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    return subprocess.run(
        [sys.executable, "-m", "kpi_collector", "run", "--format", "json", "--no-deliver"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_kpi_run_with_hostile_sources_prints_no_traceback(tmp_path: Path, hostile: str) -> None:
    done = _kpi_run_beside_healthy(
        tmp_path,
        hostile,
        [
            {
                "name": "bg",
                "type": "command",
                "command": ["sh", "-c", "sleep 300 & echo 1"],
            },
            {"name": "yes", "type": "command", "command": ["yes"], "max_bytes": "1MiB"},
            {
                "name": "evil",
                "type": "html",
                "url": f"{hostile}/a-run",
                "metrics": {"n": {"css": "#n", "regex": "(a+)+b"}},
            },
        ],
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Event loop is closed" not in done.stderr
    values = {row["kpi"]: row["value"] for row in json.loads(done.stdout)["values"]}
    assert values == {"bg.value": 1, "api.v": 7, "site.stars": 1234}


def test_a_killed_run_leaves_no_command_running(tmp_path: Path) -> None:
    """`kill -9` of `kpi run` while a `command` source runs: the command dies with it
    (PR_SET_PDEATHSIG), instead of running on into the next run."""
    import signal
    import subprocess
    import sys
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    pid_file = tmp_path / "child.pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    )
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n"
        f"  - {{name: slow, type: command, command: [{sys.executable}, -c, {script!r}], timeout: 600}}\n"
    )
    run_ = subprocess.Popen(
        [sys.executable, "-m", "kpi_collector", "-c", str(tmp_path / "kpi.yaml"), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = None
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        run_.send_signal(signal.SIGKILL)
        run_.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, f"the command (pid {child}) outlived its run"
            time.sleep(0.05)
    finally:
        if run_.poll() is None:
            run_.kill()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_the_run_that_takes_over_kills_what_a_killed_runs_command_left(tmp_path: Path) -> None:
    """`kill -9` of `kpi run` while a `command` source's shell waits on a child it put in
    the background: the shell dies with the run, its child does not; the next run, taking
    over the stale lock, kills that child's process group (recorded in the store) and
    clears the record."""
    import signal

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG and /proc are Linux's")
    pid_file = tmp_path / "grandchild.pid"
    config = tmp_path / "kpi.yaml"
    config.write_text(
        "store: sqlite:///kpi.db\n"
        "sources:\n"
        f"  - {{name: slow, type: command, command: [sh, -c, 'sleep 300 & echo $! > "
        f"{pid_file}; wait'], timeout: 600}}\n"
    )
    kpi = [sys.executable, "-m", "kpi_collector", "-c", str(config)]
    first = subprocess.Popen([*kpi, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    grandchild = None
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        grandchild = int(pid_file.read_text())
        # the run records the group once its lock is registered in the store
        deadline = time.monotonic() + 60
        while not _group_recorded(tmp_path / "kpi.db"):
            assert time.monotonic() < deadline, "the run never recorded the command's group"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        time.sleep(0.5)  # the shell's death (PR_SET_PDEATHSIG) does not reach its child
        assert _alive(grandchild), "expected the background child to outlive the killed run"
        config.write_text(
            "store: sqlite:///kpi.db\n"
            "sources:\n"
            "  - {name: quick, type: command, command: [echo, '7']}\n"
        )
        second = subprocess.run(
            [*kpi, "run", "--format", "json"], capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 0, second.stderr
        assert "killed process group" in second.stderr
        assert str(grandchild) in second.stderr
        deadline = time.monotonic() + 10
        while _alive(grandchild):
            assert time.monotonic() < deadline, f"pid {grandchild} outlived the takeover"
            time.sleep(0.05)
        assert not _group_recorded(tmp_path / "kpi.db")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        if grandchild is not None and _alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def _group_recorded(database: Path) -> bool:
    import sqlite3

    if not database.exists():
        return False
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
        try:
            rows = conn.execute("SELECT name FROM heartbeats WHERE name LIKE 'group:%'").fetchall()
        except sqlite3.OperationalError:  # the table is not created yet
            return False
    return bool(rows)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def test_a_left_group_is_killed_only_when_it_is_the_one_recorded() -> None:
    """`kill_left_group` kills a group whose members started after the recorded start, and
    leaves alone a group that was there before (a pid reused by an older, unrelated group)."""
    import signal

    from kpi_collector.collect.groups import kill_left_group

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        started = time.time()
        assert kill_left_group(proc.pid, started_at=started + 3600) == []
        assert proc.poll() is None
        assert kill_left_group(proc.pid, started_at=started - 60) == [proc.pid]
        assert proc.wait(10) == -signal.SIGKILL
        assert kill_left_group(proc.pid, started_at=started - 60) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_signal_during_a_commands_start_is_handled_once_its_group_is_live() -> None:
    """`groups.Leader.start`: a signal whose handler raises (a second SIGTERM raises
    KeyboardInterrupt) right after the program's fork is handled only once its group is
    live, so the unwinding it starts and the hard stop both find the group to kill."""
    import signal

    from kpi_collector.collect import groups

    class Stop(Exception):
        pass

    live_then: list[list[int]] = []

    def handler(signum: int, frame: object) -> None:
        live_then.append([group.pgid for group in groups.live()])
        raise Stop

    def spawn() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(["sleep", "120"], start_new_session=True)
        signal.raise_signal(signal.SIGUSR1)  # its handler would run before this returns
        return process

    leader = groups.Leader("sleep")
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with pytest.raises(Stop):
            leader.start(spawn)
        assert leader.process is not None
        assert len(live_then) == 1 and leader.process.pid in live_then[0]
        assert signal.getsignal(signal.SIGUSR1) is handler  # given back
    finally:
        signal.signal(signal.SIGUSR1, previous)
        leader.kill()
        if leader.process is not None:
            leader.process.wait()
            groups.ended(leader.process.pid)
