"""`kpi run` on compressed pages: every `Content-Encoding` aiohttp asks for is undone, and a
compressed body that ends before its stream's end is an error, never the part that came.
Before, a gzip or brotli page cut after `12,37` of `12,374,000` stored 12.37 (aiohttp
checks the end of deflate streams only)."""

from __future__ import annotations

import gzip
import json
import random
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kpi_collector.collect.decoding import DecodingError, TooLargeError, decode_body
from kpi_collector.demo.server import BackgroundServer
from tests.cli import run_kpi

brotli = pytest.importorskip("brotli")

_NOISE = "".join(random.Random(1).choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(20000))
PAGE = f'<html><body><p>{_NOISE}</p><p id="v">12,374,000</p><p>{_NOISE[::-1]}</p></body></html>'
RAW = PAGE.encode()
CUT = RAW.index(b"12,37") + len(b"12,37")  # the page up to here reads 12.37


def _cut(compressed: bytes, decompress: Callable[[bytes], bytes]) -> bytes:
    """The shortest start of `compressed` that decodes past CUT but not to the number's end."""
    for size in range(len(compressed)):
        try:
            out = decompress(compressed[:size])
        except Exception:  # a start the decoder refuses: try a longer one
            continue
        if CUT <= len(out) < RAW.index(b"</p>", CUT):
            return compressed[:size]
    raise AssertionError("no cut found")


GZIP = gzip.compress(RAW)
BROTLI = brotli.compress(RAW)
CUT_GZIP = _cut(GZIP, lambda data: zlib.decompressobj(31).decompress(data))
CUT_BROTLI = _cut(BROTLI, lambda data: brotli.Decompressor().process(data))

# path: (Content-Encoding, body)
PAGES = {
    "/gzip": ("gzip", GZIP),
    "/deflate": ("deflate", zlib.compress(RAW)),
    "/raw-deflate": ("deflate", zlib.compress(RAW)[2:-4]),  # no zlib header, as IIS sent it
    "/br": ("br", BROTLI),
    "/twice": ("gzip, gzip", gzip.compress(GZIP)),  # RFC 9110: codings in the order applied
    "/gzip-cut": ("gzip", CUT_GZIP),
    "/br-cut": ("br", CUT_BROTLI),
    "/deflate-cut": ("deflate", zlib.compress(RAW)[: len(CUT_GZIP)]),
    "/not-gzip": ("gzip", RAW),
}


@pytest.fixture
def pages() -> Iterator[str]:
    app = web.Application()
    for path, (coding, body) in PAGES.items():

        async def handler(
            request: web.Request, body: bytes = body, coding: str = coding
        ) -> web.Response:
            return web.Response(
                body=body, headers={"Content-Type": "text/html", "Content-Encoding": coding}
            )

        app.router.add_get(path, handler)
    with BackgroundServer(app) as url:
        yield url


def test_compressed_pages_whole_or_an_error(pages: str, workdir: Path) -> None:
    names = {path: path.strip("/").replace("-", "_") for path in PAGES}
    (workdir / "kpi.yaml").write_text(
        "defaults: {retries: 0}\nsources:\n"
        + "".join(
            f"  - {{name: {name}, type: html, url: '{pages}{path}', metrics: {{v: '#v'}}}}\n"
            for path, name in names.items()
        )
    )
    result = run_kpi(workdir, "run", "--format", "json")
    assert result.returncode == 1, result.stderr
    whole = {"gzip", "deflate", "raw_deflate", "br", "twice"}
    values = {v["kpi"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values == {f"{name}.v": 12_374_000 for name in whole}
    with sqlite3.connect(workdir / "kpi.db") as conn:
        stored = dict(conn.execute("SELECT kpi, value FROM observations"))
        errors = dict(conn.execute("SELECT source, message FROM run_errors"))
    assert stored == values
    for name, coding in (("gzip_cut", "gzip"), ("br_cut", "br"), ("deflate_cut", "deflate")):
        assert (
            f"`Content-Encoding: {coding}` but the {coding} data ends before its end"
            in (errors[name])
        )
    assert "the gzip data is not valid" in errors["not_gzip"]


def test_decode_body_is_capped_and_counts_members() -> None:
    bomb = gzip.compress(bytes(10_000_000))
    for coding, body in (("gzip", bomb), ("br", brotli.compress(bytes(10_000_000)))):
        with pytest.raises(TooLargeError):
            decode_body(body, coding, 1_000_000)
    # concatenated gzip members are one body (RFC 1952 2.2); too many are refused
    assert decode_body(gzip.compress(b"a") + gzip.compress(b"b"), "gzip", 100) == b"ab"
    with pytest.raises(DecodingError, match="members"):
        decode_body(gzip.compress(b"a") * 101, "gzip", 10_000)
    # identity and codings without a decoder here stay as they came
    assert decode_body(b"<p>1</p>", "identity", 100) == b"<p>1</p>"
    assert decode_body(b"<p>1</p>", "x-custom", 100) == b"<p>1</p>"


def test_zstd_frames_cut_and_cap() -> None:
    zstd = pytest.importorskip("backports.zstd")
    assert decode_body(zstd.compress(b"12,") + zstd.compress(b"374"), "zstd", 100) == b"12,374"
    with pytest.raises(DecodingError, match="the zstd data ends before its end"):
        decode_body(zstd.compress(RAW)[:-5], "zstd", len(RAW))
    with pytest.raises(TooLargeError):
        decode_body(zstd.compress(bytes(10_000_000)), "zstd", 1_000_000)


def test_compressed_bytes_without_content_encoding_say_so() -> None:
    """A gzip body sent without `Content-Encoding` (was: "CSS selector matched nothing")."""
    from kpi_collector.collect.http import Response
    from kpi_collector.errors import ExtractError

    response = Response(200, "https://example.test/stats?key=s3cret", {}, GZIP)
    with pytest.raises(ExtractError, match="is gzip data, but the answer has no") as caught:
        response.html()
    assert "s3cret" not in str(caught.value)
