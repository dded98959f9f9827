"""`kpi run` on pages whose number text spans elements: text in elements a browser lays out
apart (list items, table cells, blocks, `<br>`, `<sup>`) is never glued into one number,
and spaces an element adds do not hide a scale word. Before, `<li>5</li><li>120</li>`
stored 5120, `Plan A: 3` / `500 users` in two divs 3500, `12<br>345` 12345, and
`Over <b>2.4</b> million` read by CSS 2.4. Within a line, text split across inline elements
is read as a browser shows it, with no space the page does not have: `<b>v</b>2.1` was
read as "v 2.1", 2.1 (a version stored as a number), `<span>1</span><span>23</span>` was
"1 23", two numbers; and the text of a script or stylesheet inside the element is no
text on the page."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kpi_collector.collect.extract import HtmlDocument, Metric
from kpi_collector.demo.server import BackgroundServer
from kpi_collector.errors import ExtractError
from tests.cli import run_kpi

PAGE = """<html lang="en"><body>
<ul id="list"><li>5</li><li>120</li></ul>
<div id="blocks"><div>Plan A: 3</div><div>500 users</div></div>
<table><tr id="row"><td>1</td><td>234</td></tr></table>
<p id="br">12<br>345</p>
<p id="sup">1,234<sup>1</sup></p>
<p id="bold">Over <b>2.4</b> million downloads</p>
<p id="spans"><span>12</span><span>345</span></p>
<div id="card"><h3>Revenue</h3><p>€1.2 million</p></div>
<table><tr id="labelled"><th>Users</th><td>1,234</td></tr></table>
<p id="source-newline">12
374</p>
<p id="inline-digits"><span>1</span><span>23</span></p>
<p id="inline-group"><span>1,2</span><span>34</span></p>
<p id="inline-currency"><i>$</i>5</p>
<p id="inline-scale">12<small>k</small></p>
<p id="inline-minus">Change: <b>-</b>5</p>
<p id="inline-spaced"><span>Users:</span> <span>1,234</span></p>
<p id="inline-script">1,234<script>var shown = 5;</script><style>p { margin: 2px }</style></p>
<p id="inline-hidden">1,234<span hidden>5</span></p>
<p id="styled-hidden">1,234<span style="color: red; display: none">5</span></p>
<p id="class-hidden">1,234<span class="d-none">5</span><span class="hidden">6</span><span
  class="invisible">7</span><span class="is-hidden">8</span></p>
<p id="commented-hidden">1,234<span style="/* old */ display: none">5</span></p>
<p id="contents-hidden">1,234<span style="content-visibility: hidden">5</span></p>
<a id="screen-reader"><span aria-hidden="true">1.2k</span><span class="sr-only">1,234 users
  starred this repository</span></a>
<nav id="pages"><button>1</button><button>2</button><button>3</button></nav>
<div id="chart"><svg><text>0</text><text>100</text></svg><span>1,234</span></div>
<p id="ruby"><ruby>12<rt>3</rt></ruby></p>
<p id="struck"><s>99</s>79</p>
<div id="fallback">1,234<canvas>5</canvas><video>6</video><dialog>7</dialog></div>
<div id="icon"><svg><title>5 stars</title><path d="M0 0"/></svg>1,234</div>
<p id="glued-version"><b>v</b>2.1</p>
<p id="spaced-spans"><span class="n">12</span>
  <span class="n">345</span></p>
<p id="spaced-tail">Total 12 <b>345</b></p>
<div id="empty-block">5<div class="spacer"></div>12</div>
<div id="rule">5<hr>12</div>
<div id="styled-blocks"><span style="display: block">Plan A: 3</span><span
  style="font-weight: bold; display:flex">500 users</span></div>
<p id="glued-code"><span>SKU</span><span>123</span></p>
</body></html>"""

READ = {  # selector: the number a reader sees
    "#bold": 2_400_000,
    "#spans": 12345,  # shown as one run of digits
    "#card": 1_200_000,
    "#labelled": 1234,
    "#source-newline": 12374,  # a newline in the source is a space on the page: 12 374
    "#inline-digits": 123,  # shown as 123
    "#inline-group": 1234,
    "#inline-currency": 5,
    "#inline-scale": 12000,
    "#inline-minus": -5,  # shown as -5, the minus touching the number
    "#inline-spaced": 1234,  # the page's own space between the elements
    "#inline-script": 1234,
    "#inline-hidden": 1234,
    "#styled-hidden": 1234,  # was 12345 once inline parts joined as shown
    # hidden by a framework's class at every width, or a style after a comment (was 1.2345678)
    "#class-hidden": 1234,
    "#commented-hidden": 1234,
    "#contents-hidden": 1234,
    "#screen-reader": 1200,  # what is shown; the screen reader's text is not
    "#fallback": 1234,  # a canvas's, video's and closed dialog's content is not shown
    "#icon": 1234,  # an SVG's tooltip is not shown
}
# two numbers: an error; buttons and SVG texts are boxes a page draws apart (they were
# 123 and 1001.234 once inline parts joined as shown), struck-out text an old value
# (`<s>99</s>79` was 9979)
APART = ["#list", "#blocks", "#row", "#br", "#sup", "#pages", "#chart", "#ruby", "#struck"]
# digits in two elements with a space between are two numbers (were 12345, one grouped by
# the space as `12 345` in one text is)
APART += ["#spaced-spans", "#spaced-tail"]
# elements an inline style lays out as blocks (were 3500, as `#blocks` once was)
APART += ["#styled-blocks"]
# a box with no text of its own still parts the lines around it (CSS read 512)
APART += ["#empty-block", "#rule"]
GLUED = ["#glued-version", "#glued-code"]  # shown as v2.1, SKU123: a name, an error


@pytest.fixture
def page() -> Iterator[str]:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", handler)
    with BackgroundServer(app) as url:
        yield url


def _name(selector: str) -> str:
    return selector.strip("#").replace("-", "_")


def test_layout_end_to_end(page: str, workdir: Path) -> None:
    metrics = "".join(
        f'      {_name(s)}: "{s}"\n      {_name(s)}_x: {{xpath: "//*[@id=\'{s[1:]}\']"}}\n'
        for s in [*READ, *APART, *GLUED]
    )
    (workdir / "kpi.yaml").write_text(
        f"sources:\n  - name: p\n    type: html\n    url: {page}/\n    metrics:\n{metrics}"
    )
    result = run_kpi(workdir, "run", "--format", "json")
    assert result.returncode == 1, result.stderr
    want = {}
    for selector, value in READ.items():
        want[f"p.{_name(selector)}"] = value
        want[f"p.{_name(selector)}_x"] = value
    values = {v["kpi"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values == want
    with sqlite3.connect(workdir / "kpi.db") as conn:
        stored = dict(conn.execute("SELECT kpi, value FROM observations"))
        errors = " | ".join(m for (m,) in conn.execute("SELECT message FROM run_errors"))
    assert stored == want
    for selector in APART:
        assert f"{_name(selector)}: more than one number" in errors
        assert f"{_name(selector)}_x: more than one number" in errors
    for selector in GLUED:
        for name in (_name(selector), f"{_name(selector)}_x"):
            assert f"{name}: " in errors and "the number is joined to the letters" in errors
    assert "'v2.1': the number is joined to the letters 'v'" in errors
    assert "'SKU123': the number is joined to the letters 'SKU'" in errors


@pytest.mark.parametrize(
    ("html", "value"),
    [
        ("<p id=v>$ <span>1.2</span> M</p>", 1_200_000),
        ("<p id=v>Users<br>12 345</p>", 12345),  # the number is on its own line, whole
        ("<p id=v>1,234<!-- 5 --></p>", 1234),  # a comment is no text
        # letters touching a raised run touch it as shown: 5th, 1st (was "5 th", an error)
        ("<p id=v>5<sup>th</sup></p>", 5),
        ("<p id=v>1<sup>st</sup> place</p>", 1),
        ("<p id=v>12<sup>½</sup></p>", 12.5),
        # the text after a block and the inline text after it are one line, in XPath too
        # (XPath read "1", "23", "4" apart: more than one number, where CSS read 234)
        ("<div id=v>23<span>4</span><p>Users</p></div>", 234),
        ("<div id=v><p>Users</p>23<span>4</span></div>", 234),
        # a space grouping digits within one text, and a space between a label and a number
        ("<p id=v><span>12 345</span> <span>users</span></p>", 12345),
        ("<p id=v><span>Users:</span>\n<span>12 345</span></p>", 12345),
        ("<p id=v>12 345 <b>users</b></p>", 12345),
        ("<p id=v><b>1</b>234</p>", 1234),
        # boxes in the run of text (a counter's digits), as on a rendered page
        (
            "<p id=v><span style='display:inline-block'>1</span><span style='display:"
            "inline-block'>2</span></p>",
            12,
        ),
    ],
)
def test_layout_text_keeps_what_is_one_line(html: str, value: float) -> None:
    document = HtmlDocument(html)
    assert document.metric("m", Metric(css="#v")) == value
    assert document.metric("m", Metric(xpath="//*[@id='v']")) == value


@pytest.mark.parametrize(
    ("html", "error"),
    [
        # a raised digit touching letters shows as x2, CO2: a name, not 2 (was 2)
        ("<p id=v>x<sup>2</sup></p>", "'x2': the number is joined to the letters 'x'"),
        ("<p id=v>CO<sub>2</sub></p>", "'CO2': the number is joined to the letters 'CO'"),
        # digits across a raised edge are never one number
        ("<p id=v>10<sup>6</sup></p>", "more than one number"),
        ("<p id=v>10<sup>-6</sup></p>", "more than one number"),
        ("<p id=v>$19<sup>99</sup></p>", "more than one number"),
        ("<p id=v>$1<sup>.99</sup></p>", "more than one number"),
    ],
)
def test_a_raised_run_is_read_as_shown(html: str, error: str) -> None:
    document = HtmlDocument(html)
    for metric in (Metric(css="#v"), Metric(xpath="//*[@id='v']")):
        with pytest.raises(ExtractError, match=re.escape(error)):
            document.metric("m", metric)


@pytest.mark.parametrize(
    ("html", "value"),
    [
        # shown again from a width on (Bootstrap `d-md-inline`, Tailwind `md:inline`)
        ("<p id=v>1,23<span class='d-none d-md-inline'>4</span></p>", 1234),
        ("<p id=v>1,23<span class='hidden md:inline'>4</span></p>", 1234),
        ("<p id=v>1,23<span class='hidden lg:inline-block'>4</span></p>", 1234),
        ("<p id=v>1,234<span class='d-none d-lg-none'>5</span></p>", 1234),
        ("<p id=v>1,23<span class='hide-on-print'>4</span></p>", 1234),  # no hiding class
    ],
)
def test_a_hiding_class_with_a_width_that_shows_it_is_shown(html: str, value: float) -> None:
    document = HtmlDocument(html)
    assert document.metric("m", Metric(css="#v")) == value
    assert document.metric("m", Metric(xpath="//*[@id='v']")) == value


def test_regex_and_map_see_lines_as_spaces() -> None:
    """A `regex:` or `map:` written against the text as it was (one space between the
    parts of a block) still matches."""
    document = HtmlDocument(
        "<dl id=v><dt>Users:</dt><dd>5</dd></dl><div id=m><p>Status</p><p>GREEN</p></div>"
    )
    assert document.metric("m", Metric(css="#v", regex=r"Users: (\d+)")) == 5
    assert document.metric("m", Metric(xpath="//*[@id='v']", regex=r"Users: (\d+)")) == 5
    assert document.metric("m", Metric(css="#m", map={"Status GREEN": 2})) == 2


@pytest.mark.parametrize(
    ("selector", "value"),
    [("body div ul", None), ("body div #card", 1_200_000), ("body table #labelled", 1234)],
)
def test_a_selector_matched_in_a_process_of_its_own_reads_text_the_same_way(
    monkeypatch: pytest.MonkeyPatch, selector: str, value: float | None
) -> None:
    """A costly selector runs in `css_child` (forced here: no step allowed in this process);
    its text is laid out as in this process: list items are two numbers, not 5120."""
    from kpi_collector.collect import extract

    monkeypatch.setattr(extract, "CSS_STEPS", 0)
    page = f"<html><body><div><div>{PAGE.split('<body>', 1)[1]}</div></div></body></html>"
    document = HtmlDocument(page)
    assert not document._lexbor_is_bounded(selector)  # the test runs what it means to
    if value is None:
        with pytest.raises(Exception, match="more than one number"):
            document.metric("m", Metric(css=selector))
    else:
        assert document.metric("m", Metric(css=selector)) == value


ODOMETER = """<html lang="en"><head><style>
.odometer-digit { display: inline-block; position: relative }
.odometer-digit-spacer { display: inline-block; visibility: hidden }
.odometer-digit-inner { position: absolute; inset: 0 }
</style></head><body><div id="stars" class="odometer"></div>
<div id="card" style="display: flex; flex-direction: column"><span>Users</span><span>1,234</span></div>
<div id="pair" style="display: flex; gap: 8px"><span>2024</span><span>1,234</span></div>
<span id="digits"><span style="display: inline-block">1</span><span
  style="display: inline-block">234</span></span>
<script>
  // as HubSpot's Odometer draws a number: each digit beside a hidden spacer digit "8"
  const digit = (d) => '<span class="odometer-digit"><span class="odometer-digit-spacer">8'
    + '</span><span class="odometer-digit-inner"><span class="odometer-value">' + d
    + '</span></span></span>';
  document.getElementById("stars").innerHTML = digit(1)
    + '<span class="odometer-formatting-mark">,</span>' + [2, 3, 4].map(digit).join("");
</script></body></html>"""


@pytest.mark.browser
def test_a_rendered_page_is_read_as_it_shows_without_what_a_stylesheet_hides(
    workdir: Path,
) -> None:
    """With `render: true` the text a stylesheet hides is no text: an odometer's hidden
    spacer digits joined with its digits read "81,828384", 81.83; it is 1,234. And the
    items a stylesheet lays out as boxes of their own (flex items) are apart, as blocks
    are: a label above its number is read, two numbers side by side are two numbers (read
    "20241,234", 20241.234), while inline-blocks run on as one line."""
    from tests.test_dashboard_browser import require_chromium

    require_chromium()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=ODOMETER, content_type="text/html")

    app.router.add_get("/", handler)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(
            "defaults: {timeout: 4, retries: 0}\nsources:\n"
            f'  - {{name: p, type: html, url: "{url}/", render: true, wait_for: ".odometer-value",'
            " metrics: {"
            + ", ".join(
                f"{m}: '#{m}', {m}_x: {{xpath: \"//*[@id='{m}']\"}}"
                for m in ("stars", "card", "pair", "digits")
            )
            + "}}\n"
        )
        result = run_kpi(workdir, "run", "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    values = {v["kpi"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values == {f"p.{m}{x}": 1234 for m in ("stars", "card", "digits") for x in ("", "_x")}
    with sqlite3.connect(workdir / "kpi.db") as conn:
        errors = " | ".join(m for (m,) in conn.execute("SELECT message FROM run_errors"))
    assert "pair: more than one number in '2024 1,234'" in errors
    assert "pair_x: more than one number in '2024 1,234'" in errors


@pytest.mark.parametrize(
    "html",
    [
        "<div hidden><p class=n>0</p></div><p class=n>1,234</p>",
        "<p class=n style='display: none'>0</p><p class=n>1,234</p>",
        "<dialog><p class=n>0</p></dialog><p class=n>1,234</p>",
        "<p class='n d-none'>1.2k</p><p class=n>1,234</p>",
    ],
)
def test_a_hidden_first_match_before_a_shown_one_is_an_error(html: str) -> None:
    """The first match was read though the page does not show it (a hidden copy, a closed
    dialog's), storing 0 where the page shows 1,234; which one is meant is the config's to
    say."""
    document = HtmlDocument(html)
    for metric in (Metric(css=".n"), Metric(xpath="//p[contains(@class, 'n')]")):
        with pytest.raises(ExtractError, match="matches an element the page does not show"):
            document.metric("m", metric)
    assert document.metric("m", Metric(xpath="(//p[contains(@class, 'n')])[last()]")) == 1234


@pytest.mark.parametrize(
    ("html", "value"),
    [
        # a hidden copy that reads as the shown one does: no doubt which is meant
        ("<p class='n d-none'>1.234</p><p class=n lang=en>1.234</p>", 1.234),
        ("<div hidden><p class=n>1,234</p></div><p class=n>1.234 <!-- x --></p>", None),
        ("<p class=n hidden>7</p>", 7),  # every match hidden: the one the config picked
        ("<p class=n>1,234</p><p class=n hidden>0</p>", 1234),  # the first is shown
        ("<template><p class=n>0</p></template><p class=n>1,234</p>", 1234),  # CSS
    ],
)
def test_a_hidden_match_is_read_when_no_shown_one_comes_before_or_after(
    html: str, value: float | None
) -> None:
    document = HtmlDocument(html)
    if value is None:  # 1234 hidden, 1.234 shown: which is meant is the config's to say
        with pytest.raises(ExtractError, match=r"before one it shows \(it reads 1234, that one"):
            document.metric("m", Metric(css=".n"))
    else:
        assert document.metric("m", Metric(css=".n")) == value


def test_an_attribute_of_a_hidden_first_match_is_read() -> None:
    """Attributes are data, often on hidden elements (`<input type=hidden>`, a hidden
    `<span data-n>`): `attr:` reads the first match as before."""
    document = HtmlDocument("<span class=n hidden data-n=5></span><span class=n data-n=6>6</span>")
    assert document.metric("m", Metric(css=".n", attr="data-n")) == 5


def test_a_hidden_first_match_in_a_process_of_its_own_is_an_error_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kpi_collector.collect import extract

    monkeypatch.setattr(extract, "CSS_STEPS", 0)
    page = "<html><body><div><div hidden><p class=n>0</p></div><p class=n>1,234</p></div></body></html>"
    document = HtmlDocument(page)
    assert not document._lexbor_is_bounded("body div p.n")  # the test runs what it means to
    with pytest.raises(ExtractError, match=r"does not show .*it reads 0, that one 1234"):
        document.metric("m", Metric(css="body div p.n"))
    assert document.metric("m", Metric(css="body > div > p.n")) == 1234
    same = page.replace("<p class=n>0</p>", "<p class=n lang=de>1.234</p>")
    assert HtmlDocument(same).metric("m", Metric(css="body div p.n")) == 1234


@pytest.mark.parametrize(
    "html",
    [
        # a mobile menu's copy of the posts' links, hidden by a framework's class
        "<ul><li><a class=post>a</a><li><a class=post>b</a></ul>"
        "<nav class=d-none><a class=post>a</a><a class=post>b</a></nav>",
        "<a class=post>a</a><a class=post>b</a><a class=post hidden>c</a>",
        "<a class=post>a</a><div style='display: none'><a class=post>b</a></div>",
        "<a class=post>a</a><dialog><a class=post>b</a></dialog>",
    ],
)
def test_a_count_of_shown_and_hidden_matches_is_an_error(
    html: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`count: true` counted the matches the page does not show with those it shows (a
    hidden copy of a list doubled the posts), while reading a value never silently picks a
    hidden match over a shown one. Which ones are meant is the config's to say, as for a
    value: an error naming how many the page hides; a selector that says it is counted."""
    from kpi_collector.collect import extract

    document = HtmlDocument(html)
    for metric in (
        Metric(css="a.post", count=True),
        Metric(xpath="//a[@class='post']", count=True),
        Metric(xpath="//a[@class='post']/text()", count=True),
        Metric(xpath="count(//a[@class='post'])"),
    ):
        with pytest.raises(
            ExtractError, match=r"matches \d+ elements, \d+ of which the page does not show"
        ):
            document.metric("posts", metric)
    if "hidden>c" in html:  # a selector that leaves the hidden ones out counts the rest
        assert document.metric("posts", Metric(css="a.post:not([hidden])", count=True)) == 2
    monkeypatch.setattr(extract, "CSS_STEPS", 0)  # the selector matched in a process of its own
    deep = HtmlDocument(f"<html><body><div>{html}</div></body></html>")
    assert not deep._lexbor_is_bounded("body div a.post")
    with pytest.raises(
        ExtractError, match=r"matches \d+ elements, \d+ of which the page does not show"
    ):
        deep.metric("posts", Metric(css="body div a.post", count=True))


@pytest.mark.parametrize(
    ("html", "count"),
    [
        ("<a class=post>a</a><a class=post>b</a>", 2),  # every match shown
        ("<div hidden><a class=post>a</a><a class=post>b</a></div>", 2),  # every one hidden
        ("<a class=post>a</a><a class='post hidden md:inline'>b</a>", 2),  # shown when wide
    ],
)
def test_a_count_of_matches_all_shown_or_all_hidden_counts_them(html: str, count: int) -> None:
    document = HtmlDocument(html)
    assert document.metric("posts", Metric(css="a.post", count=True)) == count
    assert document.metric("posts", Metric(xpath="//a", count=True)) == count
    assert document.metric("posts", Metric(xpath="count(//a)")) == count


def test_the_hidden_matches_counted_once_per_ancestor_are_those_each_walk_finds() -> None:
    """`count_unshown` judges each ancestor once for all the matches under it (a list's
    matches share theirs): it counts exactly the matches `unshown` finds one by one, for
    matches hidden themselves, by a near or a far ancestor, beside shown siblings, nested
    in hidden and shown containers alike, and in any order of the matches."""
    import random

    from selectolax.lexbor import LexborHTMLParser

    from kpi_collector.collect.layout import count_unshown, unshown

    wraps = [
        "<div hidden>{}</div>",
        "<span style='display:none'>{}</span>",
        "<p class='d-none'>{}</p>",
        "<p class='d-none d-md-block'>{}</p>",
        "<dialog>{}</dialog>",
        "<dialog open>{}</dialog>",
        "<div class=sr-only>{}</div>",
        "<section style='color: red'>{}</section>",
        "<ul><li>{}</li></ul>",
        "<b>{}</b>",
    ]
    leaves = ["<a class=k>1</a>", "<a class=k hidden>2</a>", "<a class='k d-none'>3</a>"]
    rnd = random.Random(7)

    def nest(depth: int) -> str:
        if depth == 0 or rnd.random() < 0.3:
            return rnd.choice(leaves)
        return "".join(rnd.choice(wraps).format(nest(depth - 1)) for _ in range(rnd.randint(1, 3)))

    seen = set()
    for _ in range(400):
        tree = LexborHTMLParser(f"<html><body>{nest(5)}</body></html>")
        nodes = tree.css("a.k")
        rnd.shuffle(nodes)
        expected = sum(1 for node in nodes if unshown(node))
        assert count_unshown(nodes) == expected
        seen.add((expected > 0, expected < len(nodes)))
    assert seen == {(True, True), (True, False), (False, True)}  # mixed, all hidden, all shown
