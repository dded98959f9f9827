"""`kpi run` on pages whose charset is declared with labels of the WHATWG Encoding
standard that Python's codec names do not know, or with the HTML standard's own rules for
`<meta>`: each page stores the number a browser shows. Before, such a page was read as
windows-1252, and the scale word after the number (млн, 万) became mojibake that was
passed over: 1.2 was stored for 1.2 million."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kpi_collector.collect.charset import decode_html
from kpi_collector.demo.server import BackgroundServer
from kpi_collector.errors import ExtractError
from tests.cli import run_kpi


def _page(text: str, lang: str, codec: str, head: str = "") -> bytes:
    return (
        f'<html lang="{lang}"><head>{head}</head><body><p id="v">{text}</p></body></html>'
    ).encode(codec)


# path: (Content-Type, body, the value a browser shows)
PAGES: dict[str, tuple[str, bytes, float]] = {
    # WHATWG Encoding labels: "koi8" and "koi" are KOI8-R, "x-gbk" GBK, "windows-949"
    # EUC-KR, "x-euc-jp" EUC-JP, "x-x-big5" Big5, "x-mac-cyrillic" (was 1.2 each)
    "/koi8": ("text/html; charset=koi8", _page("Выручка 1,2 млн", "ru", "koi8-r"), 1.2e6),
    "/koi-meta": (
        "text/html",
        _page("Выручка 1,2 млн", "ru", "koi8-r", '<meta charset="koi">'),
        1.2e6,
    ),
    "/x-gbk": ("text/html; charset=x-gbk", _page("收入 1.2万", "zh", "gbk"), 12_000),
    "/windows-949": ("text/html; charset=windows-949", _page("매출 1.2만", "ko", "cp949"), 12_000),
    "/x-euc-jp": ("text/html; charset=x-euc-jp", _page("売上 1.2万", "ja", "euc_jp"), 12_000),
    "/x-x-big5": ("text/html; charset=x-x-big5", _page("收入 1.2萬", "zh-TW", "big5"), 12_000),
    "/mac-cyrillic": (
        "text/html; charset=x-mac-cyrillic",
        _page("Выручка 1,2 млн", "ru", "mac-cyrillic"),
        1.2e6,
    ),
    # the label "utf-16" (and "unicode") is UTF-16LE without a BOM (was a page of
    # mojibake: its selector matched nothing)
    "/utf-16": ("text/html; charset=utf-16", _page("1 234,5", "fr", "utf-16-le"), 1234.5),
    "/unicode": ("text/html; charset=unicode", _page("1 234,5", "fr", "utf-16-le"), 1234.5),
    # HTML standard, prescan: a <meta> naming UTF-16 means UTF-8 (the prescan could read it)
    "/meta-utf-16": (
        "text/html",
        _page("1 234,5", "fr", "utf-8", '<meta charset="utf-16">'),
        1234.5,
    ),
    # HTML standard, prescan: a label it does not know is passed over, the next <meta> counts
    "/meta-bogus-first": (
        "text/html",
        _page("Выручка 1,2 млн", "ru", "cp1251", '<meta charset="bogus"><meta charset="cp1251">'),
        1.2e6,
    ),
    # a <meta> past the prescan's 4 KB, after the scripts of a long <head>: a browser decodes
    # the page again in it (HTML standard, "change the encoding"); read as windows-1252,
    # млн was mojibake and 1.2 was stored. One in a script's string or a comment does not count
    "/late-meta": (
        "text/html",
        _page(
            "Выручка 1,2 млн",
            "ru",
            "cp1251",
            "<script>" + "x = 1;" * 1000 + "var s = '<meta charset=koi8-r>';</script>"
            "<!-- <meta charset=koi8-r> --><meta charset=windows-1251>",
        ),
        1.2e6,
    ),
    # no charset anywhere, not UTF-8: the HTML standard's default for the page's language
    # (a browser guesses the same from the text); as windows-1252, 1.2 was stored
    "/no-label-ru": ("text/html", _page("Выручка 1,2 млн", "ru", "cp1251"), 1.2e6),
    "/no-label-ja": ("text/html", _page("売上 1.2万", "ja", "shift_jis"), 12_000),
    "/no-label-zh-tw": ("text/html", _page("收入 1.2萬", "zh-TW", "big5"), 12_000),
}


@pytest.fixture
def pages() -> Iterator[str]:
    app = web.Application()
    for path, (content_type, body, _) in PAGES.items():

        async def handler(
            request: web.Request, body: bytes = body, content_type: str = content_type
        ) -> web.Response:
            return web.Response(body=body, headers={"Content-Type": content_type})

        app.router.add_get(path, handler)

    async def iso_2022_kr(request: web.Request) -> web.Response:
        return web.Response(
            body=_page("1,234", "ko", "iso2022_kr"),
            headers={"Content-Type": "text/html; charset=iso-2022-kr"},
        )

    app.router.add_get("/iso-2022-kr", iso_2022_kr)
    with BackgroundServer(app) as url:
        yield url


def test_pages_store_what_a_browser_shows(pages: str, workdir: Path) -> None:
    sources = "".join(
        f"  - {{name: {path.strip('/').replace('-', '_')}, type: html, url: '{pages}{path}', "
        'metrics: {v: "#v"}}\n'
        for path in [*PAGES, "/iso-2022-kr"]
    )
    (workdir / "kpi.yaml").write_text("sources:\n" + sources)
    result = run_kpi(workdir, "run", "--format", "json")
    assert result.returncode == 1, result.stderr  # the iso-2022-kr page fails
    want = {
        f"{path.strip('/').replace('-', '_')}.v": value for path, (_, _, value) in PAGES.items()
    }
    values = {v["kpi"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values == pytest.approx(want)
    with sqlite3.connect(workdir / "kpi.db") as conn:
        stored = dict(conn.execute("SELECT kpi, value FROM observations"))
        errors = [m for (m,) in conn.execute("SELECT message FROM run_errors")]
    assert stored == pytest.approx(want)
    # WHATWG Encoding: iso-2022-kr is the `replacement` encoding, which browsers refuse
    assert len(errors) == 1 and "'iso-2022-kr', which browsers do not decode" in errors[0]


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        # the BOM wins over the header (HTML standard: BOM, header, meta)
        ("text/html; charset=koi8-r", b"\xef\xbb\xbf<p>\xc3\xa9</p>", "<p>é</p>"),
        # the header wins over the meta
        (
            "text/html; charset=latin1",
            b'<meta charset="utf-8"><p>\xe9</p>',
            '<meta charset="utf-8"><p>é</p>',
        ),
        # quoted, odd case and spaces in the header's label
        ('text/html; charset="LATIN1"', b"<p>\x80</p>", "<p>€</p>"),
        ("text/html;charset= x-cp1251", b"<p>\xc0</p>", "<p>А</p>"),
        # a meta inside a comment does not count; the one after it does
        (
            "text/html",
            b'<!-- <meta charset="koi8-r"> --><meta charset=windows-1251><p>\xc0</p>',
            None,
        ),
        # `<!-->` and `<!--->` are whole comments (the prescan's dashes may be those of
        # `<!--`): the meta after them counts, as in a browser (it was passed over)
        ("text/html", b"<!--><meta charset=koi8-r><p>\xe1</p>", None),
        ("text/html", b"<!---><meta charset=koi8-r><p>\xe1</p>", None),
        # http-equiv with the label quoted inside content
        (
            "text/html",
            b"<meta http-equiv=Content-Type content=\"text/html; charset='koi8-r'\"><p>\xe1</p>",
            None,
        ),
        # an XML declaration at the start, when no meta names a charset
        ("text/html", b"<?xml version='1.0' encoding='koi8-r'?><p>\xe1</p>", None),
        # x-user-defined in a meta is windows-1252
        ("text/html", b'<meta charset="x-user-defined"><p>\x80</p>', None),
        # no label: UTF-8 when valid, else windows-1252
        ("text/html", b"<p>\x80 \xe9</p>", "<p>€ é</p>"),
        # a late <meta> counts only for a page that is not UTF-8 (a browser would take it
        # for an ASCII page too, which reads the same), and not inside a <title> or <style>
        (
            "text/html",
            b"<p>" + b"x" * 5000 + b"\xc3\xa9</p><meta charset=koi8-r>",
            "<p>" + "x" * 5000 + "\xe9</p><meta charset=koi8-r>",
        ),
        (
            "text/html",
            b"<style>" + b"p{}" * 2000 + b"<meta charset=koi8-r></style><title><meta "
            b"charset=koi8-r></title><p>\x80</p>",
            None,
        ),
    ],
)
def test_decode_html(content_type: str, body: bytes, text: str | None) -> None:
    _, decoded = decode_html(content_type, body)
    if text is not None:
        assert decoded == text
    else:
        assert decoded.endswith(("<p>А</p>", "<p>а</p>", "<p>€</p>")), decoded


def test_replacement_labels_are_an_error_naming_the_label() -> None:
    for label in ("hz-gb-2312", "iso-2022-cn", "csiso2022kr"):
        with pytest.raises(ExtractError, match=label):
            decode_html(f"text/html; charset={label}", b"<p>1</p>")


# path: (Content-Type, body)
JSON_ANSWERS: dict[str, tuple[str, bytes]] = {
    # declared, and the bytes are not UTF-8: the declared charset reads them
    "/latin1": (
        "application/json; charset=iso-8859-1",
        '{"abonn\u00e9s": 1234, "ville": "Li\u00e8ge"}'.encode("cp1252"),
    ),
    "/sjis": ("application/json; charset=Shift_JIS", '{"\u4eba\u6570": 1234}'.encode("cp932")),
    # declared wrongly: valid UTF-8 is UTF-8 (RFC 8259: the label has no effect)
    "/mislabelled": (
        "application/json; charset=iso-8859-1",
        '{"abonn\u00e9s": 1234}'.encode(),
    ),
    # not declared: what is not UTF-8 becomes U+FFFD, as a browser's `response.json()` reads
    # it; a number is ASCII, never touched
    "/undeclared": ("application/json", '{"n": 1234, "ville": "Li\u00e8ge"}'.encode("cp1252")),
    "/utf16-bom": ("application/json", '\ufeff{"n": 1234}'.encode("utf-16-le")),
}


def test_json_answers_that_are_not_utf8_read_as_declared(workdir: Path) -> None:
    """An API that sends JSON in its platform's charset (a PHP or .NET service in Latin-1
    or Shift_JIS) failed as a whole ('not valid JSON', 'utf-8' codec can't decode) though
    every number in it was readable; a key with an accent or in kanji matched nothing."""
    from kpi_collector.sources import HttpJson
    from tests.fakes.collect import run

    app = web.Application()
    for path, (content_type, body) in JSON_ANSWERS.items():

        async def handler(
            request: web.Request, body: bytes = body, content_type: str = content_type
        ) -> web.Response:
            return web.Response(body=body, headers={"Content-Type": content_type})

        app.router.add_get(path, handler)
    metric = {
        "/latin1": '"abonn\u00e9s"',
        "/sjis": '"\u4eba\u6570"',
        "/mislabelled": '"abonn\u00e9s"',
        "/undeclared": "n",
        "/utf16-bom": "n",
    }
    with BackgroundServer(app) as url:
        result = run(
            *(
                HttpJson(
                    name=path.strip("/").replace("-", "_"),
                    url=url + path,
                    metrics={"v": metric[path]},
                )
                for path in JSON_ANSWERS
            )
        )
    assert result.errors == {}
    assert result.values == {
        f"{path.strip('/').replace('-', '_')}.v": 1234 for path in JSON_ANSWERS
    }
